// Original file: proto/anchorage/admin/v1/admin.proto

import type { Long } from '@grpc/proto-loader';

export interface JoinToken {
  'token'?: (string);
  'spiffe_id'?: (string);
  'expires_at'?: (number | string | Long);
}

export interface JoinToken__Output {
  'token': (string);
  'spiffe_id': (string);
  'expires_at': (number);
}
