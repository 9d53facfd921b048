// Original file: proto/anchorage/admin/v1/admin.proto


export interface GetKeyProtectionRequest {
}

export interface GetKeyProtectionRequest__Output {
}
