// Original file: proto/anchorage/admin/v1/admin.proto


export interface AuthorityRequest {
  /**
   * x509 | jwt | root
   */
  'kind'?: (string);
  /**
   * the authority; empty: the one the command implies (see the CLI)
   */
  'id'?: (string);
  /**
   * root revoke: remove even though agents lag (they lose trust)
   */
  'force'?: (boolean);
}

export interface AuthorityRequest__Output {
  /**
   * x509 | jwt | root
   */
  'kind': (string);
  /**
   * the authority; empty: the one the command implies (see the CLI)
   */
  'id': (string);
  /**
   * root revoke: remove even though agents lag (they lose trust)
   */
  'force': (boolean);
}
