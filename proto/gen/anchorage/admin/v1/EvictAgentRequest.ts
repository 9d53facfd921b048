// Original file: proto/anchorage/admin/v1/admin.proto


export interface EvictAgentRequest {
  'spiffe_id'?: (string);
}

export interface EvictAgentRequest__Output {
  'spiffe_id': (string);
}
