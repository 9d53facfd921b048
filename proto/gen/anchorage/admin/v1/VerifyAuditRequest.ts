// Original file: proto/anchorage/admin/v1/admin.proto


export interface VerifyAuditRequest {
}

export interface VerifyAuditRequest__Output {
}
