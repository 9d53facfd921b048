// Original file: proto/anchorage/admin/v1/admin.proto

import type { Selector as _anchorage_admin_v1_Selector, Selector__Output as _anchorage_admin_v1_Selector__Output } from '../../../anchorage/admin/v1/Selector.js';
import type { Long } from '@grpc/proto-loader';

export interface Entry {
  'id'?: (string);
  'spiffe_id'?: (string);
  'parent_id'?: (string);
  'selectors'?: (_anchorage_admin_v1_Selector)[];
  /**
   * seconds; 0 = server default
   */
  'x509_svid_ttl'?: (number);
  /**
   * seconds; 0 = server default
   */
  'jwt_svid_ttl'?: (number);
  'dns_names'?: (string)[];
  /**
   * trust domain names
   */
  'federates_with'?: (string)[];
  'hint'?: (string);
  'admin'?: (boolean);
  'downstream'?: (boolean);
  'revision'?: (number | string | Long);
  /**
   * Unix seconds
   */
  'created_at'?: (number | string | Long);
}

export interface Entry__Output {
  'id': (string);
  'spiffe_id': (string);
  'parent_id': (string);
  'selectors': (_anchorage_admin_v1_Selector__Output)[];
  /**
   * seconds; 0 = server default
   */
  'x509_svid_ttl': (number);
  /**
   * seconds; 0 = server default
   */
  'jwt_svid_ttl': (number);
  'dns_names': (string)[];
  /**
   * trust domain names
   */
  'federates_with': (string)[];
  'hint': (string);
  'admin': (boolean);
  'downstream': (boolean);
  'revision': (number);
  /**
   * Unix seconds
   */
  'created_at': (number);
}
