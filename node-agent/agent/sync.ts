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

/**
 * Applies one full-state or change message to `cache`. `synced` says whether
 * an earlier message of this run arrived (only the first is logged at info).
 * Returns true when new or changed entries need an SVID.
 */
export function applySyncMessage(
  td: TrustDomain,
  cache: WorkloadCache,
  log: Logger,
  synced: boolean,
  m: SyncAuthorizedEntriesResponse__Output,
): boolean {
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
  const received = m.entries.map(toCachedEntry);
  for (const e of received) SpiffeId.parse(e.spiffeId); // a malformed ID fails the message, not a lookup later
  // The first message of a stream is the whole set; later ones are changes.
  let entries = received;
  if (!m.full) {
    const merged = new Map(cache.entries().map((e) => [e.id, e]));
    for (const id of m.removed_entry_ids) merged.delete(id);
    for (const e of received) merged.set(e.id, e);
    entries = [...merged.values()];
  }
  cache.setBundles(own, federated);
  const { changed, needSvid } = cache.setEntries(entries);
  if (!synced) log.info({ entries: entries.length }, 'agent: synced with the server');
  else if (changed) {
    log.debug({ entries: entries.length, changed: received.length, removed: m.removed_entry_ids.length, toMint: needSvid.length }, 'agent: authorized entries changed');
  }
  return needSvid.length > 0;
}
