// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface AuditRecord {
  'seq'?: (number | string | Long);
  'time_ms'?: (number | string | Long);
  'type'?: (string);
  /**
   * The whole record as JSON (seq, time, type, the event fields that are
   * present, prevHash, hash): what is hashed can be rebuilt from it exactly,
   * so an exported line can be checked again offline.
   */
  'json'?: (string);
}

export interface AuditRecord__Output {
  'seq': (number);
  'time_ms': (number);
  'type': (string);
  /**
   * The whole record as JSON (seq, time, type, the event fields that are
   * present, prevHash, hash): what is hashed can be rebuilt from it exactly,
   * so an exported line can be checked again offline.
   */
  'json': (string);
}
