import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import type { Selector } from '../../common/selector.js';
import { SqliteDataStore } from '../../ca/datastore/sqlite/index.js';
import { MemoryKeyManager } from '../../ca/keymanager/memory.js';
import { CaManager } from '../../ca/manager.js';
import { Minter } from '../../ca/minter.js';
import { loadRootOfTrust } from '../../ca/root.js';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import type { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import type { IdentitySource, JwtIdentity, X509Identity } from '../../workload-api/IdentitySource.js';

/**
 * Test support for the Workload API: a real CA in process and an
 * {@link IdentitySource} that hands out SVIDs it minted, so the Workload API
 * can be tested on its own (the agent's cache is node-agent/cache.ts, tested
 * through the agent); everything it serves is real key material, so tests
 * verify real chains and real tokens.
 */

/** A throwaway CA: memory keys, SQLite in `dir`. */
export interface TestCa {
  trustDomain: TrustDomain;
  ca: CaManager;
  minter: Minter;
  /** The CA's own datastore and key manager, for tests that break them. */
  datastore: SqliteDataStore;
  keyManager: MemoryKeyManager;
  close(): Promise<void>;
}

/** Starts a CA for `trustDomain` whose state lives in `dir` (a fresh temp directory per CA). */
export async function startTestCa(trustDomain: string, dir: string): Promise<TestCa> {
  const td = TrustDomain.parse(trustDomain);
  const keyManager = new MemoryKeyManager();
  const datastore = SqliteDataStore.open(join(dir, `${td.name}.sqlite3`));
  const logger = silentLogger();
  const root = await loadRootOfTrust(
    { type: 'self-signed', ttl: 365 * 86400 },
    { trustDomain: td, datastore, keyManager, now: Date.now, logger, defaultKeyType: 'ec-p256' },
  );
  const ca = new CaManager({
    trustDomain: td,
    keyManager,
    root,
    datastore,
    caTtl: 86400,
    keyType: 'ec-p256',
    bundleRefreshHint: 300,
    logger,
  });
  await ca.start();
  const minter = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 300 });
  return {
    trustDomain: td,
    ca,
    minter,
    datastore,
    keyManager,
    async close() {
      await ca.close();
      await datastore.close();
      await keyManager.close();
    },
  };
}

/** Parses `unix:uid:0` into `{type: 'unix', value: 'uid:0'}`. */
export function selector(s: string): Selector {
  const i = s.indexOf(':');
  if (i <= 0) throw new Error(`testing: selector "${s}" has no type`);
  return { type: s.slice(0, i), value: s.slice(i + 1) };
}

/** A registration as the test source knows it. */
export interface TestEntry {
  spiffeId: string;
  /** All must be among the caller's selectors, e.g. `['unix:uid:0']`. */
  selectors: string[];
  hint?: string;
  federatesWith?: string[];
}

interface Held {
  entry: TestEntry;
  selectors: Selector[];
  identity: X509Identity;
}

/**
 * An IdentitySource over a {@link TestCa}: entries are matched like the real
 * cache matches them (every entry selector among the caller's), SVIDs are
 * minted for fresh P-256 keys, and every mutation fires the change listeners.
 */
export class TestIdentitySource implements IdentitySource {
  readonly trustDomain: string;
  readonly #ca: TestCa;
  readonly #entries: Held[] = [];
  readonly #federated = new Map<string, SpiffeBundle>();
  readonly #listeners = new Set<() => void>();
  /** Lifetime of the JWT-SVIDs it mints, in seconds; default the CA's (5 minutes). */
  jwtTtl: number | undefined;

  constructor(ca: TestCa) {
    this.#ca = ca;
    this.trustDomain = ca.trustDomain.name;
  }

  /** Change listeners currently subscribed; tests use it to prove streams unsubscribe. */
  get listenerCount(): number {
    return this.#listeners.size;
  }

  /** Mints an SVID for a new entry and announces the change. */
  async addIdentity(entry: TestEntry): Promise<X509Identity> {
    const held: Held = { entry, selectors: entry.selectors.map(selector), identity: await this.#mint(entry) };
    this.#entries.push(held);
    this.emitChange();
    return held.identity;
  }

  /** Replaces the SVID (new key, new serial) of every entry with this SPIFFE ID. */
  async rotate(spiffeId: string): Promise<X509Identity> {
    const held = this.#entries.filter((h) => h.entry.spiffeId === spiffeId);
    if (held.length === 0) throw new Error(`testing: no entry ${spiffeId}`);
    for (const h of held) h.identity = await this.#mint(h.entry);
    this.emitChange();
    return held[0]!.identity;
  }

  removeIdentity(spiffeId: string): void {
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      if (this.#entries[i]!.entry.spiffeId === spiffeId) this.#entries.splice(i, 1);
    }
    this.emitChange();
  }

  /** Adds or replaces a federated trust domain's bundle. */
  setFederatedBundle(bundle: SpiffeBundle): void {
    this.#federated.set(bundle.trustDomain.name, bundle);
    this.emitChange();
  }

  emitChange(): void {
    for (const l of [...this.#listeners]) l();
  }

  x509Identities(selectors: Selector[]): X509Identity[] {
    const have = new Set(selectors.map((s) => `${s.type}:${s.value}`));
    return this.#entries.filter((h) => h.selectors.every((s) => have.has(`${s.type}:${s.value}`))).map((h) => h.identity);
  }

  bundle(trustDomain: string): SpiffeBundle | undefined {
    if (trustDomain === this.trustDomain) return this.#ca.ca.bundle();
    return this.#federated.get(trustDomain);
  }

  bundles(): SpiffeBundle[] {
    return [this.#ca.ca.bundle(), ...this.#federated.values()];
  }

  async jwtSvids(selectors: Selector[], audience: string[], spiffeId?: SpiffeId): Promise<JwtIdentity[]> {
    const ids = this.x509Identities(selectors).filter((i) => spiffeId === undefined || i.spiffeId.equals(spiffeId));
    if (spiffeId !== undefined && ids.length === 0) throw new AnchorageError('permission_denied', `testing: no identity ${spiffeId.toString()}`);
    const out: JwtIdentity[] = [];
    for (const id of ids) {
      const minted = await this.#ca.minter.mintJwt({ spiffeId: id.spiffeId, audience, ttl: this.jwtTtl });
      out.push({ spiffeId: id.spiffeId, token: minted.token, hint: id.hint });
    }
    return out;
  }

  onChange(listener: () => void): () => void {
    // Wrapped so that one listener subscribed twice is counted twice, as the real cache must allow.
    const wrapped = (): void => listener();
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  async #mint(entry: TestEntry): Promise<X509Identity> {
    const spiffeId = SpiffeId.parse(entry.spiffeId);
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const minted = await this.#ca.minter.mintX509({ spiffeId, spki: publicKey.export({ type: 'spki', format: 'der' }) });
    return {
      spiffeId,
      chain: minted.chain,
      privateKey: new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' })),
      hint: entry.hint ?? '',
      federatesWith: entry.federatesWith ?? [],
      notAfter: minted.notAfter,
    };
  }
}

/**
 * Splits concatenated DER certificates (the Workload API's `bundle` and
 * `x509_svid` fields) into one buffer per certificate by reading each outer
 * SEQUENCE's length.
 */
export function splitDer(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  while (i < buf.length) {
    if (buf[i] !== 0x30) throw new Error(`testing: expected a SEQUENCE at offset ${i}`);
    let len = buf[i + 1]!;
    let header = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + buf[i + 2 + k]!;
      header += n;
    }
    if (i + header + len > buf.length) throw new Error(`testing: DER element at offset ${i} runs past the end (${len} bytes declared)`);
    out.push(buf.subarray(i, i + header + len));
    i += header + len;
  }
  return out;
}
