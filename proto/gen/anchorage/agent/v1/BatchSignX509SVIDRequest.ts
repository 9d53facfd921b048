// Original file: proto/anchorage/agent/v1/agent.proto

import type { X509SVIDParams as _anchorage_agent_v1_X509SVIDParams, X509SVIDParams__Output as _anchorage_agent_v1_X509SVIDParams__Output } from '../../../anchorage/agent/v1/X509SVIDParams.js';

export interface BatchSignX509SVIDRequest {
  'params'?: (_anchorage_agent_v1_X509SVIDParams)[];
}

export interface BatchSignX509SVIDRequest__Output {
  'params': (_anchorage_agent_v1_X509SVIDParams__Output)[];
}
