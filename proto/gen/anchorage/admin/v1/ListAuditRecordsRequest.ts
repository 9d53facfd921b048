// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface ListAuditRecordsRequest {
  /**
   * only records at or after this time, Unix MILLIseconds; 0 = from the first
   */
  'since_ms'?: (number | string | Long);
  /**
   * only records about this SPIFFE ID
   */
  'spiffe_id'?: (string);
  /**
   * only records with this X.509 serial (hex) or JWT jti
   */
  'serial'?: (string);
  /**
   * at most this many existing records (0 = all); not applied to followed ones
   */
  'limit'?: (number);
  /**
   * then stream new matching records as they are committed
   */
  'follow'?: (boolean);
  /**
   * only records with a greater seq
   */
  'after_seq'?: (number | string | Long);
}

export interface ListAuditRecordsRequest__Output {
  /**
   * only records at or after this time, Unix MILLIseconds; 0 = from the first
   */
  'since_ms': (number);
  /**
   * only records about this SPIFFE ID
   */
  'spiffe_id': (string);
  /**
   * only records with this X.509 serial (hex) or JWT jti
   */
  'serial': (string);
  /**
   * at most this many existing records (0 = all); not applied to followed ones
   */
  'limit': (number);
  /**
   * then stream new matching records as they are committed
   */
  'follow': (boolean);
  /**
   * only records with a greater seq
   */
  'after_seq': (number);
}
