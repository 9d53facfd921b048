// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface TrustAnchor {
  'trust_domain'?: (string);
  /**
   * root | intermediate | jwt (own); x509-authority | jwt (federated)
   */
  'kind'?: (string);
  'federated'?: (boolean);
  /**
   * X.509: SHA-256 of the DER certificate, hex
   */
  'fingerprint'?: (string);
  /**
   * JWT keys
   */
  'kid'?: (string);
  /**
   * X.509
   */
  'subject'?: (string);
  /**
   * 0 when unknown (a federated JWT key)
   */
  'not_before'?: (number | string | Long);
  /**
   * 0 when unknown (a federated JWT key)
   */
  'not_after'?: (number | string | Long);
  /**
   * own keys: the CA journal status (prepared, active, old)
   */
  'status'?: (string);
  /**
   * "pkcs11 label L" (or disk/memory), "upstream", "endpoint URL", "static"
   */
  'source'?: (string);
  /**
   * when it first appeared in a stored bundle (intermediates: created); 0 = before this was recorded
   */
  'first_seen_at'?: (number | string | Long);
  /**
   * Agents whose last report shows they hold it: own anchors by the bundle
   * sequence they report, federated ones by a report since it first appeared.
   * -1 for intermediates, which are in no bundle.
   */
  'agents_holding'?: (number);
}

export interface TrustAnchor__Output {
  'trust_domain': (string);
  /**
   * root | intermediate | jwt (own); x509-authority | jwt (federated)
   */
  'kind': (string);
  'federated': (boolean);
  /**
   * X.509: SHA-256 of the DER certificate, hex
   */
  'fingerprint': (string);
  /**
   * JWT keys
   */
  'kid': (string);
  /**
   * X.509
   */
  'subject': (string);
  /**
   * 0 when unknown (a federated JWT key)
   */
  'not_before': (number);
  /**
   * 0 when unknown (a federated JWT key)
   */
  'not_after': (number);
  /**
   * own keys: the CA journal status (prepared, active, old)
   */
  'status': (string);
  /**
   * "pkcs11 label L" (or disk/memory), "upstream", "endpoint URL", "static"
   */
  'source': (string);
  /**
   * when it first appeared in a stored bundle (intermediates: created); 0 = before this was recorded
   */
  'first_seen_at': (number);
  /**
   * Agents whose last report shows they hold it: own anchors by the bundle
   * sequence they report, federated ones by a report since it first appeared.
   * -1 for intermediates, which are in no bundle.
   */
  'agents_holding': (number);
}
