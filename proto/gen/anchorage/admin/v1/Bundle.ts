// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface Bundle {
  'trust_domain'?: (string);
  /**
   * DER
   */
  'x509_authorities'?: (Buffer | Uint8Array | string)[];
  /**
   * SPIFFE bundle document (JWKS JSON)
   */
  'document'?: (string);
  'sequence'?: (number | string | Long);
  'refresh_hint'?: (number);
}

export interface Bundle__Output {
  'trust_domain': (string);
  /**
   * DER
   */
  'x509_authorities': (Buffer)[];
  /**
   * SPIFFE bundle document (JWKS JSON)
   */
  'document': (string);
  'sequence': (number);
  'refresh_hint': (number);
}
