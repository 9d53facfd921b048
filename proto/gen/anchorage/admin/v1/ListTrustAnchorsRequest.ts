// Original file: proto/anchorage/admin/v1/admin.proto


export interface ListTrustAnchorsRequest {
}

export interface ListTrustAnchorsRequest__Output {
}
