// Original file: proto/anchorage/agent/v1/agent.proto

import type { AttestationParams as _anchorage_agent_v1_AttestationParams, AttestationParams__Output as _anchorage_agent_v1_AttestationParams__Output } from '../../../anchorage/agent/v1/AttestationParams.js';

export interface AttestAgentRequest {
  /**
   * first message, and only the first
   */
  'params'?: (_anchorage_agent_v1_AttestationParams | null);
  /**
   * one per challenge, after it
   */
  'challenge_response'?: (Buffer | Uint8Array | string);
  'step'?: "params"|"challenge_response";
}

export interface AttestAgentRequest__Output {
  /**
   * first message, and only the first
   */
  'params'?: (_anchorage_agent_v1_AttestationParams__Output | null);
  /**
   * one per challenge, after it
   */
  'challenge_response'?: (Buffer);
  'step'?: "params"|"challenge_response";
}
