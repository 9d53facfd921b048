// Original file: proto/anchorage/agent/v1/agent.proto


export interface AttestationResult {
  /**
   * spiffe://<td>/anchorage/agent/<type>/...
   */
  'spiffe_id'?: (string);
  /**
   * DER, leaf first
   */
  'svid_chain'?: (Buffer | Uint8Array | string)[];
  /**
   * SPIFFE bundle document of the server's trust domain
   */
  'bundle'?: (string);
}

export interface AttestationResult__Output {
  /**
   * spiffe://<td>/anchorage/agent/<type>/...
   */
  'spiffe_id': (string);
  /**
   * DER, leaf first
   */
  'svid_chain': (Buffer)[];
  /**
   * SPIFFE bundle document of the server's trust domain
   */
  'bundle': (string);
}
