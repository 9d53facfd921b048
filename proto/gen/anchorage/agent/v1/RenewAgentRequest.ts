// Original file: proto/anchorage/agent/v1/agent.proto


export interface RenewAgentRequest {
  'csr'?: (Buffer | Uint8Array | string);
}

export interface RenewAgentRequest__Output {
  'csr': (Buffer);
}
