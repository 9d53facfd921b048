// Original file: proto/anchorage/agent/v1/agent.proto

import type { AttestationResult as _anchorage_agent_v1_AttestationResult, AttestationResult__Output as _anchorage_agent_v1_AttestationResult__Output } from '../../../anchorage/agent/v1/AttestationResult.js';

export interface AttestAgentResponse {
  /**
   * answer with one challenge_response
   */
  'challenge'?: (Buffer | Uint8Array | string);
  /**
   * the last message
   */
  'result'?: (_anchorage_agent_v1_AttestationResult | null);
  'step'?: "challenge"|"result";
}

export interface AttestAgentResponse__Output {
  /**
   * answer with one challenge_response
   */
  'challenge'?: (Buffer);
  /**
   * the last message
   */
  'result'?: (_anchorage_agent_v1_AttestationResult__Output | null);
  'step'?: "challenge"|"result";
}
