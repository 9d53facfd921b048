// Entry sync: applies one message of the server's push stream of authorized
// entries (full set or changes) and bundles to the WorkloadCache. The stream
// itself, its reconnects and backoff, are in the NodeAgent loop (../agent.ts).
import { errorMessage } from '@anchorage/client/errors';
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
