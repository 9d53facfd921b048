// Original file: proto/anchorage/agent/v1/agent.proto

import type { AuthorizedEntry as _anchorage_agent_v1_AuthorizedEntry, AuthorizedEntry__Output as _anchorage_agent_v1_AuthorizedEntry__Output } from '../../../anchorage/agent/v1/AuthorizedEntry.js';

/**
 * The stream is a series of passes. The first pass of a stream is the full
 * state (full = true): every authorized entry. Later passes carry only what
 * changed since the previous one: entries added or changed, and the IDs of
 * entries no longer authorized, so a change costs its own size, not the size
 * of the agent's whole set. Bundles are always sent whole.
 * 
 * A pass is one message or several: the server splits a pass so that no
 * message's encoded size exceeds 1 MiB (unless the bundles alone do), however
 * many entries the agent is authorized for (gRPC refuses messages over 4 MiB
 * by default). Every message of a pass but the last has more = true; the
 * agent applies a pass only when the message with more = false arrives, so a
 * full pass never drops entries that are in a later message. All messages of
 * a pass have the same full; the bundles and the tainted sets are in the
 * first message of the pass only (the others leave them empty).
 */
export interface SyncAuthorizedEntriesResponse {
  /**
   * full: all of them; else added or changed
   */
  'entries'?: (_anchorage_agent_v1_AuthorizedEntry)[];
  /**
   * own SPIFFE bundle document
   */
  'bundle'?: (string);
  /**
   * trust domain name -> bundle document
   */
  'federated_bundles'?: ({[key: string]: string});
  'full'?: (boolean);
  /**
   * only when full is false
   */
  'removed_entry_ids'?: (string)[];
  /**
   * Own authorities an operator tainted (anchorage authority x509|jwt taint).
   * Sent in full in the first message and whenever the set changes; absent
   * otherwise (has_tainted false). The agent re-mints at once every SVID
   * (workload and its own) whose issuing intermediate is in
   * tainted_x509_authorities, and drops every cached JWT-SVID whose kid is in
   * tainted_jwt_authorities.
   */
  'has_tainted'?: (boolean);
  /**
   * SHA-256 of the intermediate's DER certificate, lowercase hex
   */
  'tainted_x509_authorities'?: (string)[];
  /**
   * JWT key ids (kid)
   */
  'tainted_jwt_authorities'?: (string)[];
  /**
   * More messages of this same pass follow; apply the pass when more is false.
   */
  'more'?: (boolean);
}

/**
 * The stream is a series of passes. The first pass of a stream is the full
 * state (full = true): every authorized entry. Later passes carry only what
 * changed since the previous one: entries added or changed, and the IDs of
 * entries no longer authorized, so a change costs its own size, not the size
 * of the agent's whole set. Bundles are always sent whole.
 * 
 * A pass is one message or several: the server splits a pass so that no
 * message's encoded size exceeds 1 MiB (unless the bundles alone do), however
 * many entries the agent is authorized for (gRPC refuses messages over 4 MiB
 * by default). Every message of a pass but the last has more = true; the
 * agent applies a pass only when the message with more = false arrives, so a
 * full pass never drops entries that are in a later message. All messages of
 * a pass have the same full; the bundles and the tainted sets are in the
 * first message of the pass only (the others leave them empty).
 */
export interface SyncAuthorizedEntriesResponse__Output {
  /**
   * full: all of them; else added or changed
   */
  'entries': (_anchorage_agent_v1_AuthorizedEntry__Output)[];
  /**
   * own SPIFFE bundle document
   */
  'bundle': (string);
  /**
   * trust domain name -> bundle document
   */
  'federated_bundles': ({[key: string]: string});
  'full': (boolean);
  /**
   * only when full is false
   */
  'removed_entry_ids': (string)[];
  /**
   * Own authorities an operator tainted (anchorage authority x509|jwt taint).
   * Sent in full in the first message and whenever the set changes; absent
   * otherwise (has_tainted false). The agent re-mints at once every SVID
   * (workload and its own) whose issuing intermediate is in
   * tainted_x509_authorities, and drops every cached JWT-SVID whose kid is in
   * tainted_jwt_authorities.
   */
  'has_tainted': (boolean);
  /**
   * SHA-256 of the intermediate's DER certificate, lowercase hex
   */
  'tainted_x509_authorities': (string)[];
  /**
   * JWT key ids (kid)
   */
  'tainted_jwt_authorities': (string)[];
  /**
   * More messages of this same pass follow; apply the pass when more is false.
   */
  'more': (boolean);
}
