// Original file: proto/anchorage/admin/v1/admin.proto

import type { Selector as _anchorage_admin_v1_Selector, Selector__Output as _anchorage_admin_v1_Selector__Output } from '../../../anchorage/admin/v1/Selector.js';

export interface SelectorList {
  'items'?: (_anchorage_admin_v1_Selector)[];
}

export interface SelectorList__Output {
  'items': (_anchorage_admin_v1_Selector__Output)[];
}
