// Original file: proto/anchorage/admin/v1/admin.proto


export interface SetFederatedBundleRequest {
  'trust_domain'?: (string);
  /**
   * SPIFFE bundle document (JWKS JSON) of that trust domain
   */
  'document'?: (string);
}

export interface SetFederatedBundleRequest__Output {
  'trust_domain': (string);
  /**
   * SPIFFE bundle document (JWKS JSON) of that trust domain
   */
  'document': (string);
}
