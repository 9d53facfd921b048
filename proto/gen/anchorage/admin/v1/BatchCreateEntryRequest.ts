// Original file: proto/anchorage/admin/v1/admin.proto

import type { Entry as _anchorage_admin_v1_Entry, Entry__Output as _anchorage_admin_v1_Entry__Output } from '../../../anchorage/admin/v1/Entry.js';

export interface BatchCreateEntryRequest {
  /**
   * 1 to 10,000; id, revision and created_at are ignored
   */
  'entries'?: (_anchorage_admin_v1_Entry)[];
}

export interface BatchCreateEntryRequest__Output {
  /**
   * 1 to 10,000; id, revision and created_at are ignored
   */
  'entries': (_anchorage_admin_v1_Entry__Output)[];
}
