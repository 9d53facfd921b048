// Original file: proto/anchorage/admin/v1/admin.proto

import type { Authority as _anchorage_admin_v1_Authority, Authority__Output as _anchorage_admin_v1_Authority__Output } from '../../../anchorage/admin/v1/Authority.js';
import type { LaggingAgent as _anchorage_admin_v1_LaggingAgent, LaggingAgent__Output as _anchorage_admin_v1_LaggingAgent__Output } from '../../../anchorage/admin/v1/LaggingAgent.js';
import type { Long } from '@grpc/proto-loader';

export interface ListAuthoritiesResponse {
  'authorities'?: (_anchorage_admin_v1_Authority)[];
  /**
   * the trust domain's current bundle sequence
   */
  'bundle_sequence'?: (number | string | Long);
  /**
   * attested agents not evicted
   */
  'agents'?: (number);
  /**
   * root: agents that do not yet hold a bundle with every published root
   * (the gate on removing an old root).
   */
  'lagging'?: (_anchorage_admin_v1_LaggingAgent)[];
}

export interface ListAuthoritiesResponse__Output {
  'authorities': (_anchorage_admin_v1_Authority__Output)[];
  /**
   * the trust domain's current bundle sequence
   */
  'bundle_sequence': (number);
  /**
   * attested agents not evicted
   */
  'agents': (number);
  /**
   * root: agents that do not yet hold a bundle with every published root
   * (the gate on removing an old root).
   */
  'lagging': (_anchorage_admin_v1_LaggingAgent__Output)[];
}
