// Original file: proto/anchorage/agent/v1/agent.proto

import type { X509SVIDResult as _anchorage_agent_v1_X509SVIDResult, X509SVIDResult__Output as _anchorage_agent_v1_X509SVIDResult__Output } from '../../../anchorage/agent/v1/X509SVIDResult.js';

export interface BatchSignX509SVIDResponse {
  'results'?: (_anchorage_agent_v1_X509SVIDResult)[];
}

export interface BatchSignX509SVIDResponse__Output {
  'results': (_anchorage_agent_v1_X509SVIDResult__Output)[];
}
