// Original file: proto/anchorage/admin/v1/admin.proto

import type { FederatedBundle as _anchorage_admin_v1_FederatedBundle, FederatedBundle__Output as _anchorage_admin_v1_FederatedBundle__Output } from '../../../anchorage/admin/v1/FederatedBundle.js';
import type { Long } from '@grpc/proto-loader';

export interface FederationRelationship {
  'trust_domain'?: (string);
  'bundle_endpoint_url'?: (string);
  /**
   * "https_spiffe" or "https_web"
   */
  'profile'?: (string);
  /**
   * https_spiffe: the SPIFFE ID the endpoint must present
   */
  'endpoint_spiffe_id'?: (string);
  /**
   * https_web: CA certificates (PEM); empty = system roots
   */
  'web_ca_pem'?: (string);
  'created_at'?: (number | string | Long);
  'updated_at'?: (number | string | Long);
  /**
   * What the federation client last saw (Unix seconds; 0 = never).
   */
  'last_attempt_at'?: (number | string | Long);
  'last_success_at'?: (number | string | Long);
  /**
   * empty after a successful fetch
   */
  'last_error'?: (string);
  /**
   * tls, http, too_large, malformed, wrong_trust_domain, sequence_backwards, unreachable, no_authorities
   */
  'last_error_reason'?: (string);
  'last_error_at'?: (number | string | Long);
  'consecutive_failures'?: (number);
  'next_refresh_at'?: (number | string | Long);
  /**
   * The peer's bundle as held now (absent until the first fetch or bootstrap).
   */
  'bundle'?: (_anchorage_admin_v1_FederatedBundle | null);
}

export interface FederationRelationship__Output {
  'trust_domain': (string);
  'bundle_endpoint_url': (string);
  /**
   * "https_spiffe" or "https_web"
   */
  'profile': (string);
  /**
   * https_spiffe: the SPIFFE ID the endpoint must present
   */
  'endpoint_spiffe_id': (string);
  /**
   * https_web: CA certificates (PEM); empty = system roots
   */
  'web_ca_pem': (string);
  'created_at': (number);
  'updated_at': (number);
  /**
   * What the federation client last saw (Unix seconds; 0 = never).
   */
  'last_attempt_at': (number);
  'last_success_at': (number);
  /**
   * empty after a successful fetch
   */
  'last_error': (string);
  /**
   * tls, http, too_large, malformed, wrong_trust_domain, sequence_backwards, unreachable, no_authorities
   */
  'last_error_reason': (string);
  'last_error_at': (number);
  'consecutive_failures': (number);
  'next_refresh_at': (number);
  /**
   * The peer's bundle as held now (absent until the first fetch or bootstrap).
   */
  'bundle': (_anchorage_admin_v1_FederatedBundle__Output | null);
}
