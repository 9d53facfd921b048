// Original file: proto/anchorage/agent/v1/agent.proto

import type { Long } from '@grpc/proto-loader';

export interface AgentMintJWTSVIDResponse {
  'token'?: (string);
  'expires_at'?: (number | string | Long);
}

export interface AgentMintJWTSVIDResponse__Output {
  'token': (string);
  'expires_at': (number);
}
