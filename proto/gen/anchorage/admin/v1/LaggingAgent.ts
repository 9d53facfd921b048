// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface LaggingAgent {
  'spiffe_id'?: (string);
  /**
   * what it last reported holding (0 = never reported)
   */
  'bundle_sequence'?: (number | string | Long);
  'last_seen_at'?: (number | string | Long);
}

export interface LaggingAgent__Output {
  'spiffe_id': (string);
  /**
   * what it last reported holding (0 = never reported)
   */
  'bundle_sequence': (number);
  'last_seen_at': (number);
}
