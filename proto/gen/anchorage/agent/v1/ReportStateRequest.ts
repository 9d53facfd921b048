// Original file: proto/anchorage/agent/v1/agent.proto

import type { Long } from '@grpc/proto-loader';

export interface ReportStateRequest {
  /**
   * spiffe_sequence of the own trust domain's bundle the agent holds
   */
  'bundle_sequence'?: (number | string | Long);
  /**
   * the agent's clock when it sent this, ms since the epoch
   */
  'agent_time_ms'?: (number | string | Long);
}

export interface ReportStateRequest__Output {
  /**
   * spiffe_sequence of the own trust domain's bundle the agent holds
   */
  'bundle_sequence': (number);
  /**
   * the agent's clock when it sent this, ms since the epoch
   */
  'agent_time_ms': (number);
}
