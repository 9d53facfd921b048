// Original file: proto/anchorage/agent/v1/agent.proto

import type { Long } from '@grpc/proto-loader';

export interface X509SVIDResult {
  'entry_id'?: (string);
  /**
   * DER, leaf first
   */
  'chain'?: (Buffer | Uint8Array | string)[];
  'expires_at'?: (number | string | Long);
}

export interface X509SVIDResult__Output {
  'entry_id': (string);
  /**
   * DER, leaf first
   */
  'chain': (Buffer)[];
  'expires_at': (number);
}
