// Original file: proto/anchorage/agent/v1/agent.proto


export interface RenewAgentResponse {
  'svid_chain'?: (Buffer | Uint8Array | string)[];
}

export interface RenewAgentResponse__Output {
  'svid_chain': (Buffer)[];
}
