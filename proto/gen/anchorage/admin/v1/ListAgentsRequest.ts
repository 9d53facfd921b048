// Original file: proto/anchorage/admin/v1/admin.proto


export interface ListAgentsRequest {
}

export interface ListAgentsRequest__Output {
}
