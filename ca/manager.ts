import { EventEmitter } from 'node:events';
import { X509Certificate, createHash, createPublicKey, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { AnchorageError, invalid, isAnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../common/log.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import type { TrustDomain } from '@anchorage/client/spiffe/id';
import type { AttestedAgent, DataStore, JournalEntry, JournalKind } from './datastore/DataStore.js';
import type { KeyHandle, KeyManager, KeyType } from './keymanager/KeyManager.js';
import { BACKDATE_SECONDS, issueSelfSignedRoot, keyForPreparingRow, selfSignedRootFromRow, type RootOfTrust } from './root.js';
import { NO_AUDIT, type AuditSink } from './audit/event.js';
import {
  LeafEncoder,
  assembleCertificate,
  encodeCaTbs,
  readIssuerInfo,
  randomSerial,
} from './x509/cert.js';
import { encodeName } from './x509/name.js';

/** An intermediate CA ready to sign: its key, encoder and the chain it adds to every SVID. */
export interface X509Slot {
  readonly row: JournalEntry;
  readonly key: KeyHandle;
  readonly encoder: LeafEncoder;
  /** DER: the intermediate followed by any upstream intermediates (never the anchor). */
  readonly chain: Uint8Array[];
  readonly notAfter: number;
}

/** A JWT signing key with its precomputed protected header. */
export interface JwtSlot {
  readonly row: JournalEntry;
  readonly key: KeyHandle;
  readonly kid: string;
  /** base64url of the JWS protected header, ready to prefix every token. */
  readonly headerB64: string;
  readonly notAfter: number;
}

export interface CaManagerOptions {
  trustDomain: TrustDomain;
  keyManager: KeyManager;
  root: RootOfTrust;
  datastore: DataStore;
  /** Intermediate CA lifetime, seconds. */
  caTtl: number;
  keyType: KeyType;
  /** spiffe_refresh_hint of the published bundle, seconds. */
  bundleRefreshHint: number;
  /** Milliseconds since the epoch; tests pass a fake clock. */
  now?: () => number;
  logger: Logger;
  /** Run rotation on timers (the server); tests drive `tick()` themselves. */
  autoRotate?: boolean;
  /**
   * How to make a new self-signed root (anchorage authority root prepare):
   * the key manager that holds roots, the key type, lifetime (seconds) and
   * label prefix. Absent for an upstream root, which this server cannot rotate.
   */
  rootRotation?: RootRotation;
  /** Where authority steps are recorded (ca/audit). */
  audit?: AuditSink;
  /**
   * This server's id when several servers share the datastore: each owns its
   * own intermediates and JWT keys (journal rows with its id) and signs with
   * them; roots are shared. '' (the default) for a lone server.
   */
  serverId?: string;
}

export interface RootRotation {
  keyManager: KeyManager;
  keyType: KeyType;
  ttl: number;
  /** New roots' key labels: `<labelBase>-<8 hex>`. */
  labelBase: string;
}

export interface RotationTimes {
  prepareAt: number;
  activateAt: number;
}

const DAY = 86400;
/** Never sleep longer than this between checks, so a suspended host or a clock step is noticed. */
const MAX_TIMER_MS = 10 * 60 * 1000;

/**
 * When to prepare and when to activate the successor of a CA, after SPIRE's
 * schedule: prepare at notAfter − min(lifetime/2, 30 d) so the new JWT key is
 * published long before it signs anything; activate at notAfter −
 * min(lifetime/6, 7 d) so SVIDs from the old CA have expired or rotated
 * before the old CA does.
 */
export function rotationTimes(notBefore: number, notAfter: number): RotationTimes {
  const lifetime = notAfter - notBefore;
  return {
    prepareAt: notAfter - Math.min(Math.floor(lifetime / 2), 30 * DAY),
    activateAt: notAfter - Math.min(Math.floor(lifetime / 6), 7 * DAY),
  };
}

/**
 * Owns the CA journal: the intermediates and JWT keys, their rotation
 * (prepared → active → old → dropped), and the trust domain's own bundle.
 *
 * Every step writes the journal before it acts on the key manager, so a
 * restart at any point resumes the step instead of starting a new one: a key
 * is generated at most once per row, and the active CA is never lost.
 */
/** The three kinds of authority an operator manages (anchorage authority <kind> ...). */
export type AuthorityKind = JournalKind;

/** What an authority step did, for the admin API to report. */
export interface AuthorityOutcome {
  /** The authority acted on, as stored afterwards (prepare: the new one). */
  row: JournalEntry;
  /** Other authorities the step changed (a successor activated, a root withdrawn with its intermediates). */
  also: JournalEntry[];
  /** With force: the agents that did not hold the bundle the step relied on. */
  lostTrust: AttestedAgent[];
  /** One line for the operator. */
  message: string;
}

/** Lowercase hex SHA-256 of a DER certificate: how tainted intermediates are named to agents. */
export function certFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

const failed = (message: string) => new AnchorageError('failed_precondition', message);

/**
 * Owns the CA journal: the roots, intermediates and JWT keys, their rotation
 * (prepared → active → old → dropped) on schedule and by an operator
 * (prepare, activate, taint, revoke), and the trust domain's own bundle.
 *
 * Every step writes the journal before it acts on the key manager, so a
 * restart at any point resumes the step instead of starting a new one: a key
 * is generated at most once per row, and the active CA is never lost. Steps
 * run one at a time (scheduled ticks and operator commands alike).
 *
 * Trust in X.509 authorities is withdrawn at the granularity of roots: the
 * bundle holds roots, not intermediates (see README, "Authority lifecycle").
 */
export class CaManager extends EventEmitter {
  readonly trustDomain: TrustDomain;
  private readonly km: KeyManager;
  private readonly ds: DataStore;
  private root: RootOfTrust;
  private readonly opts: CaManagerOptions;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly audit: AuditSink;
  private x509Active: X509Slot | undefined;
  private jwtActive: JwtSlot | undefined;
  /** Every JWT key that is published (prepared, active, old; not revoked), by kid. */
  private jwtPublished = new Map<string, JwtSlot>();
  private x509Prepared = false;
  private bundleCache: SpiffeBundle | undefined;
  /** Fingerprints of tainted intermediates and kids of tainted JWT keys (sent to agents). */
  private tainted: { x509: string[]; jwt: string[] } = { x509: [], jwt: [] };
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** Serializes journal steps: ticks and operator commands never interleave. */
  private lock: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** A journal or bundle write happened in the current step: other servers are told when it ends ('journal'). */
  private wrote = false;
  readonly serverId: string;

  constructor(opts: CaManagerOptions) {
    super();
    this.opts = opts;
    this.trustDomain = opts.trustDomain;
    this.km = opts.keyManager;
    this.ds = opts.datastore;
    this.root = opts.root;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
    this.audit = opts.audit ?? NO_AUDIT;
    this.serverId = opts.serverId ?? '';
  }

  /** Writes a journal row; the step that made it tells other servers when it ends. */
  private async put(row: JournalEntry): Promise<void> {
    await this.ds.putJournal(row);
    this.wrote = true;
  }

  private async remove(id: string): Promise<void> {
    await this.ds.deleteJournal(id);
    this.wrote = true;
  }

  private nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** Loads the journal, finishes any interrupted step, and brings the CA to a state that can sign. */
  async start(): Promise<void> {
    if (this.serverId !== '') {
      // Rows made before servers had ids (a lone server's) become this server's.
      await this.exclusive(async () => {
        for (const row of (await this.ds.listJournal()).filter((r) => r.kind !== 'root' && !r.serverId)) await this.put({ ...row, serverId: this.serverId });
      });
    }
    await this.tick();
    if (this.opts.autoRotate) this.schedule();
  }

  /** Stops the rotation timer. Does not close the key manager or datastore. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    await this.lock;
  }

  /** The intermediate that signs new X509-SVIDs. */
  activeX509(): X509Slot {
    if (!this.x509Active) throw new AnchorageError('unavailable', 'ca: no active X.509 CA (the server is still starting)');
    return this.x509Active;
  }

  /** The key that signs new JWT-SVIDs. */
  activeJwt(): JwtSlot {
    if (!this.jwtActive) throw new AnchorageError('unavailable', 'ca: no active JWT key (the server is still starting)');
    return this.jwtActive;
  }

  /** The trust domain's current bundle (anchors + published JWT keys). */
  bundle(): SpiffeBundle {
    if (!this.bundleCache) throw new AnchorageError('unavailable', 'ca: the bundle is not ready (the server is still starting)');
    return this.bundleCache;
  }

  /** The root that signs new intermediates. */
  rootOfTrust(): RootOfTrust {
    return this.root;
  }

  /**
   * Tainted authorities, as agents are told of them: SHA-256 fingerprints of
   * intermediates (lowercase hex) and JWT kids. Revoked ones stay listed
   * until their row is dropped at its notAfter.
   */
  taintedAuthorities(): { x509: readonly string[]; jwt: readonly string[] } {
    return this.tainted;
  }

  /**
   * Runs every transition that is due at the current time, in order, then
   * republishes the bundle if its content changed. Safe to call at any time;
   * concurrent calls share one run.
   */
  tick(): Promise<void> {
    if (!this.ticking) {
      this.ticking = this.exclusive(() => this.runTick()).finally(() => {
        this.ticking = undefined;
      });
    }
    return this.ticking;
  }

  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const run = this.lock.then(async () => {
      try {
        return await step();
      } finally {
        if (this.wrote) {
          this.wrote = false;
          this.emit('journal');
        }
      }
    });
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Another server sharing the datastore changed the journal or the bundle
   * (ca/cluster/): reload the active root, the slots, the bundle and the
   * tainted sets, and destroy the keys of our own authorities it revoked.
   */
  reload(): Promise<void> {
    return this.exclusive(async () => {
      const rr = this.opts.rootRotation;
      if (this.root.kind === 'self-signed' && rr) {
        const active = (await this.rows('root')).filter((r) => r.status === 'active' && r.certDer).sort((a, b) => b.notBefore - a.notBefore)[0];
        if (active && active.id !== this.root.id) {
          this.root = await selfSignedRootFromRow(active, rr.keyManager);
          this.log.info({ root: active.id }, 'ca: another server activated a root; new intermediates chain to it');
        }
      }
      for (const row of (await this.rows('x509')).concat(await this.rows('jwt')).filter((r) => r.revokedAt)) {
        if (await this.km.getKey(row.keyId).catch(() => undefined)) await this.km.deleteKey(row.keyId);
      }
      await this.refresh();
    });
  }

  private async runTick(): Promise<void> {
    this.warnIfRootExpiring();
    await this.resumeRoots();
    for (const kind of ['x509', 'jwt'] as const) {
      await this.resume(kind);
      await this.rotate(kind);
    }
    await this.dropExpiredRoots();
    await this.refresh();
  }

  /**
   * Rotating the root is an operator's decision (every relying party must get
   * the new anchor first), so the server only warns, early and repeatedly.
   * Intermediates are cut short at the root's notAfter in the meantime.
   */
  private warnIfRootExpiring(): void {
    const left = this.root.notAfter - this.nowSeconds();
    if (left < Math.max(90 * DAY, 4 * this.opts.caTtl)) {
      this.log.warn(
        { rootNotAfter: new Date(this.root.notAfter * 1000).toISOString(), daysLeft: Math.floor(left / DAY) },
        'ca: the root of trust expires soon; plan its rotation (anchorage authority root prepare)',
      );
    }
  }

  /** Finishes a root preparation a crash interrupted, and settles a crash in the middle of a root activation. */
  private async resumeRoots(): Promise<void> {
    if (this.root.kind !== 'self-signed') return;
    const rows = await this.rows('root');
    for (const row of rows.filter((r) => r.status === 'preparing' && r.id !== this.root.id)) await this.completeRoot(row, 'prepared');
    for (const stale of rows.filter((r) => r.status === 'active' && r.id !== this.root.id)) {
      await this.put({ ...stale, status: 'old' });
    }
  }

  /** Roots past their notAfter leave the journal (and the token), as intermediates do. */
  private async dropExpiredRoots(): Promise<void> {
    const rr = this.opts.rootRotation;
    if (this.root.kind !== 'self-signed' || !rr) return;
    for (const old of (await this.rows('root')).filter((r) => r.status === 'old' && r.notAfter <= this.nowSeconds())) {
      await rr.keyManager.deleteKey(old.keyId);
      await this.remove(old.id);
      await this.record('authority.dropped', old);
      this.log.info({ id: old.id, kind: 'root' }, 'ca: dropped an expired root');
    }
  }

  /** Finishes interrupted steps: half-made rows and a crash between the two writes of an activation. */
  private async resume(kind: 'x509' | 'jwt'): Promise<void> {
    const rows = await this.rows(kind);
    for (const row of rows.filter((r) => r.status === 'preparing')) {
      const hasActive = rows.some((r) => r.status === 'active');
      await this.completePreparation(row, hasActive ? 'prepared' : 'active');
    }
    const active = (await this.rows(kind)).filter((r) => r.status === 'active');
    if (active.length > 1) {
      // Activation writes the new row first; the newest is the one to keep.
      active.sort((a, b) => b.notBefore - a.notBefore);
      for (const stale of active.slice(1)) await this.put({ ...stale, status: 'old' });
    }
  }

  private async rotate(kind: 'x509' | 'jwt'): Promise<void> {
    const now = this.nowSeconds();
    let rows = await this.rows(kind);
    let active = rows.find((r) => r.status === 'active');
    if (!active) {
      const prepared = rows.find(usablePrepared);
      if (prepared) await this.activate(prepared, undefined);
      else await this.prepare(kind, 'active');
      rows = await this.rows(kind);
      active = rows.find((r) => r.status === 'active')!;
    }
    // A prepared key that is already past its own activation time (the
    // server was down for most of its life) would expire right after being
    // activated, before anything renewed against it: retire it and make a
    // fresh one. Retired rows leave as 'old' ones do, at their notAfter.
    for (const stale of rows.filter((r) => usablePrepared(r) && now >= rotationTimes(r.notBefore, r.notAfter).activateAt)) {
      await this.put({ ...stale, status: 'old' });
      this.log.warn({ id: stale.id, kind, notAfter: new Date(stale.notAfter * 1000).toISOString() }, 'ca: retired a prepared key too close to its expiry to be activated');
    }
    rows = await this.rows(kind);
    const times = rotationTimes(active.notBefore, active.notAfter);
    let prepared = rows.find(usablePrepared);
    if (!prepared && (now >= times.prepareAt || active.notAfter <= now)) {
      prepared = await this.prepare(kind, 'prepared');
    }
    if (prepared && (now >= times.activateAt || active.notAfter <= now)) {
      await this.activate(prepared, active);
    }
    // Tainted prepared rows were never used and never will be: they leave like old ones.
    for (const old of (await this.rows(kind)).filter((r) => (r.status === 'old' || r.status === 'prepared') && r.notAfter <= now)) {
      await this.km.deleteKey(old.keyId);
      await this.remove(old.id);
      await this.record('authority.dropped', old);
      this.log.info({ id: old.id, kind }, 'ca: dropped an expired key');
    }
  }

  /** This server's rows of a kind (every root: roots are shared). */
  private async rows(kind: JournalKind): Promise<JournalEntry[]> {
    return (await this.ds.listJournal()).filter((r) => r.kind === kind && this.owns(r));
  }

  private owns(r: JournalEntry): boolean {
    return r.kind === 'root' || (r.serverId ?? '') === this.serverId;
  }

  private async prepare(kind: 'x509' | 'jwt', status: 'prepared' | 'active'): Promise<JournalEntry> {
    const id = `${kind}-${randomUUID()}`;
    const row: JournalEntry = {
      id,
      kind,
      status: 'preparing',
      keyId: `anchorage-${this.trustDomain.name}-${id}`.slice(0, 128),
      notBefore: 0,
      notAfter: 0,
      createdAt: this.nowSeconds(),
      ...(kind === 'x509' ? { issuerId: this.root.id } : {}),
      ...(this.serverId ? { serverId: this.serverId } : {}),
    };
    await this.put(row);
    return this.completePreparation(row, status);
  }

  /** Steps 2 and 3 of preparing a row: the key (found again or generated), then the certificate or kid. */
  private async completePreparation(row: JournalEntry, status: 'prepared' | 'active'): Promise<JournalEntry> {
    const keyType = row.kind === 'jwt' ? 'ec-p256' : this.opts.keyType;
    const key = await keyForPreparingRow(this.km, row, keyType, this.log);
    const now = this.nowSeconds();
    const notBefore = now - BACKDATE_SECONDS;
    const notAfter = Math.min(now + this.opts.caTtl, this.root.notAfter);
    if (notAfter <= now) {
      throw new AnchorageError('failed_precondition', `ca: the root of trust expired at ${new Date(this.root.notAfter * 1000).toISOString()}`);
    }
    let done: JournalEntry;
    if (row.kind === 'x509') {
      const subject = encodeName([
        { type: 'O', value: 'Anchorage' },
        { type: 'CN', value: `Anchorage intermediate ${this.trustDomain.name}`.slice(0, 64) },
        { type: 'serialNumber', value: row.id.slice(5, 41) },
      ]);
      const tbs = encodeCaTbs({
        serial: randomSerial(),
        issuerName: this.rootSubject(),
        issuerSki: this.rootSki(),
        subject,
        notBefore: new Date(notBefore * 1000),
        notAfter: new Date(notAfter * 1000),
        spki: key.publicKeySpki,
        signerKeyType: this.root.key.type,
        spiffeId: this.trustDomain.idString(),
        pathLen: 0,
      });
      const certDer = assembleCertificate(tbs, this.root.key.type, await this.root.key.sign(tbs));
      // The root that signs it now; a row resumed after a crash may name an older one.
      done = { ...row, status, certDer, publicKeySpki: key.publicKeySpki, notBefore, notAfter, issuerId: this.root.id };
    } else {
      const kid = await jwkThumbprint(key.publicKeySpki);
      done = { ...row, status, publicKeySpki: key.publicKeySpki, kid, notBefore, notAfter };
    }
    await this.put(done);
    await this.record('authority.prepared', done);
    this.log.info({ id: row.id, kind: row.kind, status, notAfter: new Date(notAfter * 1000).toISOString() }, 'ca: prepared a key');
    return done;
  }

  /** A new self-signed root row, finished: key in the root key manager, certificate, status. */
  private async completeRoot(row: JournalEntry, status: 'prepared'): Promise<JournalEntry> {
    const rr = this.requireRootRotation();
    const key = await keyForPreparingRow(rr.keyManager, row, rr.keyType, this.log);
    const done: JournalEntry = { ...(await issueSelfSignedRoot(row, key, this.trustDomain, this.nowSeconds(), rr.ttl)), status };
    await this.put(done);
    await this.record('authority.prepared', done);
    this.log.info({ id: row.id, kind: 'root', notAfter: new Date(done.notAfter * 1000).toISOString() }, 'ca: prepared a root');
    return done;
  }

  private requireRootRotation(): RootRotation {
    if (this.root.kind !== 'self-signed' || !this.opts.rootRotation) {
      throw failed(
        'authority: the root comes from ca.root.cert_file (an upstream CA); this server cannot make or withdraw roots — rotate it at the upstream CA',
      );
    }
    return this.opts.rootRotation;
  }

  private async activate(next: JournalEntry, current: JournalEntry | undefined): Promise<void> {
    // New first, old second: a crash in between leaves two active rows, which
    // resume() settles in favour of the newer one.
    await this.put({ ...next, status: 'active' });
    if (current) await this.put({ ...current, status: 'old' });
    await this.record('authority.activated', next, current ? { replaced: current.id } : undefined);
    this.log.info({ id: next.id, kind: next.kind }, 'ca: activated a key');
    this.emit('rotated', next.kind);
  }

  /** Issuer fields of our intermediates: the root's subject byte for byte, and its SKI. */
  private rootSubject(): Uint8Array {
    return readIssuerInfo(this.root.cert).subject;
  }

  private rootSki(): Uint8Array | undefined {
    return readIssuerInfo(this.root.cert).ski;
  }

  /** Reloads the slots from the journal and republishes the bundle if its content changed. */
  private async refresh(): Promise<void> {
    const rows = await this.ds.listJournal();
    await this.loadSlots(rows);
    await this.publishBundle(rows);
  }

  /** Rebuilds the in-memory slots from the journal (cheap; keys are cached by the key manager). */
  private async loadSlots(all: JournalEntry[]): Promise<void> {
    const rows = all.filter((r) => this.owns(r));
    const x509 = rows.find((r) => r.kind === 'x509' && r.status === 'active');
    this.x509Prepared = rows.some((r) => r.kind === 'x509' && usablePrepared(r));
    if (x509 && x509.id !== this.x509Active?.row.id) {
      const key = await this.requireKey(x509);
      this.x509Active = {
        row: x509,
        key,
        encoder: new LeafEncoder({ issuerCertDer: x509.certDer!, issuerKeyType: key.type }),
        chain: [x509.certDer!, ...this.root.chain],
        notAfter: x509.notAfter,
      };
    } else if (x509 && this.x509Active) {
      this.x509Active = { ...this.x509Active, row: x509 };
    }
    const published = new Map<string, JwtSlot>();
    for (const row of rows.filter((r) => r.kind === 'jwt' && r.status !== 'preparing' && !r.revokedAt)) {
      const existing = this.jwtPublished.get(row.kid!);
      const slot = existing ?? (await this.jwtSlot(row));
      published.set(row.kid!, { ...slot, row });
      if (row.status === 'active') this.jwtActive = published.get(row.kid!);
    }
    this.jwtPublished = published;
    // Every server's tainted authorities: an agent may hold SVIDs of another server's intermediate.
    const tainted = {
      x509: all.filter((r) => r.kind === 'x509' && r.taintedAt && r.certDer).map((r) => certFingerprint(r.certDer!)).sort(),
      jwt: all.filter((r) => r.kind === 'jwt' && r.taintedAt && r.kid).map((r) => r.kid!).sort(),
    };
    if (tainted.x509.join() !== this.tainted.x509.join() || tainted.jwt.join() !== this.tainted.jwt.join()) {
      this.tainted = tainted;
      this.emit('taint', tainted);
    }
  }

  private async jwtSlot(row: JournalEntry): Promise<JwtSlot> {
    const key = await this.requireKey(row);
    const header = { alg: 'ES256', kid: row.kid!, typ: 'JWT' };
    return { row, key, kid: row.kid!, headerB64: Buffer.from(JSON.stringify(header)).toString('base64url'), notAfter: row.notAfter };
  }

  private async requireKey(row: JournalEntry): Promise<KeyHandle> {
    const key = await this.km.getKey(row.keyId);
    if (!key) {
      throw new AnchorageError(
        'failed_precondition',
        `ca: key "${row.keyId}" of journal row ${row.id} (${row.status}) is missing from the ${this.km.kind} key manager`,
      );
    }
    return key;
  }

  /**
   * The X.509 trust anchors to publish: an upstream root's anchor, or every
   * self-signed root that is prepared, active or old, unexpired and not revoked.
   */
  private anchorRows(rows: JournalEntry[]): JournalEntry[] {
    const now = this.nowSeconds();
    return rows
      .filter((r) => r.kind === 'root' && r.status !== 'preparing' && r.certDer && !r.revokedAt && r.notAfter > now)
      .sort((a, b) => a.notBefore - b.notBefore || a.id.localeCompare(b.id));
  }

  private anchors(rows: JournalEntry[]): Uint8Array[] {
    if (this.root.kind !== 'self-signed') return this.root.anchors;
    const found = this.anchorRows(rows).map((r) => r.certDer!);
    // The active root is published whatever the journal says (it signs every intermediate).
    return found.length > 0 ? found : this.root.anchors;
  }

  /**
   * Publishes the bundle; raises spiffe_sequence only when the content
   * changed. The JWT keys are every server's (the journal holds their public
   * halves). Servers sharing the datastore publish through the sequence
   * check: a write that lost to another server's is recomputed.
   */
  private async publishBundle(rows: JournalEntry[]): Promise<void> {
    const jwtKeys = new Map<string, JWK>();
    const published = rows
      .filter((r) => r.kind === 'jwt' && r.status !== 'preparing' && !r.revokedAt && r.kid && r.publicKeySpki)
      .sort((a, b) => a.kid!.localeCompare(b.kid!));
    for (const r of published) jwtKeys.set(r.kid!, createPublicKey({ key: Buffer.from(r.publicKeySpki!), format: 'der', type: 'spki' }).export({ format: 'jwk' }) as JWK);
    const x509Authorities = this.anchors(rows);
    const candidate = new SpiffeBundle(this.trustDomain, { x509Authorities, jwtAuthorities: jwtKeys, refreshHint: this.opts.bundleRefreshHint });
    let sequence = 0;
    for (let attempt = 1; ; attempt++) {
      const stored = await this.ds.getBundle(this.trustDomain.name);
      const storedContent = stored ? SpiffeBundle.parse(this.trustDomain, stored.document) : undefined;
      if (storedContent && sameContent(storedContent, candidate)) {
        sequence = stored!.sequence;
        if (this.bundleCache?.sequence !== sequence) {
          // Published by another server (or loaded at start).
          const first = this.bundleCache === undefined;
          this.bundleCache = storedContent;
          if (!first) this.emit('bundle', storedContent);
        }
        break;
      }
      const next = new SpiffeBundle(this.trustDomain, { x509Authorities, jwtAuthorities: jwtKeys, refreshHint: this.opts.bundleRefreshHint });
      next.sequence = (stored?.sequence ?? 0) + 1;
      try {
        await this.ds.putBundle({
          trustDomain: this.trustDomain.name,
          document: next.marshal(),
          sequence: next.sequence,
          refreshHint: this.opts.bundleRefreshHint,
          updatedAt: this.nowSeconds(),
        });
      } catch (err) {
        // Another server wrote a newer sequence between our read and our write: read it again.
        if (isAnchorageError(err, 'failed_precondition') && attempt < 5) continue;
        throw err;
      }
      this.wrote = true;
      this.bundleCache = next;
      sequence = next.sequence;
      this.log.info({ sequence, jwtKeys: jwtKeys.size, x509Authorities: x509Authorities.length }, 'ca: published the bundle');
      this.emit('bundle', next);
      break;
    }
    // Record the first sequence that holds each root and JWT key: the gate
    // on removing a root compares it with what agents report holding. Only
    // that column is written, so another server's row is never overwritten.
    const inBundle = [...this.anchorRows(rows), ...published];
    for (const row of inBundle.filter((r) => !r.publishedSequence)) await this.ds.stampJournalPublished(row.id, sequence);
  }

  /** Sets a timer for the next due transition (or the periodic check, whichever is sooner). */
  private schedule(): void {
    if (this.closed) return;
    const due = this.nextDue();
    const delay = Math.max(1000, Math.min(MAX_TIMER_MS, due * 1000 - this.now()));
    this.timer = setTimeout(() => {
      this.tick()
        .catch((err) => this.log.error({ err }, 'ca: rotation step failed; will retry'))
        .finally(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  /** Unix seconds of the next scheduled transition. */
  nextDue(): number {
    let due = Number.POSITIVE_INFINITY;
    for (const slot of [this.x509Active, this.jwtActive]) {
      if (!slot) continue;
      const t = rotationTimes(slot.row.notBefore, slot.row.notAfter);
      due = Math.min(due, this.hasPrepared(slot.row.kind) ? t.activateAt : t.prepareAt);
    }
    for (const slot of this.jwtPublished.values()) if (slot.row.status === 'old') due = Math.min(due, slot.notAfter);
    return due;
  }

  private hasPrepared(kind: JournalKind): boolean {
    if (kind === 'jwt') return [...this.jwtPublished.values()].some((s) => usablePrepared(s.row));
    return this.x509Prepared;
  }

  /** All journal rows, for status reporting. */
  async journal(): Promise<JournalEntry[]> {
    return this.ds.listJournal();
  }

  private async record(type: string, row: JournalEntry, details?: Record<string, string | number | boolean>): Promise<void> {
    await this.audit.record({
      type,
      authority: row.id,
      ...(row.certDer ? { serial: readSerialHex(row.certDer) } : {}),
      ...(row.notAfter ? { expiresAt: row.notAfter } : {}),
      details: { kind: row.kind, status: row.status, ...(row.kid ? { kid: row.kid } : {}), ...details },
    });
  }

  // --- operator steps (anchorage authority ...) ------------------------------

  /**
   * Agents that count for the root gate (not evicted, SVID unexpired) and do
   * not yet report holding bundle `sequence` or later.
   */
  async agentsLagging(sequence: number): Promise<AttestedAgent[]> {
    const now = this.nowSeconds();
    return (await this.ds.listAgents())
      .filter((a) => !a.evicted && a.certNotAfter > now && (a.report?.bundleSequence ?? 0) < sequence)
      .sort((a, b) => a.spiffeId.localeCompare(b.spiffeId));
  }

  /** The root journal id that signed an intermediate: recorded, or found by signature for rows made before it was. */
  issuerOf(row: JournalEntry, rows: JournalEntry[]): string | undefined {
    if (row.issuerId) return row.issuerId;
    if (this.root.kind !== 'self-signed' || !row.certDer) return this.root.kind === 'upstream' ? 'upstream' : undefined;
    const cert = new X509Certificate(row.certDer);
    for (const r of rows.filter((x) => x.kind === 'root' && x.certDer)) {
      const root = new X509Certificate(r.certDer!);
      if (cert.checkIssued(root) && cert.verify(root.publicKey)) return r.id;
    }
    return undefined;
  }

  /** anchorage authority <kind> prepare: a new key (and certificate), published where it belongs, not yet signing. */
  prepareAuthority(kind: AuthorityKind): Promise<AuthorityOutcome> {
    return this.exclusive(async () => {
      const pending = (await this.rows(kind)).find((r) => usablePrepared(r) || r.status === 'preparing');
      if (pending) {
        throw failed(`authority: ${kind} authority ${pending.id} is already prepared; activate it (anchorage authority ${kind} activate) or taint it before preparing another`);
      }
      let row: JournalEntry;
      if (kind === 'root') {
        const rr = this.requireRootRotation();
        const id = `root-${randomUUID()}`;
        row = { id, kind: 'root', status: 'preparing', keyId: `${rr.labelBase}-${id.slice(5, 13)}`.slice(0, 128), notBefore: 0, notAfter: 0, createdAt: this.nowSeconds() };
        await this.put(row);
        row = await this.completeRoot(row, 'prepared');
      } else {
        row = await this.prepare(kind, 'prepared');
      }
      await this.refresh();
      row = await this.requireRow(kind, row.id);
      const where =
        kind === 'x509'
          ? `under root ${row.issuerId}; intermediates are in no bundle`
          : `published in bundle sequence ${row.publishedSequence}`;
      return { row, also: [], lostTrust: [], message: `prepared ${kind} authority ${row.id} (${where}); activate it with: anchorage authority ${kind} activate --id ${row.id}` };
    });
  }

  /**
   * anchorage authority <kind> activate: new SVIDs (root: new intermediates)
   * are signed by it. A root is activated only once every agent holds a
   * bundle with it, unless forced.
   */
  activateAuthority(kind: AuthorityKind, id: string | undefined, force = false): Promise<AuthorityOutcome> {
    return this.exclusive(async () => {
      const rows = await this.rows(kind);
      const target = id ? await this.requireRow(kind, id) : rows.find(usablePrepared);
      if (!target) throw failed(`authority: no prepared ${kind} authority to activate; run: anchorage authority ${kind} prepare`);
      this.checkUsable(target, 'activate');
      if (target.status === 'active') throw failed(`authority: ${kind} authority ${target.id} is already active`);
      if (target.status === 'old') throw failed(`authority: ${kind} authority ${target.id} was replaced before and is not activated again; prepare a new one`);
      const current = rows.find((r) => r.status === 'active');
      let lostTrust: AttestedAgent[] = [];
      let message: string;
      if (kind === 'root') {
        const rr = this.requireRootRotation();
        const lagging = await this.agentsLagging(target.publishedSequence ?? Number.MAX_SAFE_INTEGER);
        if (lagging.length > 0 && !force) {
          throw failed(
            `authority: ${lagging.length} agent(s) do not hold a bundle with root ${target.id} yet (first in sequence ${target.publishedSequence}): ${names(lagging)}; ` +
              'SVIDs chaining to it would not verify there. Wait (anchorage authority root list shows who lags) or pass --force',
          );
        }
        lostTrust = force ? lagging : [];
        const nextRoot = await selfSignedRootFromRow(target, rr.keyManager);
        await this.put({ ...target, status: 'active' });
        if (current) await this.put({ ...current, status: 'old' });
        this.root = nextRoot;
        await this.record('authority.activated', target, current ? { replaced: current.id } : undefined);
        this.log.info({ id: target.id, kind: 'root' }, 'ca: activated a root');
        const x509 = this.x509Active?.row;
        message =
          `activated root ${target.id}: new intermediates chain to it` +
          (x509 && this.issuerOf(x509, await this.rows('root')) !== target.id
            ? `; the active x509 authority ${x509.id} still chains to ${current?.id ?? 'the old root'}: run anchorage authority x509 prepare, then activate, then taint the old one before revoking the old root`
            : '');
      } else {
        await this.activate(target, current);
        message = `activated ${kind} authority ${target.id}` + (current ? `; ${current.id} is now old (still trusted; taint it to make agents re-mint at once)` : '');
      }
      await this.refresh();
      const also = current ? [await this.requireRow(kind, current.id)] : [];
      return { row: await this.requireRow(kind, target.id), also, lostTrust, message };
    });
  }

  /**
   * anchorage authority x509|jwt taint: still trusted, but every agent
   * re-mints at once every SVID it signed. The active one is first replaced:
   * by the prepared successor, or by a new one made on the spot.
   */
  taintAuthority(kind: AuthorityKind, id: string | undefined): Promise<AuthorityOutcome> {
    return this.exclusive(async () => {
      if (kind === 'root') {
        throw invalid(
          'authority: roots are not tainted; rotate instead: anchorage authority root prepare, then activate, then taint the intermediates of the old root, then revoke it',
        );
      }
      const rows = await this.rows(kind);
      let target = id ? await this.requireRow(kind, id) : rows.find((r) => r.status === 'active');
      if (!target) throw failed(`authority: no active ${kind} authority to taint`);
      this.checkUsable(target, 'taint');
      const also: JournalEntry[] = [];
      let successorNote = '';
      if (target.status === 'active') {
        const successor = rows.find(usablePrepared) ?? (await this.prepare(kind, 'prepared'));
        await this.activate(successor, target);
        also.push(successor);
        successorNote = `; activated ${successor.id} in its place`;
        target = await this.requireRow(kind, target.id);
      }
      const tainted: JournalEntry = { ...target, taintedAt: this.nowSeconds() };
      await this.put(tainted);
      await this.record('authority.tainted', tainted);
      this.log.warn({ id: target.id, kind }, 'ca: authority tainted; agents re-mint what it signed');
      await this.refresh();
      const what = kind === 'x509' ? 'agents re-mint every X509-SVID it signed now' : 'agents drop every cached JWT-SVID it signed now';
      return {
        row: await this.requireRow(kind, target.id),
        also: await Promise.all(also.map((r) => this.requireRow(kind, r.id))),
        lostTrust: [],
        message: `tainted ${kind} authority ${target.id}: ${what}${successorNote}`,
      };
    });
  }

  /**
   * anchorage authority <kind> revoke: no longer trusted anywhere. A JWT key
   * leaves the bundle; an intermediate is withdrawn by withdrawing its root
   * (the bundle holds roots), which needs every other intermediate of that
   * root tainted and the active one under another root.
   */
  revokeAuthority(kind: AuthorityKind, id: string | undefined, force = false): Promise<AuthorityOutcome> {
    return this.exclusive(async () => {
      if (!id) throw invalid(`authority: --id is required: name the ${kind} authority to revoke (anchorage authority ${kind} list)`);
      // An intermediate is revoked through its (shared) root: any server may do it.
      const target = kind === 'x509' ? await this.anyRow(kind, id) : await this.requireRow(kind, id);
      if (target.revokedAt) throw failed(`authority: ${kind} authority ${id} was already revoked at ${iso(target.revokedAt)}`);
      if (target.status === 'preparing') throw failed(`authority: ${kind} authority ${id} is still being prepared`);
      if (target.status === 'active') {
        throw failed(
          kind === 'root'
            ? `authority: root ${id} is the active root; prepare and activate another first (anchorage authority root prepare; anchorage authority root activate)`
            : `authority: ${kind} authority ${id} is active; taint it first (anchorage authority ${kind} taint --id ${id} activates a successor)`,
        );
      }
      if (kind === 'root') return this.revokeRoot(target, force, undefined);
      if (!target.taintedAt) {
        throw failed(`authority: ${kind} authority ${id} is not tainted; taint it first so agents re-mint what it signed: anchorage authority ${kind} taint --id ${id}`);
      }
      if (kind === 'x509') {
        if (this.root.kind !== 'self-signed') {
          throw failed(
            `authority: x509 authority ${id} chains to the upstream root, which the bundle holds and this server cannot withdraw; rotate the upstream CA instead`,
          );
        }
        const issuer = this.issuerOf(target, await this.rows('root'));
        const root = issuer ? (await this.rows('root')).find((r) => r.id === issuer) : undefined;
        if (!root) throw failed(`authority: cannot tell which root signed x509 authority ${id}; revoke its root with anchorage authority root revoke`);
        return this.revokeRoot(root, force, target);
      }
      const revoked: JournalEntry = { ...target, revokedAt: this.nowSeconds() };
      await this.put(revoked);
      await this.km.deleteKey(target.keyId);
      await this.record('authority.revoked', revoked);
      this.log.warn({ id, kind }, 'ca: authority revoked; it left the bundle');
      await this.refresh();
      return {
        row: await this.requireRow(kind, id),
        also: [],
        lostTrust: [],
        message: `revoked jwt authority ${id}: it left the bundle (sequence ${this.bundle().sequence}); JWT-SVIDs it signed no longer validate, at federated peers after their next refresh`,
      };
    });
  }

  /** Withdraws a root and every intermediate it signed from trust (see revokeAuthority). */
  private async revokeRoot(root: JournalEntry, force: boolean, via: JournalEntry | undefined): Promise<AuthorityOutcome> {
    const rr = this.requireRootRotation();
    const what = via ? `revoking x509 authority ${via.id} means withdrawing root ${root.id}, which signed it (the bundle holds roots, not intermediates)` : `root ${root.id}`;
    if (root.revokedAt) throw failed(`authority: root ${root.id} was already revoked at ${iso(root.revokedAt)}`);
    if (root.id === this.root.id) {
      throw failed(
        `authority: ${what}, and it is the active root. Rotate the root first: anchorage authority root prepare; anchorage authority root activate; ` +
          'anchorage authority x509 prepare; anchorage authority x509 activate; then revoke again',
      );
    }
    const roots = await this.rows('root');
    // Every server's intermediates under this root: they all lose their trust with it.
    const x509 = (await this.ds.listJournal()).filter((r) => r.kind === 'x509' && !r.revokedAt && r.status !== 'preparing' && this.issuerOf(r, roots) === root.id);
    const of = (r: JournalEntry) => (r.serverId && r.serverId !== this.serverId ? ` (server ${r.serverId})` : '');
    const blockers = x509.filter((r) => r.status === 'active' || (r.status === 'old' && !r.taintedAt));
    if (blockers.length > 0) {
      const reasons = blockers.map((r) =>
        r.status === 'active'
          ? `x509 authority ${r.id}${of(r)} is active and chains to ${root.id} (anchorage authority x509 prepare; anchorage authority x509 activate puts one under the active root)`
          : `x509 authority ${r.id}${of(r)} chains to ${root.id} and SVIDs it signed may still be in use (anchorage authority x509 taint --id ${r.id})`,
      );
      throw failed(`authority: ${what}, which would leave SVIDs without a trusted root: ${reasons.join('; ')}`);
    }
    // Agents must already hold every root that stays, or they lose trust in what replaces this one.
    const staying = this.anchorRows(roots).filter((r) => r.id !== root.id);
    if (staying.length === 0) throw failed(`authority: ${what} would leave the trust domain without a root`);
    const needed = Math.max(...staying.map((r) => r.publishedSequence ?? 0));
    const lagging = await this.agentsLagging(needed);
    if (lagging.length > 0 && !force) {
      throw failed(
        `authority: ${what}; ${lagging.length} agent(s) do not yet hold bundle sequence ${needed} (with the roots that stay): ${names(lagging)}. ` +
          'Wait until they do (anchorage authority root list), or pass --force: they lose trust in every SVID until their next sync',
      );
    }
    const now = this.nowSeconds();
    const also: JournalEntry[] = [];
    for (const r of x509) {
      const revoked: JournalEntry = { ...r, taintedAt: r.taintedAt || now, revokedAt: now };
      await this.put(revoked);
      await this.km.deleteKey(r.keyId);
      await this.record('authority.revoked', revoked, { root: root.id });
    }
    const revokedRoot: JournalEntry = { ...root, revokedAt: now };
    await this.put(revokedRoot);
    await rr.keyManager.deleteKey(root.keyId);
    await this.record('authority.revoked', revokedRoot, force && lagging.length > 0 ? { forced: true, agentsLosingTrust: lagging.length } : undefined);
    this.log.warn({ root: root.id, intermediates: x509.map((r) => r.id), forced: force && lagging.length > 0 }, 'ca: root revoked; it left the bundle');
    await this.refresh();
    const revokedRows = [revokedRoot, ...x509].map((r) => r.id);
    for (const rid of revokedRows) also.push(await this.anyRow(rid === root.id ? 'root' : 'x509', rid));
    const main = via ? also.find((r) => r.id === via.id)! : also[0]!;
    return {
      row: main,
      also: also.filter((r) => r.id !== main.id),
      lostTrust: force ? lagging : [],
      message:
        `revoked ${via ? `x509 authority ${via.id} and its ` : ''}root ${root.id}` +
        (x509.length > (via ? 1 : 0) ? ` with ${x509.length - (via ? 1 : 0)} more intermediate(s)` : '') +
        `: out of the bundle (sequence ${this.bundle().sequence}); SVIDs they signed no longer verify, at federated peers after their next refresh` +
        (force && lagging.length > 0 ? `; ${lagging.length} agent(s) lose trust until their next sync: ${names(lagging)}` : ''),
    };
  }

  private checkUsable(row: JournalEntry, step: string): void {
    if (row.revokedAt) throw failed(`authority: cannot ${step} ${row.kind} authority ${row.id}: it was revoked at ${iso(row.revokedAt)}`);
    if (row.taintedAt) throw failed(`authority: cannot ${step} ${row.kind} authority ${row.id}: it was tainted at ${iso(row.taintedAt)}`);
    if (row.status === 'preparing') throw failed(`authority: cannot ${step} ${row.kind} authority ${row.id}: it is still being prepared`);
  }

  private async requireRow(kind: AuthorityKind, id: string): Promise<JournalEntry> {
    const row = await this.anyRow(kind, id);
    if (!this.owns(row)) {
      throw failed(`authority: ${kind} authority ${id} belongs to server ${row.serverId || '(unnamed)'}, which holds its key; run this against that server's admin socket`);
    }
    return row;
  }

  /** A row of any server. */
  private async anyRow(kind: AuthorityKind, id: string): Promise<JournalEntry> {
    const row = (await this.ds.listJournal()).find((r) => r.kind === kind && r.id === id);
    if (!row) throw new AnchorageError('not_found', `authority: no ${kind} authority ${id} (anchorage authority ${kind} list)`);
    return row;
  }
}

/** A prepared row that may still be activated. */
function usablePrepared(r: JournalEntry): boolean {
  return r.status === 'prepared' && !r.taintedAt && !r.revokedAt;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

/** Up to five agent IDs, then a count. */
function names(agents: AttestedAgent[]): string {
  const shown = agents.slice(0, 5).map((a) => a.spiffeId);
  return agents.length > 5 ? `${shown.join(', ')} and ${agents.length - 5} more` : shown.join(', ');
}

function readSerialHex(der: Uint8Array): string {
  return new X509Certificate(der).serialNumber.toLowerCase();
}

/** Same authorities and refresh hint; the sequence is what changes when they do not. */
function sameContent(a: SpiffeBundle, b: SpiffeBundle): boolean {
  return a.x509.equals(b.x509) && a.jwt.equals(b.jwt) && a.refreshHint === b.refreshHint;
}

async function jwkThumbprint(spki: Uint8Array): Promise<string> {
  const jwk = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ format: 'jwk' }) as JWK;
  return calculateJwkThumbprint(jwk, 'sha256');
}
