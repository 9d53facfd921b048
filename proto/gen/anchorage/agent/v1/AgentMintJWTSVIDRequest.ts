// Original file: proto/anchorage/agent/v1/agent.proto


export interface AgentMintJWTSVIDRequest {
  'entry_id'?: (string);
  'audience'?: (string)[];
}

export interface AgentMintJWTSVIDRequest__Output {
  'entry_id': (string);
  'audience': (string)[];
}
