// Original file: proto/anchorage/admin/v1/admin.proto

import type { Entry as _anchorage_admin_v1_Entry, Entry__Output as _anchorage_admin_v1_Entry__Output } from '../../../anchorage/admin/v1/Entry.js';

export interface EntryResult {
  /**
   * gRPC status code: 0 (OK) when created
   */
  'code'?: (number);
  /**
   * why not, when code is not 0
   */
  'message'?: (string);
  /**
   * the created entry, when code is 0
   */
  'entry'?: (_anchorage_admin_v1_Entry | null);
}

export interface EntryResult__Output {
  /**
   * gRPC status code: 0 (OK) when created
   */
  'code': (number);
  /**
   * why not, when code is not 0
   */
  'message': (string);
  /**
   * the created entry, when code is 0
   */
  'entry': (_anchorage_admin_v1_Entry__Output | null);
}
