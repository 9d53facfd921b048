// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface FederatedKey {
  /**
   * "x509-svid" or "jwt-svid"
   */
  'use'?: (string);
  /**
   * x509-svid: subject and serial of the authority; jwt-svid: kid
   */
  'id'?: (string);
  /**
   * x509-svid: Unix seconds the authority expires; jwt-svid: 0 (keys carry no expiry)
   */
  'not_after'?: (number | string | Long);
}

export interface FederatedKey__Output {
  /**
   * "x509-svid" or "jwt-svid"
   */
  'use': (string);
  /**
   * x509-svid: subject and serial of the authority; jwt-svid: kid
   */
  'id': (string);
  /**
   * x509-svid: Unix seconds the authority expires; jwt-svid: 0 (keys carry no expiry)
   */
  'not_after': (number);
}
