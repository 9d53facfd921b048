// Original file: proto/anchorage/admin/v1/admin.proto

import type { FederationRelationship as _anchorage_admin_v1_FederationRelationship, FederationRelationship__Output as _anchorage_admin_v1_FederationRelationship__Output } from '../../../anchorage/admin/v1/FederationRelationship.js';

export interface ListFederationRelationshipsResponse {
  'relationships'?: (_anchorage_admin_v1_FederationRelationship)[];
}

export interface ListFederationRelationshipsResponse__Output {
  'relationships': (_anchorage_admin_v1_FederationRelationship__Output)[];
}
