// Original file: proto/anchorage/admin/v1/admin.proto

import type { TrustAnchor as _anchorage_admin_v1_TrustAnchor, TrustAnchor__Output as _anchorage_admin_v1_TrustAnchor__Output } from '../../../anchorage/admin/v1/TrustAnchor.js';

export interface ListTrustAnchorsResponse {
  'anchors'?: (_anchorage_admin_v1_TrustAnchor)[];
  /**
   * attested agents not evicted
   */
  'agents'?: (number);
}

export interface ListTrustAnchorsResponse__Output {
  'anchors': (_anchorage_admin_v1_TrustAnchor__Output)[];
  /**
   * attested agents not evicted
   */
  'agents': (number);
}
