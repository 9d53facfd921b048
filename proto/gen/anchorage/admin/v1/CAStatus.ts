// Original file: proto/anchorage/admin/v1/admin.proto

import type { CAKey as _anchorage_admin_v1_CAKey, CAKey__Output as _anchorage_admin_v1_CAKey__Output } from '../../../anchorage/admin/v1/CAKey.js';

export interface CAStatus {
  'trust_domain'?: (string);
  /**
   * pkcs11 | disk | memory
   */
  'key_manager'?: (string);
  'keys'?: (_anchorage_admin_v1_CAKey)[];
}

export interface CAStatus__Output {
  'trust_domain': (string);
  /**
   * pkcs11 | disk | memory
   */
  'key_manager': (string);
  'keys': (_anchorage_admin_v1_CAKey__Output)[];
}
