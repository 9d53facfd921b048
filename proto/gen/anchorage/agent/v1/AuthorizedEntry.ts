// Original file: proto/anchorage/agent/v1/agent.proto

import type { Long } from '@grpc/proto-loader';

export interface AuthorizedEntry {
  'id'?: (string);
  'spiffe_id'?: (string);
  /**
   * type:value
   */
  'selectors'?: (string)[];
  /**
   * seconds; 0 = server default
   */
  'x509_svid_ttl'?: (number);
  /**
   * seconds; 0 = server default
   */
  'jwt_svid_ttl'?: (number);
  'dns_names'?: (string)[];
  'federates_with'?: (string)[];
  'hint'?: (string);
  'revision'?: (number | string | Long);
}

export interface AuthorizedEntry__Output {
  'id': (string);
  'spiffe_id': (string);
  /**
   * type:value
   */
  'selectors': (string)[];
  /**
   * seconds; 0 = server default
   */
  'x509_svid_ttl': (number);
  /**
   * seconds; 0 = server default
   */
  'jwt_svid_ttl': (number);
  'dns_names': (string)[];
  'federates_with': (string)[];
  'hint': (string);
  'revision': (number);
}
