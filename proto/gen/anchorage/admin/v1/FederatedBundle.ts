// Original file: proto/anchorage/admin/v1/admin.proto

import type { FederatedKey as _anchorage_admin_v1_FederatedKey, FederatedKey__Output as _anchorage_admin_v1_FederatedKey__Output } from '../../../anchorage/admin/v1/FederatedKey.js';
import type { Long } from '@grpc/proto-loader';

export interface FederatedBundle {
  'trust_domain'?: (string);
  /**
   * as stored and sent to agents
   */
  'document'?: (string);
  /**
   * spiffe_sequence of the document; 0 when it has none
   */
  'sequence'?: (number | string | Long);
  'refresh_hint'?: (number);
  /**
   * Unix seconds
   */
  'updated_at'?: (number | string | Long);
  'keys'?: (_anchorage_admin_v1_FederatedKey)[];
  /**
   * "static" (set by hand) or "endpoint" (a federation relationship fetches it)
   */
  'source'?: (string);
  /**
   * For source "endpoint": the last successful fetch, the last error ('' if
   * the last fetch succeeded) and when it happened (Unix seconds; 0 = never).
   */
  'last_refresh'?: (number | string | Long);
  'last_error'?: (string);
  'last_error_at'?: (number | string | Long);
}

export interface FederatedBundle__Output {
  'trust_domain': (string);
  /**
   * as stored and sent to agents
   */
  'document': (string);
  /**
   * spiffe_sequence of the document; 0 when it has none
   */
  'sequence': (number);
  'refresh_hint': (number);
  /**
   * Unix seconds
   */
  'updated_at': (number);
  'keys': (_anchorage_admin_v1_FederatedKey__Output)[];
  /**
   * "static" (set by hand) or "endpoint" (a federation relationship fetches it)
   */
  'source': (string);
  /**
   * For source "endpoint": the last successful fetch, the last error ('' if
   * the last fetch succeeded) and when it happened (Unix seconds; 0 = never).
   */
  'last_refresh': (number);
  'last_error': (string);
  'last_error_at': (number);
}
