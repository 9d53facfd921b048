// Original file: proto/anchorage/admin/v1/admin.proto


export interface ListFederatedBundlesRequest {
}

export interface ListFederatedBundlesRequest__Output {
}
