// Original file: proto/anchorage/admin/v1/admin.proto


export interface GetCAStatusRequest {
}

export interface GetCAStatusRequest__Output {
}
