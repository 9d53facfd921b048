// Original file: proto/anchorage/admin/v1/admin.proto


export interface BanAgentRequest {
  'spiffe_id'?: (string);
}

export interface BanAgentRequest__Output {
  'spiffe_id': (string);
}
