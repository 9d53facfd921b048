// Original file: proto/anchorage/admin/v1/admin.proto

import type { FederationRelationship as _anchorage_admin_v1_FederationRelationship, FederationRelationship__Output as _anchorage_admin_v1_FederationRelationship__Output } from '../../../anchorage/admin/v1/FederationRelationship.js';

export interface CreateFederationRelationshipRequest {
  /**
   * trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id, web_ca_pem
   */
  'relationship'?: (_anchorage_admin_v1_FederationRelationship | null);
  /**
   * https_spiffe: the peer's SPIFFE bundle document, to authenticate the
   * endpoint on the first fetch. Required unless a bundle of that trust
   * domain is already held (e.g. set with SetFederatedBundle).
   */
  'bootstrap_bundle'?: (string);
}

export interface CreateFederationRelationshipRequest__Output {
  /**
   * trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id, web_ca_pem
   */
  'relationship': (_anchorage_admin_v1_FederationRelationship__Output | null);
  /**
   * https_spiffe: the peer's SPIFFE bundle document, to authenticate the
   * endpoint on the first fetch. Required unless a bundle of that trust
   * domain is already held (e.g. set with SetFederatedBundle).
   */
  'bootstrap_bundle': (string);
}
