// Original file: proto/anchorage/admin/v1/admin.proto


export interface KeyProtection {
  /**
   * the CAKey it belongs to
   */
  'journal_id'?: (string);
  /**
   * KeyManager id (PKCS#11 label)
   */
  'key_id'?: (string);
  /**
   * false: the token has no (single) private key with that label
   */
  'found'?: (boolean);
  'sensitive'?: (boolean);
  'extractable'?: (boolean);
  'always_sensitive'?: (boolean);
  'never_extractable'?: (boolean);
  /**
   * pkcs11 | disk | memory: only pkcs11 has the facts below
   */
  'key_manager'?: (string);
}

export interface KeyProtection__Output {
  /**
   * the CAKey it belongs to
   */
  'journal_id': (string);
  /**
   * KeyManager id (PKCS#11 label)
   */
  'key_id': (string);
  /**
   * false: the token has no (single) private key with that label
   */
  'found': (boolean);
  'sensitive': (boolean);
  'extractable': (boolean);
  'always_sensitive': (boolean);
  'never_extractable': (boolean);
  /**
   * pkcs11 | disk | memory: only pkcs11 has the facts below
   */
  'key_manager': (string);
}
