// Original file: proto/anchorage/admin/v1/admin.proto


export interface ListAuthoritiesRequest {
  /**
   * x509 | jwt | root
   */
  'kind'?: (string);
}

export interface ListAuthoritiesRequest__Output {
  /**
   * x509 | jwt | root
   */
  'kind': (string);
}
