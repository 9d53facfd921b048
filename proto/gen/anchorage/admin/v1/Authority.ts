// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface Authority {
  /**
   * CA journal id
   */
  'id'?: (string);
  /**
   * x509 | jwt | root
   */
  'kind'?: (string);
  /**
   * prepared | active | old
   */
  'status'?: (string);
  'tainted'?: (boolean);
  /**
   * no longer in the bundle; kept for the record
   */
  'revoked'?: (boolean);
  /**
   * x509, root: SHA-256 of the DER certificate, hex
   */
  'fingerprint'?: (string);
  /**
   * jwt
   */
  'kid'?: (string);
  /**
   * x509, root
   */
  'subject'?: (string);
  'not_before'?: (number | string | Long);
  'not_after'?: (number | string | Long);
  /**
   * x509: the journal id of the root that signed it
   */
  'issuer_id'?: (string);
  /**
   * KeyManager id (PKCS#11 label); empty once revoked and destroyed
   */
  'key_id'?: (string);
  'tainted_at'?: (number | string | Long);
  'revoked_at'?: (number | string | Long);
  /**
   * root, jwt: the first bundle sequence that held it (0 = not yet)
   */
  'published_sequence'?: (number | string | Long);
  /**
   * root, jwt: agents whose reported bundle sequence holds it; -1 for x509
   */
  'agents_holding'?: (number);
  /**
   * x509, jwt: the server that owns it when several share the datastore ('' = a lone server)
   */
  'server_id'?: (string);
}

export interface Authority__Output {
  /**
   * CA journal id
   */
  'id': (string);
  /**
   * x509 | jwt | root
   */
  'kind': (string);
  /**
   * prepared | active | old
   */
  'status': (string);
  'tainted': (boolean);
  /**
   * no longer in the bundle; kept for the record
   */
  'revoked': (boolean);
  /**
   * x509, root: SHA-256 of the DER certificate, hex
   */
  'fingerprint': (string);
  /**
   * jwt
   */
  'kid': (string);
  /**
   * x509, root
   */
  'subject': (string);
  'not_before': (number);
  'not_after': (number);
  /**
   * x509: the journal id of the root that signed it
   */
  'issuer_id': (string);
  /**
   * KeyManager id (PKCS#11 label); empty once revoked and destroyed
   */
  'key_id': (string);
  'tainted_at': (number);
  'revoked_at': (number);
  /**
   * root, jwt: the first bundle sequence that held it (0 = not yet)
   */
  'published_sequence': (number);
  /**
   * root, jwt: agents whose reported bundle sequence holds it; -1 for x509
   */
  'agents_holding': (number);
  /**
   * x509, jwt: the server that owns it when several share the datastore ('' = a lone server)
   */
  'server_id': (string);
}
