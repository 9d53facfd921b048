// Original file: proto/anchorage/agent/v1/agent.proto


export interface AttestationParams {
  /**
   * the node attestor: "join_token"
   */
  'attestation_type'?: (string);
  /**
   * the attestor's data; join_token: the token (UTF-8)
   */
  'payload'?: (Buffer | Uint8Array | string);
  /**
   * DER PKCS#10 for the agent's own key
   */
  'csr'?: (Buffer | Uint8Array | string);
}

export interface AttestationParams__Output {
  /**
   * the node attestor: "join_token"
   */
  'attestation_type': (string);
  /**
   * the attestor's data; join_token: the token (UTF-8)
   */
  'payload': (Buffer);
  /**
   * DER PKCS#10 for the agent's own key
   */
  'csr': (Buffer);
}
