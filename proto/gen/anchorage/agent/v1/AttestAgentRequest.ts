// Original file: proto/anchorage/agent/v1/agent.proto


export interface AttestAgentRequest {
  'join_token'?: (string);
  /**
   * DER PKCS#10 for the agent's own key
   */
  'csr'?: (Buffer | Uint8Array | string);
}

export interface AttestAgentRequest__Output {
  'join_token': (string);
  /**
   * DER PKCS#10 for the agent's own key
   */
  'csr': (Buffer);
}
