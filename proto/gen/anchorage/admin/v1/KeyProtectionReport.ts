// Original file: proto/anchorage/admin/v1/admin.proto

import type { KeyProtection as _anchorage_admin_v1_KeyProtection, KeyProtection__Output as _anchorage_admin_v1_KeyProtection__Output } from '../../../anchorage/admin/v1/KeyProtection.js';

export interface KeyProtectionReport {
  /**
   * The prepared, active and old CA keys: intermediates, JWT keys, and the
   * root when the server holds its key (self-signed).
   */
  'keys'?: (_anchorage_admin_v1_KeyProtection)[];
}

export interface KeyProtectionReport__Output {
  /**
   * The prepared, active and old CA keys: intermediates, JWT keys, and the
   * root when the server holds its key (self-signed).
   */
  'keys': (_anchorage_admin_v1_KeyProtection__Output)[];
}
