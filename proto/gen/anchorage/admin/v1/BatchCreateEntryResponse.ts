// Original file: proto/anchorage/admin/v1/admin.proto

import type { EntryResult as _anchorage_admin_v1_EntryResult, EntryResult__Output as _anchorage_admin_v1_EntryResult__Output } from '../../../anchorage/admin/v1/EntryResult.js';

export interface BatchCreateEntryResponse {
  /**
   * one per requested entry, in order
   */
  'results'?: (_anchorage_admin_v1_EntryResult)[];
}

export interface BatchCreateEntryResponse__Output {
  /**
   * one per requested entry, in order
   */
  'results': (_anchorage_admin_v1_EntryResult__Output)[];
}
