// Original file: proto/anchorage/admin/v1/admin.proto

import type { Authority as _anchorage_admin_v1_Authority, Authority__Output as _anchorage_admin_v1_Authority__Output } from '../../../anchorage/admin/v1/Authority.js';
import type { LaggingAgent as _anchorage_admin_v1_LaggingAgent, LaggingAgent__Output as _anchorage_admin_v1_LaggingAgent__Output } from '../../../anchorage/admin/v1/LaggingAgent.js';

export interface AuthorityChange {
  /**
   * the authority acted on (prepare: the new one)
   */
  'authority'?: (_anchorage_admin_v1_Authority | null);
  /**
   * others the action changed (e.g. the intermediates of a revoked root)
   */
  'also'?: (_anchorage_admin_v1_Authority)[];
  /**
   * --force: agents that did not hold the new bundle
   */
  'lost_trust'?: (_anchorage_admin_v1_LaggingAgent)[];
  /**
   * one line for the operator
   */
  'message'?: (string);
}

export interface AuthorityChange__Output {
  /**
   * the authority acted on (prepare: the new one)
   */
  'authority': (_anchorage_admin_v1_Authority__Output | null);
  /**
   * others the action changed (e.g. the intermediates of a revoked root)
   */
  'also': (_anchorage_admin_v1_Authority__Output)[];
  /**
   * --force: agents that did not hold the new bundle
   */
  'lost_trust': (_anchorage_admin_v1_LaggingAgent__Output)[];
  /**
   * one line for the operator
   */
  'message': (string);
}
