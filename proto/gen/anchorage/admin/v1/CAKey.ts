// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface CAKey {
  'id'?: (string);
  /**
   * root | x509 | jwt
   */
  'kind'?: (string);
  /**
   * preparing | prepared | active | old
   */
  'status'?: (string);
  /**
   * KeyManager id (PKCS#11 label)
   */
  'key_id'?: (string);
  /**
   * JWT keys
   */
  'kid'?: (string);
  'not_before'?: (number | string | Long);
  'not_after'?: (number | string | Long);
  /**
   * DER, root and x509
   */
  'cert'?: (Buffer | Uint8Array | string);
  /**
   * x509 and jwt: when its successor is due to be prepared
   */
  'prepare_at'?: (number | string | Long);
  /**
   * x509 and jwt: when its successor is due to be active
   */
  'activate_at'?: (number | string | Long);
}

export interface CAKey__Output {
  'id': (string);
  /**
   * root | x509 | jwt
   */
  'kind': (string);
  /**
   * preparing | prepared | active | old
   */
  'status': (string);
  /**
   * KeyManager id (PKCS#11 label)
   */
  'key_id': (string);
  /**
   * JWT keys
   */
  'kid': (string);
  'not_before': (number);
  'not_after': (number);
  /**
   * DER, root and x509
   */
  'cert': (Buffer);
  /**
   * x509 and jwt: when its successor is due to be prepared
   */
  'prepare_at': (number);
  /**
   * x509 and jwt: when its successor is due to be active
   */
  'activate_at': (number);
}
