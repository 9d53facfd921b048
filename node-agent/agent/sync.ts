// Entry sync: gathers the messages of one pass of the server's push stream of
// authorized entries (full set or changes) and bundles, and applies the pass
// to the WorkloadCache. The stream
// itself, its reconnects and backoff, are in the NodeAgent loop (../agent.ts).
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import type { AuthorizedEntry__Output } from '../../proto/gen/anchorage/agent/v1/AuthorizedEntry.js';
import type { SyncAuthorizedEntriesResponse__Output } from '../../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import type { WorkloadCache } from '../cache.js';
import type { CachedEntry } from '../state.js';

/** An entry of the agent API as the cache and the state file hold it. */
export function toCachedEntry(e: AuthorizedEntry__Output): CachedEntry {
  return {
    id: e.id,
    spiffeId: e.spiffe_id,
    selectors: e.selectors,
    x509SvidTtl: e.x509_svid_ttl,
    jwtSvidTtl: e.jwt_svid_ttl,
    dnsNames: e.dns_names,
    federatesWith: e.federates_with,
    hint: e.hint,
    revision: Number(e.revision),
  };
}

/** How much of one pass the agent buffers before giving up on it. */
export interface PassLimits {
  /** Messages in one pass. */
  messages: number;
  /** Entries and removed IDs, approximately in bytes (the lengths of their strings). */
  bytes: number;
}

/**
 * The server splits a pass into messages of at most 1 MiB (ca/agentapi/sync-chunks.ts):
 * 512 of them is a pass of about 2.5 million entries, far beyond any agent;
 * 256 MiB of entry text is the memory one pass may hold while it arrives.
 */
export const PASS_LIMITS: PassLimits = { messages: 512, bytes: 256 * 1024 * 1024 };

function approxEntryBytes(e: AuthorizedEntry__Output): number {
  let n = 32 + e.id.length + e.spiffe_id.length + e.hint.length;
  for (const list of [e.selectors, e.dns_names, e.federates_with]) for (const s of list) n += s.length + 2;
  return n;
}

/**
 * Gathers the messages of one pass of the sync stream (every message but the
 * last has `more`) into the one message {@link applySyncMessage} applies:
 * the entries and removed IDs of all of them, the bundles and tainted sets of
 * the first. A pass is applied only when complete, so a full pass never drops
 * entries that are in a later message. One assembler per stream; what it
 * buffers is bounded by {@link PassLimits}: a pass beyond them, or a pass
 * whose messages disagree on `full`, fails the stream (the agent reconnects
 * with backoff and keeps serving what it has).
 */
export class SyncAssembler {
  #pass: SyncAuthorizedEntriesResponse__Output | undefined;
  #messages = 0;
  #bytes = 0;
  readonly #limits: PassLimits;

  constructor(limits: PassLimits = PASS_LIMITS) {
    this.#limits = limits;
  }

  /** Messages of the pass under way, 0 between passes. */
  get buffered(): number {
    return this.#messages;
  }

  /** Adds one message; returns the whole pass when this message completes it. */
  add(m: SyncAuthorizedEntriesResponse__Output): SyncAuthorizedEntriesResponse__Output | undefined {
    const pass = this.#pass;
    if (pass && m.full !== pass.full) {
      this.#reset();
      throw new AnchorageError('internal', 'agent: the server changed full in the middle of a sync pass');
    }
    this.#messages++;
    for (const e of m.entries) this.#bytes += approxEntryBytes(e);
    for (const id of m.removed_entry_ids) this.#bytes += id.length + 2;
    if (this.#messages > this.#limits.messages || this.#bytes > this.#limits.bytes) {
      const what = `${this.#messages} messages, about ${this.#bytes} bytes of entries`;
      this.#reset();
      throw new AnchorageError('internal', `agent: a sync pass from the server exceeds what the agent buffers (${what}; at most ${this.#limits.messages} messages and ${this.#limits.bytes} bytes)`);
    }
    if (!pass) {
      if (!m.more) {
        this.#reset();
        return m; // the common case: a pass of one message
      }
      this.#pass = { ...m, entries: [...m.entries], removed_entry_ids: [...m.removed_entry_ids] };
      return undefined;
    }
    for (const e of m.entries) pass.entries.push(e);
    for (const id of m.removed_entry_ids) pass.removed_entry_ids.push(id);
    if (m.more) return undefined;
    this.#reset();
    return { ...pass, more: false };
  }

  #reset(): void {
    this.#pass = undefined;
    this.#messages = 0;
    this.#bytes = 0;
  }
}

/** What {@link applySyncMessage} changed. */
export interface SyncApplied {
  /** New or changed entries (or rotations) wait for an SVID. */
  needMint: boolean;
  /** The bundles changed: they are part of the state file. */
  bundlesChanged: boolean;
}

/**
 * Applies one full-state or change message to `cache`. `synced` says whether
 * an earlier message of this run arrived (only the first is logged at info).
 * `lastBundles` holds the bundle documents of the last message applied: most
 * messages repeat them, and parsing them (certificates, JWKs) was the agent's
 * largest cost when a burst of entries arrived, so they are parsed only when
 * they differ. A change message costs what it changes, not the whole set.
 */
export function applySyncMessage(
  td: TrustDomain,
  cache: WorkloadCache,
  log: Logger,
  synced: boolean,
  m: SyncAuthorizedEntriesResponse__Output,
  lastBundles: { docs?: string },
): SyncApplied {
  const docs = JSON.stringify([m.bundle, m.federated_bundles]);
  let bundlesChanged = false;
  if (docs !== lastBundles.docs) {
    const own = SpiffeBundle.parse(td, m.bundle);
    const federated = new Map<string, SpiffeBundle>();
    for (const [name, doc] of Object.entries(m.federated_bundles)) {
      try {
        federated.set(name, SpiffeBundle.parse(TrustDomain.parse(name), doc));
      } catch (err) {
        const old = cache.bundle(name);
        if (old && name !== td.name) federated.set(name, old);
        log.error({ trustDomain: name, err: errorMessage(err) }, 'agent: the server sent an unreadable federated bundle; keeping the previous one');
      }
    }
    bundlesChanged = cache.setBundles(own, federated);
    lastBundles.docs = docs;
  }
  const received = m.entries.map(toCachedEntry);
  for (const e of received) SpiffeId.parse(e.spiffeId); // a malformed ID fails the message, not a lookup later
  // The first message of a stream is the whole set; later ones are changes.
  const { changed, pending } = m.full ? cache.setEntries(received) : cache.applyChanges(received, m.removed_entry_ids);
  if (!synced) log.info({ entries: cache.size }, 'agent: synced with the server');
  else if (changed) {
    log.debug({ entries: cache.size, changed: received.length, removed: m.removed_entry_ids.length, toMint: pending }, 'agent: authorized entries changed');
  }
  return { needMint: pending > 0, bundlesChanged };
}
