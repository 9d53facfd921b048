// Original file: proto/anchorage/admin/v1/admin.proto


export interface ListFederationRelationshipsRequest {
}

export interface ListFederationRelationshipsRequest__Output {
}
