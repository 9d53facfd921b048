// Original file: proto/spiffe/workload.proto


export interface X509SVID {
  'spiffe_id'?: (string);
  /**
   * DER chain, leaf first
   */
  'x509_svid'?: (Buffer | Uint8Array | string);
  /**
   * unencrypted PKCS#8 DER
   */
  'x509_svid_key'?: (Buffer | Uint8Array | string);
  /**
   * the trust domain's X.509 bundle, concatenated DER
   */
  'bundle'?: (Buffer | Uint8Array | string);
  'hint'?: (string);
}

export interface X509SVID__Output {
  'spiffe_id': (string);
  /**
   * DER chain, leaf first
   */
  'x509_svid': (Buffer);
  /**
   * unencrypted PKCS#8 DER
   */
  'x509_svid_key': (Buffer);
  /**
   * the trust domain's X.509 bundle, concatenated DER
   */
  'bundle': (Buffer);
  'hint': (string);
}
