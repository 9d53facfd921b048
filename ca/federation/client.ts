import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import type { ChangeFeed } from '../changes.js';
import type { DataStore, FederationRelationship, RelationshipStatus, StoredBundle } from '../datastore/DataStore.js';
import { BundleFetchError, fetchBundle, type EndpointProfile } from './fetch.js';
import { relationshipNotFound } from './relationships.js';
import type { AuditSink } from '../audit/event.js';

/**
 * The federation client: keeps the bundle of every federated trust domain
 * fresh by fetching it from the peer's bundle endpoint (fetch.ts) at the
 * peer's spiffe_refresh_hint, clamped to `bounds`.
 *
 * A fetch that fails for any reason changes nothing that is trusted: the last
 * good bundle stays in the datastore (and with the agents), and the failure
 * is logged and recorded on the relationship (`anchorage federation show`).
 * Failed fetches are retried sooner, from `bounds.min` doubling up to the
 * normal interval. A new bundle is stored under its own trust domain only
 * (never merged with another) and announced on the change feed, which pushes
 * it to every agent.
 */

export interface RefreshBounds {
  /** Seconds. A peer's hint below this is raised to it (it also paces retries). */
  min: number;
  /** Seconds. A hint above this is lowered to it. */
  max: number;
  /** Seconds, when the document carries no hint. */
  fallback: number;
}

export const DEFAULT_REFRESH_BOUNDS: RefreshBounds = { min: 30, max: 3600, fallback: 300 };

/**
 * Several servers sharing one datastore take turns through this: of the
 * servers whose timer fires for a relationship, the one that claims its next
 * fetch makes it; the others reschedule to the stored next_refresh_at and
 * read the stored outcome. PgCluster (ca/datastore/postgres/cluster.ts) is one.
 */
export interface RefreshLease {
  /**
   * Takes the next timed fetch if it is due at `now` (Unix seconds), until
   * `until`; otherwise says when it is due. Undefined: no such relationship.
   */
  claimRefresh(trustDomain: string, now: number, until: number): Promise<{ claimed: boolean; nextRefreshAt: number } | undefined>;
}

export interface FederationClientOptions {
  datastore: DataStore;
  feed: ChangeFeed;
  logger: Logger;
  bounds?: RefreshBounds;
  /** Per fetch (connect, TLS, the whole body). */
  timeoutMs?: number;
  maxBytes?: number;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Told every fetch's outcome (ca/metrics.ts): the failure reason, or undefined on success. */
  metrics?: { refreshed(trustDomain: string, reason: string | undefined): void };
  /**
   * Set when several servers share the datastore: timed fetches happen once
   * per relationship across them (see {@link RefreshLease}), and the list of
   * relationships is read again every `bounds.min` seconds, so that one
   * created through another server is fetched here too if that server goes
   * away. Unset (one server): every timed fetch is made.
   */
  lease?: RefreshLease;
  /** A fetched bundle that changed what is stored is recorded here (ca/audit/). */
  audit?: AuditSink;
}

interface Slot {
  timer?: NodeJS.Timeout;
  inflight?: Promise<FederationRelationship>;
  /** Raised by update and delete: a fetch started before must not store what it got. */
  generation: number;
}

export class FederationClient {
  readonly #audit: AuditSink | undefined;
  readonly #ds: DataStore;
  readonly #feed: ChangeFeed;
  readonly #log: Logger;
  readonly #bounds: RefreshBounds;
  readonly #timeoutMs: number;
  readonly #maxBytes: number | undefined;
  readonly #now: () => number;
  readonly #metrics: FederationClientOptions['metrics'];
  readonly #slots = new Map<string, Slot>();
  readonly #lease: RefreshLease | undefined;
  #syncTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: FederationClientOptions) {
    this.#audit = opts.audit;
    this.#ds = opts.datastore;
    this.#feed = opts.feed;
    this.#log = opts.logger;
    this.#bounds = opts.bounds ?? DEFAULT_REFRESH_BOUNDS;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#maxBytes = opts.maxBytes;
    this.#now = opts.now ?? Date.now;
    this.#metrics = opts.metrics;
    this.#lease = opts.lease;
  }

  /** Schedules every stored relationship; each is fetched within its first second. */
  async start(): Promise<void> {
    const all = await this.#ds.listRelationships();
    for (const r of all) this.#schedule(r.trustDomain, Math.floor(Math.random() * 1000));
    if (all.length > 0) this.#log.info({ relationships: all.map((r) => r.trustDomain) }, 'federation: client started');
    if (this.#lease) this.#scheduleSync();
  }

  /**
   * What a relationship's timer runs. Without a lease: {@link refresh}. With
   * one: the fetch is made only if this server claims it; otherwise the
   * relationship is rescheduled for when the stored next_refresh_at comes
   * (the server that fetched set it) and the stored outcome is returned (its
   * bundle, if new, reached this server's agents through the change feed).
   */
  async due(trustDomain: string): Promise<FederationRelationship> {
    if (!this.#lease) return this.refresh(trustDomain);
    const slot = this.#slot(trustDomain);
    if (slot.inflight) return slot.inflight;
    const nowMs = this.#now();
    const now = Math.floor(nowMs / 1000);
    const claim = await this.#lease.claimRefresh(trustDomain, now, now + this.#leaseSeconds());
    if (!claim) {
      this.forget(trustDomain);
      throw relationshipNotFound(trustDomain);
    }
    if (claim.claimed) return this.refresh(trustDomain);
    // Up to a second after it is due: the servers' timers do not all fire at once.
    this.#schedule(trustDomain, Math.max(0, claim.nextRefreshAt * 1000 - nowMs) + Math.floor(Math.random() * 1000));
    return this.#current(trustDomain);
  }

  /**
   * Fetches the peer's bundle now (sharing a fetch already under way) and
   * resolves with the relationship as recorded afterwards, success or not.
   * `not_found` if there is no such relationship.
   */
  refresh(trustDomain: string): Promise<FederationRelationship> {
    const slot = this.#slot(trustDomain);
    if (slot.inflight) return slot.inflight;
    clearTimeout(slot.timer);
    const p = this.#refresh(trustDomain, slot).finally(() => {
      slot.inflight = undefined;
    });
    slot.inflight = p;
    return p;
  }

  /** A relationship was created or changed: its next fetch starts now. */
  changed(trustDomain: string): Promise<FederationRelationship> {
    const slot = this.#slot(trustDomain);
    slot.generation++;
    // A fetch under way was made with the old settings: let it finish unrecorded, then fetch again.
    const after = slot.inflight ? slot.inflight.catch(() => undefined) : Promise.resolve();
    return after.then(() => this.refresh(trustDomain));
  }

  /** A relationship was deleted: no more fetches, and one under way stores nothing. */
  forget(trustDomain: string): void {
    const slot = this.#slots.get(trustDomain);
    if (!slot) return;
    slot.generation++;
    clearTimeout(slot.timer);
    this.#slots.delete(trustDomain);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#syncTimer);
    const inflight = [...this.#slots.values()].map((s) => s.inflight?.catch(() => undefined));
    for (const s of this.#slots.values()) clearTimeout(s.timer);
    await Promise.all(inflight);
    this.#slots.clear();
  }

  #slot(td: string): Slot {
    let slot = this.#slots.get(td);
    if (!slot) {
      slot = { generation: 0 };
      this.#slots.set(td, slot);
    }
    return slot;
  }

  #schedule(td: string, delayMs: number): void {
    if (this.#closed) return;
    const slot = this.#slot(td);
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      this.due(td).catch((err: unknown) => {
        // not_found: deleted meanwhile; anything else is a datastore problem, retried at the minimum interval.
        if (err instanceof AnchorageError && err.code === 'not_found') return;
        this.#log.error({ trustDomain: td, err: errorMessage(err) }, 'federation: refresh could not run');
        this.#schedule(td, this.#bounds.min * 1000);
      });
    }, delayMs);
    slot.timer.unref();
  }

  /**
   * Seconds a claimed fetch holds the lease: past the fetch's own timeout and
   * the writes after it, so a server that died mid-fetch delays the next
   * one by this much at most.
   */
  #leaseSeconds(): number {
    return Math.ceil(this.#timeoutMs / 1000) * 2 + 10;
  }

  /** With a lease: relationships created through other servers are picked up (one read every bounds.min). */
  #scheduleSync(): void {
    if (this.#closed) return;
    this.#syncTimer = setTimeout(() => {
      this.#ds
        .listRelationships()
        .then((all) => {
          if (this.#closed) return;
          // Deleted ones are forgotten by due(), which finds them gone.
          for (const r of all) if (!this.#slots.has(r.trustDomain)) this.#schedule(r.trustDomain, Math.floor(Math.random() * 1000));
        })
        .catch((err: unknown) => this.#log.warn({ err: errorMessage(err) }, 'federation: could not read the relationships'))
        .finally(() => this.#scheduleSync());
    }, this.#bounds.min * 1000);
    this.#syncTimer.unref();
  }

  async #refresh(td: string, slot: Slot): Promise<FederationRelationship> {
    const generation = slot.generation;
    const rel = await this.#ds.getRelationship(td);
    if (!rel) {
      this.forget(td);
      throw relationshipNotFound(td);
    }
    const stored = await this.#ds.getBundle(td);
    const started = this.#now();
    let status: RelationshipStatus;
    let changed = false;
    try {
      const bundle = await fetchBundle({
        url: rel.bundleEndpointUrl,
        trustDomain: TrustDomain.parse(td),
        profile: this.#profile(rel, stored),
        previousSequence: stored?.sequence,
        timeoutMs: this.#timeoutMs,
        ...(this.#maxBytes !== undefined && { maxBytes: this.#maxBytes }),
      });
      if (slot.generation !== generation || this.#closed) return await this.#current(td);
      changed = await this.#store(td, bundle, stored);
      const now = Math.floor(this.#now() / 1000);
      const interval = this.#interval(bundle.refreshHint);
      status = {
        lastAttemptAt: Math.floor(started / 1000),
        lastSuccessAt: now,
        lastError: '',
        lastErrorReason: '',
        lastErrorAt: rel.lastErrorAt,
        consecutiveFailures: 0,
        nextRefreshAt: now + interval,
      };
      this.#metrics?.refreshed(td, undefined);
      if (rel.consecutiveFailures > 0) {
        this.#log.info({ trustDomain: td, failuresBefore: rel.consecutiveFailures }, 'federation: bundle endpoint reachable again');
      }
      this.#schedule(td, jittered(interval));
    } catch (err) {
      if (slot.generation !== generation || this.#closed) return await this.#current(td);
      const reason = err instanceof BundleFetchError ? err.reason : 'internal';
      this.#metrics?.refreshed(td, reason);
      const failures = rel.consecutiveFailures + 1;
      const interval = this.#interval(stored?.refreshHint);
      const retry = Math.min(interval, this.#bounds.min * 2 ** Math.min(failures - 1, 16));
      const now = Math.floor(this.#now() / 1000);
      status = {
        lastAttemptAt: Math.floor(started / 1000),
        lastSuccessAt: rel.lastSuccessAt,
        lastError: errorMessage(err),
        lastErrorReason: reason,
        lastErrorAt: now,
        consecutiveFailures: failures,
        nextRefreshAt: now + retry,
      };
      this.#log.warn(
        { trustDomain: td, url: rel.bundleEndpointUrl, reason, failures, retryInSeconds: retry, heldSequence: stored?.sequence, err: errorMessage(err) },
        'federation: bundle refresh failed; keeping the last good bundle',
      );
      this.#schedule(td, jittered(retry));
    }
    try {
      await this.#ds.setRelationshipStatus(td, status);
    } finally {
      // A stored bundle is announced even if its status could not be recorded: the next fetch finds nothing new to announce.
      if (changed) this.#feed.bundlesChanged();
    }
    return await this.#current(td);
  }

  async #current(td: string): Promise<FederationRelationship> {
    const rel = await this.#ds.getRelationship(td);
    if (!rel) throw relationshipNotFound(td);
    return rel;
  }

  /** How the endpoint is authenticated; https_spiffe needs a bundle of the peer to start from. */
  #profile(rel: FederationRelationship, stored: StoredBundle | undefined): EndpointProfile {
    if (rel.profile === 'https_web') return { kind: 'https_web', ...(rel.webCaPem && { ca: rel.webCaPem }) };
    const td = TrustDomain.parse(rel.trustDomain);
    const authorities = stored ? SpiffeBundle.parse(td, stored.document).x509 : undefined;
    if (!authorities || authorities.size === 0) {
      throw new BundleFetchError(
        'no_authorities',
        `federation: no X.509 authorities of ${td.name} to authenticate ${rel.bundleEndpointUrl} with; set a bootstrap bundle (anchorage federation update --bootstrap-bundle)`,
      );
    }
    return { kind: 'https_spiffe', endpointId: SpiffeId.parse(rel.endpointSpiffeId), authorities };
  }

  /** Stores a fetched bundle if it differs from the held one; true if it did. */
  async #store(td: string, bundle: SpiffeBundle, stored: StoredBundle | undefined): Promise<boolean> {
    const document = bundle.marshal();
    if (stored?.document === document) return false;
    const next: StoredBundle = {
      trustDomain: td,
      document,
      // A document without a sequence keeps the one held as a floor: a later
      // document that has one still cannot go below what was seen.
      sequence: bundle.sequence ?? stored?.sequence ?? 0,
      refreshHint: bundle.refreshHint ?? 0,
      updatedAt: Math.floor(this.#now() / 1000),
    };
    // What is trusted is the set of keys; the refresh hint and the layout of
    // the document are not. A bootstrap document without a hint (SPIRE's
    // `bundle show -format spiffe`) differs from what the endpoint serves
    // while holding the very same keys.
    const keysChanged = !stored || !sameKeys(td, stored.document, bundle);
    if (stored && next.sequence <= stored.sequence) {
      // Same sequence, other content (fetch.ts already refused a lower one).
      if (keysChanged) {
        // The peer changed its keys without raising the sequence, or sends none.
        this.#log.warn({ trustDomain: td, sequence: next.sequence }, 'federation: the peer changed its bundle without raising spiffe_sequence');
      }
      await this.#ds.replaceBundle(next, stored.sequence);
    } else {
      await this.#ds.putBundle(next);
    }
    this.#log.info(
      { trustDomain: td, sequence: next.sequence, previousSequence: stored?.sequence, keysChanged, x509Authorities: bundle.x509.size, jwtKeys: bundle.jwt.size },
      'federation: stored a new bundle',
    );
    await this.#audit?.record({
      type: 'federation.bundle_fetched',
      outcome: 'ok',
      details: { trust_domain: td, sequence: next.sequence, previous_sequence: stored?.sequence ?? -1, keys_changed: keysChanged },
    });
    return true;
  }

  /** Seconds until the next fetch, from a document's hint. */
  #interval(hint: number | undefined): number {
    const { min, max, fallback } = this.#bounds;
    return Math.min(max, Math.max(min, hint && hint > 0 ? hint : fallback));
  }
}

/** True if `document` (as stored) holds exactly the X.509 authorities and JWT keys (kid and key) of `bundle`. */
function sameKeys(td: string, document: string, bundle: SpiffeBundle): boolean {
  let held: SpiffeBundle;
  try {
    held = SpiffeBundle.parse(TrustDomain.parse(td), document);
  } catch {
    return false;
  }
  return held.x509.equals(bundle.x509) && held.jwt.equals(bundle.jwt);
}

/** 90–100 % of `seconds`, in ms: peers are not all polled in step, and never later than the hint. */
function jittered(seconds: number): number {
  return Math.round(seconds * 1000 * (0.9 + Math.random() * 0.1));
}
