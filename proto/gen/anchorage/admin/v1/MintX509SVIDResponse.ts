// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface MintX509SVIDResponse {
  /**
   * DER, leaf first
   */
  'chain'?: (Buffer | Uint8Array | string)[];
  /**
   * DER trust anchors
   */
  'bundle'?: (Buffer | Uint8Array | string)[];
  'expires_at'?: (number | string | Long);
}

export interface MintX509SVIDResponse__Output {
  /**
   * DER, leaf first
   */
  'chain': (Buffer)[];
  /**
   * DER trust anchors
   */
  'bundle': (Buffer)[];
  'expires_at': (number);
}
