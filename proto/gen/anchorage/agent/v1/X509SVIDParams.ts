// Original file: proto/anchorage/agent/v1/agent.proto


export interface X509SVIDParams {
  'entry_id'?: (string);
  'csr'?: (Buffer | Uint8Array | string);
}

export interface X509SVIDParams__Output {
  'entry_id': (string);
  'csr': (Buffer);
}
