import type { Selector } from '../common/selector.js';
import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../common/log.js';
import type { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId } from '@anchorage/client/spiffe/id';
import type { IdentitySource, JwtIdentity, X509Identity } from '../workload-api/IdentitySource.js';
import type { CachedEntry } from './state.js';
import { DerCache } from './agent/der-cache.js';
import { jwtKid } from './agent/taint.js';

/** One workload X509-SVID held by the agent, with its key. */
export interface HeldSvid {
  entryId: string;
  /** Entry revision it was minted for: a changed entry is minted again. */
  revision: number;
  /** Unencrypted PKCS#8 DER. */
  key: Uint8Array;
  /** DER, leaf first. */
  chain: Uint8Array[];
  /** Unix seconds. */
  notBefore: number;
  notAfter: number;
  /** Unix seconds: half-life with ±10 % jitter, fixed when the SVID arrived. */
  rotateAt: number;
}

interface HeldEntry {
  entry: CachedEntry;
  spiffeId: SpiffeId;
  /** `type:value`, as the caller's selectors are keyed. */
  selectorKeys: string[];
  svid?: HeldSvid;
  /** Built once per SVID, so every caller gets the same object. */
  identity?: X509Identity;
}

/** A JWT-SVID kept until its half-life. */
interface HeldJwt {
  token: string;
  /** Unix seconds after which it is minted anew. */
  refreshAt: number;
  /** What it is charged against the byte bound: {@link jwtCacheEntryBytes}. */
  bytes: number;
  /** The `kid` of its header (undefined if it has none): dropped when that key is tainted. */
  kid: string | undefined;
}

/**
 * Default bound on the JWT-SVID cache, in bytes (`jwt_cache_max_bytes`). A
 * token for one audience is under 1 KiB, so this holds tens of thousands; a
 * bound by count alone let one workload fill the heap with a few hundred
 * tokens carrying megabytes of audience each.
 */
export const DEFAULT_JWT_CACHE_MAX_BYTES = 64 * 1024 * 1024;

/** Charged per cached token on top of its strings: the Map slot, the record and two string headers. */
export const JWT_CACHE_ENTRY_OVERHEAD = 128;

/**
 * What one cached JWT-SVID is charged: its key (entry ID and sorted
 * audience) and its token at two bytes per UTF-16 code unit, plus
 * {@link JWT_CACHE_ENTRY_OVERHEAD}. V8 stores ASCII strings in one byte per
 * character, so this over-counts them: the bound is an upper bound on the
 * memory the cache's own strings take, whatever the characters.
 */
export function jwtCacheEntryBytes(key: string, token: string): number {
  return 2 * (key.length + token.length) + JWT_CACHE_ENTRY_OVERHEAD;
}

/**
 * Bound on the JWT-SVID requests waiting for the server at once, in bytes
 * charged like cached tokens (key only). Each waits a few milliseconds; a
 * caller that keeps thousands of distinct maximal requests open gets
 * UNAVAILABLE (retry later) past this, instead of growing the heap.
 */
export const JWT_INFLIGHT_MAX_BYTES = 16 * 1024 * 1024;

/** Options of {@link WorkloadCache.configureJwtCache}. */
export interface JwtCacheOptions {
  /** Bound on the bytes the cached tokens are charged ({@link jwtCacheEntryBytes}); least recently used go first. */
  maxBytes: number;
  /** Gets one debug record per token cached, with the cache's size after it. */
  logger?: Logger;
}

/** Mints one JWT-SVID at the server: token and expiry (unix seconds). */
export type JwtMinter = (entryId: string, audience: string[]) => Promise<{ token: string; expiresAt: number }>;

/** Half-life ±10 %: `notBefore + (notAfter − notBefore) · 0.5 · (0.9 … 1.1)`. */
export function rotationTime(notBefore: number, notAfter: number, random: () => number = Math.random): number {
  const half = (notAfter - notBefore) / 2;
  return Math.floor(notBefore + half * (0.9 + 0.2 * random()));
}

/** Copies of `key` and `leaf`, views of one new buffer of exactly their size (not from Node's shared pool). */
export function packKeyAndLeaf(key: Uint8Array, leaf: Uint8Array): { key: Buffer; leaf: Buffer } {
  const buf = Buffer.allocUnsafeSlow(key.length + leaf.length);
  buf.set(key, 0);
  buf.set(leaf, key.length);
  return { key: buf.subarray(0, key.length), leaf: buf.subarray(key.length) };
}

function key(s: Selector): string {
  return `${s.type}:${s.value}`;
}

/**
 * What the agent knows and hands to workloads: its authorized entries, the
 * X509-SVIDs minted for them, the bundles, and JWT-SVIDs per audience. The
 * Workload API reads it through {@link IdentitySource}; the agent writes it
 * as the server's sync stream and its own rotation dictate.
 *
 * Lookups by selectors go through an index on each entry's first selector,
 * so a caller's answer costs the entries that could match it, not all of
 * them (10k entries, 1k workloads).
 */
export class WorkloadCache implements IdentitySource {
  readonly trustDomain: string;
  readonly #now: () => number;
  readonly #mintJwt: JwtMinter;
  readonly #entries = new Map<string, HeldEntry>();
  /** First selector key → entries whose first selector it is. */
  readonly #index = new Map<string, Set<HeldEntry>>();
  #bundle: SpiffeBundle | undefined;
  readonly #federated = new Map<string, SpiffeBundle>();
  /** In least-recently-used order: a hit moves its token to the end, eviction takes from the front. */
  readonly #jwts = new Map<string, HeldJwt>();
  #jwtBytes = 0;
  #jwtMaxBytes = DEFAULT_JWT_CACHE_MAX_BYTES;
  #jwtLog: Logger | undefined;
  readonly #jwtInflight = new Map<string, Promise<string>>();
  #jwtInflightBytes = 0;
  readonly #listeners = new Set<() => void>();
  /** Entries waiting for an SVID: see {@link pending}. */
  readonly #pending = new Set<string>();
  /** Cached {@link nextDeadline}; null when it must be computed again. */
  #deadline: number | undefined | null = null;
  /** Intermediates shared by many SVIDs are kept once. */
  readonly #interned = new DerCache<Uint8Array>(64);
  /** JWT key ids an operator tainted: tokens they signed are neither kept nor served from the cache. */
  #taintedKids: ReadonlySet<string> = new Set();

  /**
   * @param now unix seconds
   * @param mintJwt asks the server for a JWT-SVID (the agent's connection)
   */
  constructor(trustDomain: string, now: () => number, mintJwt: JwtMinter) {
    this.trustDomain = trustDomain;
    this.#now = now;
    this.#mintJwt = mintJwt;
  }

  /**
   * Sets the JWT-SVID cache's byte bound (evicting at once down to it) and
   * where its debug records go. Called by `anchorage agent run` before the
   * Workload API starts; until then the default bound applies.
   */
  configureJwtCache(opts: JwtCacheOptions): void {
    if (!Number.isSafeInteger(opts.maxBytes) || opts.maxBytes < 0) {
      throw new AnchorageError('invalid_argument', 'agent: the jwt-svid cache bound must be a non-negative integer number of bytes');
    }
    this.#jwtMaxBytes = opts.maxBytes;
    this.#jwtLog = opts.logger;
    this.#evictJwts();
  }

  // ---- written by the agent -------------------------------------------------

  /**
   * Replaces the authorized entries (full state from the server). SVIDs of
   * entries that are gone are dropped; an entry whose revision changed keeps
   * serving its old SVID until the new one arrives. Returns whether anything
   * changed and how many entries wait for an SVID.
   */
  setEntries(entries: CachedEntry[]): { changed: boolean; pending: number } {
    const seen = new Set<string>();
    let changed = false;
    for (const e of entries) {
      seen.add(e.id);
      if (this.#upsert(e)) changed = true;
    }
    const gone: string[] = [];
    for (const id of this.#entries.keys()) if (!seen.has(id)) gone.push(id);
    for (const id of gone) this.#remove(id);
    return this.#changed(changed || gone.length > 0);
  }

  /**
   * Applies changes from the server: entries new or updated, and entries
   * removed. Costs what changed, not the whole set (a burst of creates
   * arrives as many small messages).
   */
  applyChanges(upserts: CachedEntry[], removed: string[]): { changed: boolean; pending: number } {
    let changed = false;
    for (const id of removed) if (this.#remove(id)) changed = true;
    for (const e of upserts) if (this.#upsert(e)) changed = true;
    return this.#changed(changed);
  }

  #changed(changed: boolean): { changed: boolean; pending: number } {
    if (changed) this.emitChange();
    return { changed, pending: this.#pending.size };
  }

  /** True when the entry is new or changed. */
  #upsert(e: CachedEntry): boolean {
    const old = this.#entries.get(e.id);
    if (old && old.entry.revision === e.revision && old.entry.spiffeId === e.spiffeId) return false;
    if (old) this.#unindex(old);
    const held: HeldEntry = { entry: e, spiffeId: SpiffeId.parse(e.spiffeId), selectorKeys: [...e.selectors].sort() };
    if (old?.svid && old.entry.spiffeId === e.spiffeId) {
      // Same identity, new revision (selectors, TTL, DNS names, hint...):
      // keep serving until the new SVID replaces it.
      held.svid = old.svid;
      held.identity = this.#identity(held, old.svid);
    }
    this.#entries.set(e.id, held);
    this.#indexEntry(held);
    this.#dropJwts(e.id);
    if (!held.svid || held.svid.revision !== e.revision) this.#pending.add(e.id);
    return true;
  }

  /** True when the entry was there. */
  #remove(id: string): boolean {
    const held = this.#entries.get(id);
    if (!held) return false;
    this.#unindex(held);
    this.#entries.delete(id);
    this.#pending.delete(id);
    this.#dropJwts(id);
    return true;
  }

  /** Installs freshly minted SVIDs (for entries still present). */
  putSvids(svids: HeldSvid[]): void {
    let changed = false;
    for (const s of svids) {
      const held = this.#entries.get(s.entryId);
      if (!held) continue;
      // The key and the leaf are copied together into one allocation of their
      // own: as decoded the leaf is a view of the whole BatchSignX509SVID response
      // (every result's chain), and the key a view of one of Node's shared 8 KiB
      // pool slabs (with the garbage of making it and its CSR), each of which it
      // would keep alive as long as it is held. The intermediates are shared.
      const { key, leaf } = packKeyAndLeaf(s.key, s.chain[0]!);
      const chain = s.chain.map((der, i) => (i === 0 ? leaf : this.#intern(der)));
      held.svid = { ...s, key, chain };
      held.identity = this.#identity(held, held.svid);
      // Minted for a revision the entry no longer has: served until the current one arrives.
      if (s.revision === held.entry.revision) this.#pending.delete(s.entryId);
      else this.#pending.add(s.entryId);
      if (this.#deadline !== null) this.#deadline = Math.min(this.#deadline ?? Infinity, s.rotateAt, s.notAfter);
      changed = true;
    }
    if (changed) this.emitChange();
  }

  /** Sets the own bundle only (after attestation, before the first sync). */
  setOwnBundle(own: SpiffeBundle): void {
    if (this.#bundle && this.#bundle.equals(own)) return;
    this.#bundle = own;
    this.emitChange();
  }

  /** Sets the own bundle and the federated ones; true when anything changed. */
  setBundles(own: SpiffeBundle, federated: Map<string, SpiffeBundle>): boolean {
    let changed = !this.#bundle || !this.#bundle.equals(own);
    this.#bundle = own;
    for (const [td, b] of federated) {
      const old = this.#federated.get(td);
      if (!old || !old.equals(b)) changed = true;
      this.#federated.set(td, b);
    }
    for (const td of [...this.#federated.keys()]) {
      if (!federated.has(td)) {
        this.#federated.delete(td);
        changed = true;
      }
    }
    if (changed) this.emitChange();
    return changed;
  }

  /**
   * Drops SVIDs past their notAfter: they are no use to anybody, and a caller
   * whose last identity expired must see its stream end.
   */
  expire(): boolean {
    const now = this.#now();
    let changed = false;
    for (const held of this.#entries.values()) {
      if (held.svid && held.svid.notAfter <= now) {
        held.svid = undefined;
        held.identity = undefined;
        this.#pending.add(held.entry.id);
        changed = true;
      }
    }
    this.#deadline = null;
    if (changed) this.emitChange();
    return changed;
  }

  /** Entries whose SVID is missing, outdated or past its rotation time (a scan of all). */
  due(): string[] {
    const now = this.#now();
    const out: string[] = [];
    for (const held of this.#entries.values()) {
      const s = held.svid;
      if (!s || s.revision !== held.entry.revision || s.rotateAt <= now) out.push(held.entry.id);
    }
    return out;
  }

  /**
   * Adds the entries {@link due} names to {@link pending}: at the timer's
   * deadlines only, so the scan is paid once per rotation time, not per change.
   */
  markDue(): number {
    for (const id of this.due()) this.#pending.add(id);
    this.#deadline = null;
    return this.#pending.size;
  }

  /**
   * Marks for minting anew, at once, every entry whose current SVID `pred`
   * picks (an SVID signed by a tainted authority, or one that no longer
   * chains to the bundle). The SVID is served until its successor arrives.
   * Returns how many were marked.
   */
  reissueWhere(pred: (svid: HeldSvid) => boolean): number {
    let n = 0;
    for (const held of this.#entries.values()) {
      if (held.svid && pred(held.svid)) {
        this.#pending.add(held.entry.id);
        n++;
      }
    }
    if (n > 0) this.#deadline = null;
    return n;
  }

  /**
   * Sets the JWT key ids an operator tainted and drops every cached JWT-SVID
   * whose header names one of them (the next request mints anew). While a
   * kid stays tainted, a token the server still signs with it is served but
   * not kept. Returns how many cached tokens were dropped.
   */
  taintJwtKids(kids: ReadonlySet<string>): number {
    this.#taintedKids = kids;
    let n = 0;
    for (const [k, held] of [...this.#jwts]) {
      if (held.kid !== undefined && kids.has(held.kid)) {
        this.#deleteJwt(k);
        n++;
      }
    }
    return n;
  }

  /**
   * Entries waiting for an SVID: missing, outdated, or marked due for
   * rotation by {@link markDue}. Kept up to date as entries and SVIDs
   * change, so the minting loop never scans the whole cache.
   */
  pending(): ReadonlySet<string> {
    return this.#pending;
  }

  /**
   * The earliest moment something must happen: a rotation or an expiry (unix
   * seconds); for an SVID already waiting to be replaced, only its expiry.
   * Kept as SVIDs arrive, computed anew after a tick changed what is pending.
   */
  nextDeadline(): number | undefined {
    if (this.#deadline !== null) return this.#deadline;
    let next: number | undefined;
    for (const held of this.#entries.values()) {
      const s = held.svid;
      if (!s) continue;
      const t = this.#pending.has(held.entry.id) ? s.notAfter : Math.min(s.rotateAt, s.notAfter);
      if (next === undefined || t < next) next = t;
    }
    this.#deadline = next;
    return next;
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }

  entry(id: string): CachedEntry | undefined {
    return this.#entries.get(id)?.entry;
  }

  entries(): CachedEntry[] {
    return [...this.#entries.values()].map((h) => h.entry);
  }

  svids(): HeldSvid[] {
    const out: HeldSvid[] = [];
    for (const h of this.#entries.values()) if (h.svid) out.push(h.svid);
    return out;
  }

  federatedDocuments(): Record<string, string> {
    return Object.fromEntries([...this.#federated].map(([td, b]) => [td, b.marshal()]));
  }

  emitChange(): void {
    for (const l of [...this.#listeners]) l();
  }

  // ---- read by the Workload API ---------------------------------------------

  x509Identities(selectors: Selector[]): X509Identity[] {
    const have = new Set(selectors.map(key));
    const now = this.#now();
    const found: HeldEntry[] = [];
    const consider = (set: Set<HeldEntry> | undefined) => {
      if (!set) return;
      for (const h of set) {
        if (h.identity && h.svid!.notAfter > now && h.selectorKeys.every((k) => have.has(k))) found.push(h);
      }
    };
    for (const k of have) consider(this.#index.get(k));
    found.sort(byIdentity);
    return found.map((h) => h.identity!);
  }

  bundle(trustDomain: string): SpiffeBundle | undefined {
    return trustDomain === this.trustDomain ? this.#bundle : this.#federated.get(trustDomain);
  }

  bundles(): SpiffeBundle[] {
    return this.#bundle ? [this.#bundle, ...this.#federated.values()] : [...this.#federated.values()];
  }

  async jwtSvids(selectors: Selector[], audience: string[], spiffeId?: SpiffeId): Promise<JwtIdentity[]> {
    const have = new Set(selectors.map(key));
    const matching: HeldEntry[] = [];
    for (const k of have) {
      for (const h of this.#index.get(k) ?? []) if (h.selectorKeys.every((s) => have.has(s))) matching.push(h);
    }
    matching.sort(byIdentity);
    // One token per SPIFFE ID: two entries naming the same ID would only give the same token twice.
    const byId = new Map<string, HeldEntry>();
    for (const h of matching) if (!byId.has(h.entry.spiffeId)) byId.set(h.entry.spiffeId, h);
    let chosen = [...byId.values()];
    if (spiffeId !== undefined) {
      chosen = chosen.filter((h) => h.spiffeId.equals(spiffeId));
      if (chosen.length === 0) throw new AnchorageError('permission_denied', `agent: the caller has no identity ${spiffeId.toString()}`);
    }
    return Promise.all(
      chosen.map(async (h) => ({ spiffeId: h.spiffeId, token: await this.#jwtFor(h.entry.id, audience), hint: h.entry.hint })),
    );
  }

  onChange(listener: () => void): () => void {
    const wrapped = (): void => listener();
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  /** JWT-SVIDs cached. */
  get jwtCacheSize(): number {
    return this.#jwts.size;
  }

  /** Bytes the cached JWT-SVIDs are charged ({@link jwtCacheEntryBytes}); never above the bound. */
  get jwtCacheBytes(): number {
    return this.#jwtBytes;
  }

  // ---- internals ------------------------------------------------------------

  async #jwtFor(entryId: string, audience: string[]): Promise<string> {
    const k = `${entryId}\n${[...audience].sort().join('\n')}`;
    const held = this.#jwts.get(k);
    if (held && held.refreshAt > this.#now() && !(held.kid !== undefined && this.#taintedKids.has(held.kid))) {
      // Most recently used goes to the end: eviction takes from the front.
      this.#jwts.delete(k);
      this.#jwts.set(k, held);
      return held.token;
    }
    const inflight = this.#jwtInflight.get(k);
    if (inflight) return inflight;
    const charge = jwtCacheEntryBytes(k, '');
    if (this.#jwtInflightBytes + charge > JWT_INFLIGHT_MAX_BYTES) {
      throw new AnchorageError('unavailable', 'agent: too many jwt-svid requests are waiting for the server; retry later');
    }
    this.#jwtInflightBytes += charge;
    const p = this.#mintJwt(entryId, audience)
      .then(({ token, expiresAt }) => {
        const now = this.#now();
        // Kept only while the entry is still there; half-life like X.509.
        const kid = jwtKid(token);
        // A token signed by a tainted key (the server has not switched yet) is served, not kept.
        if (this.#entries.has(entryId) && !(kid !== undefined && this.#taintedKids.has(kid))) {
          this.#deleteJwt(k);
          const bytes = jwtCacheEntryBytes(k, token);
          // A token bigger than the whole bound is served but not kept: it
          // would only evict everything else and then itself.
          if (bytes <= this.#jwtMaxBytes) {
            this.#jwts.set(k, { token, refreshAt: now + Math.max(0, Math.floor((expiresAt - now) / 2)), bytes, kid });
            this.#jwtBytes += bytes;
            this.#evictJwts();
          }
          this.#jwtLog?.debug({ entryId, bytes, cachedBytes: this.#jwtBytes, cachedTokens: this.#jwts.size, maxBytes: this.#jwtMaxBytes }, 'agent: jwt-svid cached');
        }
        return token;
      })
      .finally(() => {
        this.#jwtInflight.delete(k);
        this.#jwtInflightBytes -= charge;
      });
    this.#jwtInflight.set(k, p);
    return p;
  }

  #deleteJwt(k: string): void {
    const held = this.#jwts.get(k);
    if (held === undefined) return;
    this.#jwts.delete(k);
    this.#jwtBytes -= held.bytes;
  }

  /** Least recently used first, until the cache is within its bound. */
  #evictJwts(): void {
    while (this.#jwtBytes > this.#jwtMaxBytes) {
      const oldest = this.#jwts.keys().next();
      if (oldest.done === true) break;
      this.#deleteJwt(oldest.value);
    }
  }

  #dropJwts(entryId: string): void {
    const prefix = `${entryId}\n`;
    for (const k of [...this.#jwts.keys()]) if (k.startsWith(prefix)) this.#deleteJwt(k);
  }

  #identity(held: HeldEntry, svid: HeldSvid): X509Identity {
    return {
      spiffeId: held.spiffeId,
      chain: svid.chain,
      privateKey: svid.key,
      hint: held.entry.hint,
      federatesWith: held.entry.federatesWith,
      notAfter: svid.notAfter,
    };
  }

  #indexEntry(h: HeldEntry): void {
    const k = h.selectorKeys[0] ?? '';
    let set = this.#index.get(k);
    if (!set) this.#index.set(k, (set = new Set()));
    set.add(h);
  }

  #unindex(h: HeldEntry): void {
    const k = h.selectorKeys[0] ?? '';
    const set = this.#index.get(k);
    set?.delete(h);
    if (set?.size === 0) this.#index.delete(k);
  }

  #intern(der: Uint8Array): Uint8Array {
    let v = this.#interned.get(der);
    if (!v) {
      // A copy, for the reason the leaf is copied in putSvids.
      v = Uint8Array.prototype.slice.call(der);
      this.#interned.set(der, v);
    }
    return v;
  }

}

/** Default first: ordered by SPIFFE ID, then entry ID, so the answer is stable. */
function byIdentity(a: HeldEntry, b: HeldEntry): number {
  return a.entry.spiffeId < b.entry.spiffeId ? -1 : a.entry.spiffeId > b.entry.spiffeId ? 1 : a.entry.id < b.entry.id ? -1 : a.entry.id > b.entry.id ? 1 : 0;
}
