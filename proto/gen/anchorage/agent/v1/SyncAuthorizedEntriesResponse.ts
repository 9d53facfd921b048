// Original file: proto/anchorage/agent/v1/agent.proto

import type { AuthorizedEntry as _anchorage_agent_v1_AuthorizedEntry, AuthorizedEntry__Output as _anchorage_agent_v1_AuthorizedEntry__Output } from '../../../anchorage/agent/v1/AuthorizedEntry.js';

export interface SyncAuthorizedEntriesResponse {
  'entries'?: (_anchorage_agent_v1_AuthorizedEntry)[];
  /**
   * own SPIFFE bundle document
   */
  'bundle'?: (string);
  /**
   * trust domain name -> bundle document
   */
  'federated_bundles'?: ({[key: string]: string});
}

export interface SyncAuthorizedEntriesResponse__Output {
  'entries': (_anchorage_agent_v1_AuthorizedEntry__Output)[];
  /**
   * own SPIFFE bundle document
   */
  'bundle': (string);
  /**
   * trust domain name -> bundle document
   */
  'federated_bundles': ({[key: string]: string});
}
