// Original file: proto/anchorage/admin/v1/admin.proto

import type { Selector as _anchorage_admin_v1_Selector, Selector__Output as _anchorage_admin_v1_Selector__Output } from '../../../anchorage/admin/v1/Selector.js';
import type { Long } from '@grpc/proto-loader';

export interface Agent {
  'spiffe_id'?: (string);
  'attestation_type'?: (string);
  /**
   * hex serial of its current SVID
   */
  'cert_serial'?: (string);
  'cert_not_after'?: (number | string | Long);
  /**
   * node selectors
   */
  'selectors'?: (_anchorage_admin_v1_Selector)[];
  'evicted'?: (boolean);
  'created_at'?: (number | string | Long);
  'updated_at'?: (number | string | Long);
  'banned'?: (boolean);
  /**
   * What the agent last reported (0 = it never did): when, the sequence of
   * the bundle it holds, and its clock minus the server's.
   */
  'last_seen_at'?: (number | string | Long);
  'bundle_sequence'?: (number | string | Long);
  'clock_skew_ms'?: (number | string | Long);
}

export interface Agent__Output {
  'spiffe_id': (string);
  'attestation_type': (string);
  /**
   * hex serial of its current SVID
   */
  'cert_serial': (string);
  'cert_not_after': (number);
  /**
   * node selectors
   */
  'selectors': (_anchorage_admin_v1_Selector__Output)[];
  'evicted': (boolean);
  'created_at': (number);
  'updated_at': (number);
  'banned': (boolean);
  /**
   * What the agent last reported (0 = it never did): when, the sequence of
   * the bundle it holds, and its clock minus the server's.
   */
  'last_seen_at': (number);
  'bundle_sequence': (number);
  'clock_skew_ms': (number);
}
