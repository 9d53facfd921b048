// Original file: proto/anchorage/admin/v1/admin.proto

import type { FederationRelationship as _anchorage_admin_v1_FederationRelationship, FederationRelationship__Output as _anchorage_admin_v1_FederationRelationship__Output } from '../../../anchorage/admin/v1/FederationRelationship.js';

export interface UpdateFederationRelationshipRequest {
  /**
   * Every configured field is replaced (trust_domain names the relationship).
   */
  'relationship'?: (_anchorage_admin_v1_FederationRelationship | null);
  /**
   * https_spiffe: replaces the held bundle before the next fetch (optional).
   */
  'bootstrap_bundle'?: (string);
}

export interface UpdateFederationRelationshipRequest__Output {
  /**
   * Every configured field is replaced (trust_domain names the relationship).
   */
  'relationship': (_anchorage_admin_v1_FederationRelationship__Output | null);
  /**
   * https_spiffe: replaces the held bundle before the next fetch (optional).
   */
  'bootstrap_bundle': (string);
}
