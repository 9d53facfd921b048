// Original file: proto/anchorage/admin/v1/admin.proto


export interface RefreshFederationRelationshipRequest {
  'trust_domain'?: (string);
}

export interface RefreshFederationRelationshipRequest__Output {
  'trust_domain': (string);
}
