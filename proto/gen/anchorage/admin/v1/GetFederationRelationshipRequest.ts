// Original file: proto/anchorage/admin/v1/admin.proto


export interface GetFederationRelationshipRequest {
  'trust_domain'?: (string);
}

export interface GetFederationRelationshipRequest__Output {
  'trust_domain': (string);
}
