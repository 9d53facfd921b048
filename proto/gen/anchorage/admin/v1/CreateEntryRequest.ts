// Original file: proto/anchorage/admin/v1/admin.proto

import type { Entry as _anchorage_admin_v1_Entry, Entry__Output as _anchorage_admin_v1_Entry__Output } from '../../../anchorage/admin/v1/Entry.js';

export interface CreateEntryRequest {
  /**
   * id, revision and created_at are ignored
   */
  'entry'?: (_anchorage_admin_v1_Entry | null);
}

export interface CreateEntryRequest__Output {
  /**
   * id, revision and created_at are ignored
   */
  'entry': (_anchorage_admin_v1_Entry__Output | null);
}
