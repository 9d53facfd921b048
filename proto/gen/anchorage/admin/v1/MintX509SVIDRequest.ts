// Original file: proto/anchorage/admin/v1/admin.proto


export interface MintX509SVIDRequest {
  /**
   * DER PKCS#10
   */
  'csr'?: (Buffer | Uint8Array | string);
  'spiffe_id'?: (string);
  /**
   * seconds; 0 = server default
   */
  'ttl'?: (number);
  'dns_names'?: (string)[];
}

export interface MintX509SVIDRequest__Output {
  /**
   * DER PKCS#10
   */
  'csr': (Buffer);
  'spiffe_id': (string);
  /**
   * seconds; 0 = server default
   */
  'ttl': (number);
  'dns_names': (string)[];
}
