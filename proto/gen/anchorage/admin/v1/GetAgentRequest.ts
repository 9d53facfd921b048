// Original file: proto/anchorage/admin/v1/admin.proto


export interface GetAgentRequest {
  'spiffe_id'?: (string);
}

export interface GetAgentRequest__Output {
  'spiffe_id': (string);
}
