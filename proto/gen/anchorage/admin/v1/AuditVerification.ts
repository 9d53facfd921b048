// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface AuditVerification {
  'ok'?: (boolean);
  'records_checked'?: (number | string | Long);
  'checkpoints_checked'?: (number | string | Long);
  /**
   * the last record's seq
   */
  'head_seq'?: (number | string | Long);
  /**
   * 0 when ok
   */
  'first_bad_seq'?: (number | string | Long);
  /**
   * why the first bad record is bad ('' when ok)
   */
  'reason'?: (string);
}

export interface AuditVerification__Output {
  'ok': (boolean);
  'records_checked': (number);
  'checkpoints_checked': (number);
  /**
   * the last record's seq
   */
  'head_seq': (number);
  /**
   * 0 when ok
   */
  'first_bad_seq': (number);
  /**
   * why the first bad record is bad ('' when ok)
   */
  'reason': (string);
}
