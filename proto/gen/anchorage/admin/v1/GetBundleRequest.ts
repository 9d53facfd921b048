// Original file: proto/anchorage/admin/v1/admin.proto


export interface GetBundleRequest {
}

export interface GetBundleRequest__Output {
}
