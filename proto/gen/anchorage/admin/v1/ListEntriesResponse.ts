// Original file: proto/anchorage/admin/v1/admin.proto

import type { Entry as _anchorage_admin_v1_Entry, Entry__Output as _anchorage_admin_v1_Entry__Output } from '../../../anchorage/admin/v1/Entry.js';

export interface ListEntriesResponse {
  'entries'?: (_anchorage_admin_v1_Entry)[];
}

export interface ListEntriesResponse__Output {
  'entries': (_anchorage_admin_v1_Entry__Output)[];
}
