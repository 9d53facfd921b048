// Original file: proto/anchorage/admin/v1/admin.proto


export interface DeleteFederationRelationshipRequest {
  'trust_domain'?: (string);
}

export interface DeleteFederationRelationshipRequest__Output {
  'trust_domain': (string);
}
