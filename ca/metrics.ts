/**
 * The server's Prometheus metrics and readiness (`metrics:` in server.yaml).
 * Counters and histograms are fed by hooks at their call sites (the minter,
 * node attestation, the federation client, the PKCS#11 key manager); every
 * gauge about state — expiries, sequences, ages, the session pool — is read
 * when Prometheus scrapes (collect()), so none can go stale. The process has
 * its own Registry, not prom-client's global one.
 */
import { createHash, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { isAnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../common/log.js';
import { cachedCheck, resultOf, startMetricsHttp, type HealthReport, type MetricsHttp } from '../common/metrics-http.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import type { DataStore } from './datastore/DataStore.js';
import type { KeyHandle, KeyManager } from './keymanager/KeyManager.js';
import { Pkcs11KeyManager } from './keymanager/pkcs11/manager.js';
import type { CaManager } from './manager.js';

/** Latency buckets, seconds: from a software signature (~50 µs) to a slow HSM (seconds). */
const SIGN_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Node attestation involves the datastore and possibly challenges over the network. */
const ATTEST_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];
/** How long a readiness verdict is reused: probes, however frequent, sign with the token at most this often. */
export const READY_CACHE_MS = 5_000;
/** What the readiness check signs; no SVID or token can ever carry these bytes as its signed part. */
const PROBE_DATA = Buffer.from('anchorage readiness probe');

/** Lower-case hex SHA-256 of a DER certificate: the `id` label of an X.509 authority. */
export function fingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** The hooks the minter calls; kept as an interface so that the minter needs no prom-client. */
export interface MintObserver {
  minted(kind: 'x509' | 'jwt', result: string, seconds: number): void;
}

export interface ServerMetricsDeps {
  ca: CaManager;
  datastore: DataStore;
  /** The intermediates' key manager, and the root's when it has its own. */
  keyManagers: KeyManager[];
  trustDomain: TrustDomain;
  now: () => number;
  logger: Logger;
}

/**
 * The server's metrics. Construct it before the parts it observes are used,
 * then {@link attach} the parts that exist only later (the CA), then
 * {@link listen}.
 */
export class ServerMetrics implements MintObserver {
  readonly registry = new Registry();
  readonly #issued: Counter<'type' | 'result'>;
  readonly #issueSeconds: Histogram<'type' | 'result'>;
  readonly #attestations: Counter<'attestor' | 'result'>;
  readonly #attestSeconds: Histogram<'attestor' | 'result'>;
  readonly #refreshes: Counter<'trust_domain' | 'result' | 'reason'>;
  readonly #signSeconds: Histogram<'token' | 'result'>;
  /** Bound children of the hot-path metrics, so a mint does no label hashing beyond one Map lookup. */
  readonly #bound = new Map<string, { inc: () => void; observe: (v: number) => void }>();
  #deps: ServerMetricsDeps | undefined;
  #ready: (() => Promise<HealthReport>) | undefined;
  #hsm: (() => Promise<HealthReport>) | undefined;

  constructor() {
    const registers = [this.registry];
    this.#issued = new Counter({
      name: 'anchorage_svids_issued_total',
      help: 'SVIDs the server was asked to mint, by type (x509, jwt) and result (success or the error code).',
      labelNames: ['type', 'result'],
      registers,
    });
    this.#issueSeconds = new Histogram({
      name: 'anchorage_svid_issuance_duration_seconds',
      help: 'Time to mint one SVID (CSR check, certificate or token, HSM signature), by type and result.',
      labelNames: ['type', 'result'],
      buckets: SIGN_BUCKETS,
      registers,
    });
    this.#attestations = new Counter({
      name: 'anchorage_node_attestations_total',
      help: 'Node attestations (AttestAgent), by attestor (join_token, …; "other" for a type not enabled) and result.',
      labelNames: ['attestor', 'result'],
      registers,
    });
    this.#attestSeconds = new Histogram({
      name: 'anchorage_node_attestation_duration_seconds',
      help: 'Duration of node attestations, from params to result, by attestor and result.',
      labelNames: ['attestor', 'result'],
      buckets: ATTEST_BUCKETS,
      registers,
    });
    this.#refreshes = new Counter({
      name: 'anchorage_federation_refreshes_total',
      help: 'Fetches of federated bundles from peers\' bundle endpoints, by trust domain, result (success, failure) and reason (none, or why it failed).',
      labelNames: ['trust_domain', 'result', 'reason'],
      registers,
    });
    this.#signSeconds = new Histogram({
      name: 'anchorage_hsm_sign_duration_seconds',
      help: 'Signatures in the PKCS#11 token, from waiting for a session to the signature, by token and result.',
      labelNames: ['token', 'result'],
      buckets: SIGN_BUCKETS,
      registers,
    });
  }

  // ---- hooks (hot path: one Map lookup, one counter, one histogram) ---------

  minted(kind: 'x509' | 'jwt', result: string, seconds: number): void {
    const key = `${kind}|${result}`;
    let b = this.#bound.get(key);
    if (b === undefined) {
      const c = this.#issued.labels(kind, result);
      const h = this.#issueSeconds.labels(kind, result);
      b = { inc: () => c.inc(), observe: (v) => h.observe(v) };
      this.#bound.set(key, b);
    }
    b.inc();
    b.observe(seconds);
  }

  /** One finished node attestation; `attestor` must already be bounded (an enabled type, or "other"). */
  attested(attestor: string, result: string, seconds: number): void {
    this.#attestations.labels(attestor, result).inc();
    this.#attestSeconds.labels(attestor, result).observe(seconds);
  }

  /** One federation fetch; `reason` undefined on success. Trust domains are the operator's relationships: bounded. */
  refreshed(trustDomain: string, reason: string | undefined): void {
    this.#refreshes.labels(trustDomain, reason === undefined ? 'success' : 'failure', reason ?? 'none').inc();
  }

  // ---- state read at scrape time ---------------------------------------------

  /** Everything that needs the running CA; call once it has started. */
  attach(deps: ServerMetricsDeps): void {
    this.#deps = deps;
    const registers = [this.registry];
    for (const km of deps.keyManagers) {
      if (!(km instanceof Pkcs11KeyManager)) continue;
      const child = this.#signSeconds;
      const token = km.tokenLabel;
      const ok = child.labels(token, 'success');
      km.onSign((seconds, error) => (error === undefined ? ok.observe(seconds) : child.labels(token, resultOf(error)).observe(seconds)));
    }
    const pkcs11 = deps.keyManagers.filter((k): k is Pkcs11KeyManager => k instanceof Pkcs11KeyManager);
    this.#hsm = cachedCheck(() => this.#checkKeys(), READY_CACHE_MS, deps.now);
    this.#ready = cachedCheck(() => this.#checkReady(), READY_CACHE_MS, deps.now);
    const hsm = this.#hsm;

    new Gauge({
      name: 'anchorage_hsm_sessions',
      help: 'Sessions of the PKCS#11 session pool, by token and state (in_use, idle).',
      labelNames: ['token', 'state'],
      registers,
      collect() {
        this.reset();
        for (const km of pkcs11) {
          const p = km.poolState;
          this.labels(km.tokenLabel, 'in_use').set(p.inUse);
          this.labels(km.tokenLabel, 'idle').set(p.size - p.inUse);
        }
      },
    });
    new Gauge({
      name: 'anchorage_hsm_session_waiters',
      help: 'Operations waiting for a free session of the PKCS#11 session pool, by token.',
      labelNames: ['token'],
      registers,
      collect() {
        this.reset();
        for (const km of pkcs11) this.labels(km.tokenLabel).set(km.poolState.waiters);
      },
    });
    new Gauge({
      name: 'anchorage_ca_keys_usable',
      help: 'Whether the CA keys (root, active intermediate, active JWT key) sign and verify in their key manager (1) or not (0); the check of /ready, run at most every 5 s.',
      labelNames: ['key_manager'],
      registers,
      async collect() {
        this.reset();
        this.labels(deps.keyManagers[0]!.kind).set((await hsm()).ok ? 1 : 0);
      },
    });
    new Gauge({
      name: 'anchorage_bundle_sequence',
      help: 'spiffe_sequence of the trust domain\'s own bundle as the server publishes it.',
      labelNames: ['trust_domain'],
      registers,
      collect() {
        this.labels(deps.trustDomain.name).set(deps.ca.bundle().sequence ?? 0);
      },
    });
    // One pass over the journal feeds both ends of every authority's validity.
    const authorities = async () => {
      const out = new Map<string, { kind: string; status: string; id: string; notBefore: number; notAfter: number }>();
      const add = (kind: string, status: string, id: string, notBefore: number, notAfter: number) => {
        if (!out.has(`${kind}|${id}`)) out.set(`${kind}|${id}`, { kind, status, id, notBefore, notAfter });
      };
      const root = deps.ca.rootOfTrust();
      // A self-signed root is a journal row (several during a rotation); an upstream one is not.
      if (root.kind === 'upstream') for (const der of root.anchors) add('root', 'active', fingerprint(der), ...validity(der));
      for (const der of root.chain) add('upstream', 'active', fingerprint(der), ...validity(der));
      for (const row of await deps.ca.journal()) {
        // Revoked authorities are trusted by no one (anchorage authority ... revoke).
        if (row.status === 'preparing' || row.revokedAt) continue;
        if (row.kind === 'root' && row.certDer) add('root', row.status, fingerprint(row.certDer), row.notBefore, row.notAfter);
        else if (row.kind === 'x509' && row.certDer) add('intermediate', row.status, fingerprint(row.certDer), row.notBefore, row.notAfter);
        else if (row.kind === 'jwt' && row.kid) add('jwt', row.status, row.kid, row.notBefore, row.notAfter);
      }
      return [...out.values()];
    };
    const authorityLabels = ['kind', 'status', 'id'] as const;
    new Gauge({
      name: 'anchorage_ca_authority_not_after_timestamp_seconds',
      help: 'notAfter (Unix seconds) of every authority of the trust domain: kind root, upstream (certificates between our intermediates and the anchor), intermediate or jwt; status prepared, active or old; id the SHA-256 of the certificate, or the JWT key\'s kid.',
      labelNames: authorityLabels,
      registers,
      async collect() {
        this.reset();
        for (const a of await authorities()) this.labels(a.kind, a.status, a.id).set(a.notAfter);
      },
    });
    new Gauge({
      name: 'anchorage_ca_authority_not_before_timestamp_seconds',
      help: 'notBefore (Unix seconds) of the same authorities, so that rules can tell a lifetime (rotation is due at a fraction of it).',
      labelNames: authorityLabels,
      registers,
      async collect() {
        this.reset();
        for (const a of await authorities()) this.labels(a.kind, a.status, a.id).set(a.notBefore);
      },
    });

    new Gauge({
      name: 'anchorage_ca_authority_tainted_timestamp_seconds',
      help: 'When (Unix seconds) an operator tainted an authority that is not revoked yet (anchorage authority ... taint): kind intermediate or jwt, id as above. Agents re-mint what it signed at once; revoke it once nothing depends on it.',
      labelNames: ['kind', 'id'],
      registers,
      async collect() {
        this.reset();
        for (const row of await deps.ca.journal()) {
          if (!row.taintedAt || row.revokedAt) continue;
          if (row.kind === 'x509' && row.certDer) this.labels('intermediate', fingerprint(row.certDer)).set(row.taintedAt);
          else if (row.kind === 'jwt' && row.kid) this.labels('jwt', row.kid).set(row.taintedAt);
        }
      },
    });

    // Federated trust domains: one pass over the datastore feeds the four gauges.
    const federated = async () => {
      const [bundles, relationships] = await Promise.all([deps.datastore.listBundles(), deps.datastore.listRelationships()]);
      const rels = new Map(relationships.map((r) => [r.trustDomain, r]));
      return bundles.filter((b) => b.trustDomain !== deps.trustDomain.name).map((b) => ({ stored: b, rel: rels.get(b.trustDomain) }));
    };
    const nowSeconds = () => Math.floor(deps.now() / 1000);
    new Gauge({
      name: 'anchorage_federated_authority_not_after_timestamp_seconds',
      help: 'notAfter (Unix seconds) of every X.509 authority of every federated trust domain\'s bundle, by trust domain and id (SHA-256 of the certificate). JWT keys carry no expiry.',
      labelNames: ['trust_domain', 'id'],
      registers,
      async collect() {
        this.reset();
        for (const { stored } of await federated()) {
          let bundle: SpiffeBundle;
          try {
            bundle = SpiffeBundle.parse(TrustDomain.parse(stored.trustDomain), stored.document);
          } catch {
            continue; // stored documents were parsed before; one bad row must not fail the scrape
          }
          for (const der of bundle.x509.authorities()) this.labels(stored.trustDomain, fingerprint(der)).set(validity(der)[1]);
        }
      },
    });
    new Gauge({
      name: 'anchorage_federated_bundle_age_seconds',
      help: 'Seconds since each federated bundle was last confirmed current: its last successful fetch (source endpoint), or when it was set by hand (source static).',
      labelNames: ['trust_domain', 'source'],
      registers,
      async collect() {
        this.reset();
        const now = nowSeconds();
        for (const { stored, rel } of await federated()) {
          const since = rel ? (rel.lastSuccessAt || stored.updatedAt) : stored.updatedAt;
          this.labels(stored.trustDomain, rel ? 'endpoint' : 'static').set(Math.max(0, now - since));
        }
      },
    });
    new Gauge({
      name: 'anchorage_federated_bundle_refresh_hint_seconds',
      help: 'spiffe_refresh_hint of each federated bundle as fetched (0: none given), by trust domain.',
      labelNames: ['trust_domain'],
      registers,
      async collect() {
        this.reset();
        for (const { stored } of await federated()) this.labels(stored.trustDomain).set(stored.refreshHint);
      },
    });
    new Gauge({
      name: 'anchorage_federated_bundle_sequence',
      help: 'spiffe_sequence of each federated bundle held, by trust domain.',
      labelNames: ['trust_domain'],
      registers,
      async collect() {
        this.reset();
        for (const { stored } of await federated()) this.labels(stored.trustDomain).set(stored.sequence);
      },
    });
  }

  /** /ready: the HSM and its keys, the datastore, an active unexpired authority. */
  ready(): Promise<HealthReport> {
    return this.#ready ? this.#ready() : Promise.resolve({ ok: false, lines: ['server: still starting'] });
  }

  /** Starts the HTTP listener at `address`. */
  listen(address: string, logger: Logger): Promise<MetricsHttp> {
    return startMetricsHttp({ address, registry: this.registry, ready: () => this.ready(), logger });
  }

  /** Each CA key signs the probe in its key manager and the signature verifies against its public key. */
  async #checkKeys(): Promise<HealthReport> {
    const { ca } = this.#deps!;
    const keys: Array<[string, () => KeyHandle]> = [
      ['root key', () => ca.rootOfTrust().key],
      ['intermediate key', () => ca.activeX509().key],
      ['JWT key', () => ca.activeJwt().key],
    ];
    const lines: string[] = [];
    let ok = true;
    for (const [what, get] of keys) {
      try {
        const key = get();
        const sig = await key.sign(PROBE_DATA);
        const pub = createPublicKey({ key: Buffer.from(key.publicKeySpki), format: 'der', type: 'spki' });
        const good = verify(key.type === 'ec-p384' ? 'sha384' : 'sha256', PROBE_DATA, { key: pub, dsaEncoding: 'ieee-p1363' }, sig);
        lines.push(`${good ? 'ok' : 'FAIL'}: ${what} "${key.id}" ${good ? 'signs' : 'made a signature that does not verify'}`);
        ok &&= good;
      } catch (err) {
        ok = false;
        lines.push(`FAIL: ${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return { ok, lines };
  }

  async #checkReady(): Promise<HealthReport> {
    const { ca, datastore, now } = this.#deps!;
    const keys = await this.#hsm!();
    const lines = [...keys.lines];
    let ok = keys.ok;
    // The datastore: a write that commits and reads back.
    try {
      const stamp = String(now());
      await datastore.setMeta('readiness_probe', stamp);
      const back = await datastore.getMeta('readiness_probe');
      if (back !== stamp) throw new Error('wrote a value and read back another');
      lines.push('ok: datastore is writable');
    } catch (err) {
      ok = false;
      lines.push(`FAIL: datastore: ${err instanceof Error ? err.message : String(err)}`);
    }
    const t = Math.floor(now() / 1000);
    const authorities: Array<[string, () => number]> = [
      ['root', () => ca.rootOfTrust().notAfter],
      ['intermediate', () => ca.activeX509().notAfter],
      ['JWT key', () => ca.activeJwt().notAfter],
    ];
    for (const [what, notAfter] of authorities) {
      try {
        const na = notAfter();
        const good = na > t;
        ok &&= good;
        lines.push(`${good ? 'ok' : 'FAIL'}: active ${what} ${good ? 'valid until' : 'expired at'} ${new Date(na * 1000).toISOString()}`);
      } catch (err) {
        ok = false;
        lines.push(`FAIL: ${what}: ${isAnchorageError(err) ? err.message : String(err)}`);
      }
    }
    return { ok, lines };
  }
}

/** notBefore and notAfter of a DER certificate, Unix seconds. */
function validity(der: Uint8Array): [number, number] {
  const c = new X509Certificate(der);
  return [Math.floor(Date.parse(c.validFrom) / 1000), Math.floor(Date.parse(c.validTo) / 1000)];
}
