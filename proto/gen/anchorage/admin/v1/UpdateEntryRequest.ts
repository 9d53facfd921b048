// Original file: proto/anchorage/admin/v1/admin.proto

import type { EntryPatch as _anchorage_admin_v1_EntryPatch, EntryPatch__Output as _anchorage_admin_v1_EntryPatch__Output } from '../../../anchorage/admin/v1/EntryPatch.js';
import type { Long } from '@grpc/proto-loader';

export interface UpdateEntryRequest {
  'id'?: (string);
  'patch'?: (_anchorage_admin_v1_EntryPatch | null);
  /**
   * 0 = do not check
   */
  'expect_revision'?: (number | string | Long);
}

export interface UpdateEntryRequest__Output {
  'id': (string);
  'patch': (_anchorage_admin_v1_EntryPatch__Output | null);
  /**
   * 0 = do not check
   */
  'expect_revision': (number);
}
