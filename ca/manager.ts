import { EventEmitter } from 'node:events';
import { createPublicKey, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../common/log.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import type { TrustDomain } from '@anchorage/client/spiffe/id';
import type { DataStore, JournalEntry, JournalKind } from './datastore/DataStore.js';
import type { KeyHandle, KeyManager, KeyType } from './keymanager/KeyManager.js';
import { BACKDATE_SECONDS, keyForPreparingRow, type RootOfTrust } from './root.js';
import {
  LeafEncoder,
  assembleCertificate,
  encodeCaTbs,
  readIssuerInfo,
  randomSerial,
} from './x509/cert.js';
import { encodeName } from './x509/name.js';
import type { AuditSink } from './audit/event.js';

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
  /** Where authority events (prepare, activate, taint, revoke) are recorded (ca/audit/). */
  audit?: AuditSink;
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
export class CaManager extends EventEmitter {
  readonly trustDomain: TrustDomain;
  private readonly km: KeyManager;
  private readonly ds: DataStore;
  private readonly root: RootOfTrust;
  private readonly opts: CaManagerOptions;
  private readonly now: () => number;
  private readonly log: Logger;
  private x509Active: X509Slot | undefined;
  private jwtActive: JwtSlot | undefined;
  /** Every JWT key that is published (prepared, active, old), by kid. */
  private jwtPublished = new Map<string, JwtSlot>();
  private x509Prepared = false;
  private bundleCache: SpiffeBundle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;

  constructor(opts: CaManagerOptions) {
    super();
    this.opts = opts;
    this.trustDomain = opts.trustDomain;
    this.km = opts.keyManager;
    this.ds = opts.datastore;
    this.root = opts.root;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
  }

  private nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** Loads the journal, finishes any interrupted step, and brings the CA to a state that can sign. */
  async start(): Promise<void> {
    await this.tick();
    if (this.opts.autoRotate) this.schedule();
  }

  /** Stops the rotation timer. Does not close the key manager or datastore. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
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

  rootOfTrust(): RootOfTrust {
    return this.root;
  }

  /**
   * Runs every transition that is due at the current time, in order, then
   * republishes the bundle if its content changed. Safe to call at any time;
   * concurrent calls share one run.
   */
  tick(): Promise<void> {
    if (!this.ticking) {
      this.ticking = this.runTick().finally(() => {
        this.ticking = undefined;
      });
    }
    return this.ticking;
  }

  private async runTick(): Promise<void> {
    this.warnIfRootExpiring();
    for (const kind of ['x509', 'jwt'] as const) {
      await this.resume(kind);
      await this.rotate(kind);
    }
    await this.loadSlots();
    await this.publishBundle();
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
        'ca: the root of trust expires soon; plan its rotation',
      );
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
      for (const stale of active.slice(1)) await this.ds.putJournal({ ...stale, status: 'old' });
    }
  }

  private async rotate(kind: 'x509' | 'jwt'): Promise<void> {
    const now = this.nowSeconds();
    let rows = await this.rows(kind);
    let active = rows.find((r) => r.status === 'active');
    if (!active) {
      const prepared = rows.find((r) => r.status === 'prepared');
      if (prepared) await this.activate(prepared, undefined);
      else await this.prepare(kind, 'active');
      rows = await this.rows(kind);
      active = rows.find((r) => r.status === 'active')!;
    }
    // A prepared key that is already past its own activation time (the
    // server was down for most of its life) would expire right after being
    // activated, before anything renewed against it: retire it and make a
    // fresh one. Retired rows leave as 'old' ones do, at their notAfter.
    for (const stale of rows.filter((r) => r.status === 'prepared' && now >= rotationTimes(r.notBefore, r.notAfter).activateAt)) {
      await this.ds.putJournal({ ...stale, status: 'old' });
      this.log.warn({ id: stale.id, kind, notAfter: new Date(stale.notAfter * 1000).toISOString() }, 'ca: retired a prepared key too close to its expiry to be activated');
    }
    rows = await this.rows(kind);
    const times = rotationTimes(active.notBefore, active.notAfter);
    let prepared = rows.find((r) => r.status === 'prepared');
    if (!prepared && (now >= times.prepareAt || active.notAfter <= now)) {
      prepared = await this.prepare(kind, 'prepared');
    }
    if (prepared && (now >= times.activateAt || active.notAfter <= now)) {
      await this.activate(prepared, active);
    }
    for (const old of (await this.rows(kind)).filter((r) => r.status === 'old' && r.notAfter <= now)) {
      await this.km.deleteKey(old.keyId);
      await this.ds.deleteJournal(old.id);
      this.log.info({ id: old.id, kind }, 'ca: dropped an expired key');
    }
  }

  private async rows(kind: JournalKind): Promise<JournalEntry[]> {
    return (await this.ds.listJournal()).filter((r) => r.kind === kind);
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
    };
    await this.ds.putJournal(row);
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
      done = { ...row, status, certDer, publicKeySpki: key.publicKeySpki, notBefore, notAfter };
    } else {
      const kid = await jwkThumbprint(key.publicKeySpki);
      done = { ...row, status, publicKeySpki: key.publicKeySpki, kid, notBefore, notAfter };
    }
    await this.ds.putJournal(done);
    this.log.info({ id: row.id, kind: row.kind, status, notAfter: new Date(notAfter * 1000).toISOString() }, 'ca: prepared a key');
    return done;
  }

  private async activate(next: JournalEntry, current: JournalEntry | undefined): Promise<void> {
    // New first, old second: a crash in between leaves two active rows, which
    // resume() settles in favour of the newer one.
    await this.ds.putJournal({ ...next, status: 'active' });
    if (current) await this.ds.putJournal({ ...current, status: 'old' });
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

  /** Rebuilds the in-memory slots from the journal (cheap; keys are cached by the key manager). */
  private async loadSlots(): Promise<void> {
    const rows = await this.ds.listJournal();
    const x509 = rows.find((r) => r.kind === 'x509' && r.status === 'active');
    this.x509Prepared = rows.some((r) => r.kind === 'x509' && r.status === 'prepared');
    if (x509 && x509.id !== this.x509Active?.row.id) {
      const key = await this.requireKey(x509);
      this.x509Active = {
        row: x509,
        key,
        encoder: new LeafEncoder({ issuerCertDer: x509.certDer!, issuerKeyType: key.type }),
        chain: [x509.certDer!, ...this.root.chain],
        notAfter: x509.notAfter,
      };
    }
    const published = new Map<string, JwtSlot>();
    for (const row of rows.filter((r) => r.kind === 'jwt' && r.status !== 'preparing')) {
      const existing = this.jwtPublished.get(row.kid!);
      const slot = existing ?? (await this.jwtSlot(row));
      published.set(row.kid!, { ...slot, row });
      if (row.status === 'active') this.jwtActive = published.get(row.kid!);
    }
    this.jwtPublished = published;
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

  /** Publishes the bundle; raises spiffe_sequence only when the content changed. */
  private async publishBundle(): Promise<void> {
    const jwtKeys = new Map<string, JWK>();
    for (const [kid, slot] of [...this.jwtPublished].sort(([a], [b]) => a.localeCompare(b))) {
      jwtKeys.set(kid, createPublicKey({ key: Buffer.from(slot.key.publicKeySpki), format: 'der', type: 'spki' }).export({ format: 'jwk' }) as JWK);
    }
    const stored = await this.ds.getBundle(this.trustDomain.name);
    const candidate = new SpiffeBundle(this.trustDomain, {
      x509Authorities: this.root.anchors,
      jwtAuthorities: jwtKeys,
      refreshHint: this.opts.bundleRefreshHint,
    });
    const storedContent = stored ? SpiffeBundle.parse(this.trustDomain, stored.document) : undefined;
    if (storedContent && sameContent(storedContent, candidate)) {
      if (!this.bundleCache) this.bundleCache = storedContent;
      return;
    }
    const next = candidate;
    next.sequence = (stored?.sequence ?? 0) + 1;
    await this.ds.putBundle({
      trustDomain: this.trustDomain.name,
      document: next.marshal(),
      sequence: next.sequence!,
      refreshHint: this.opts.bundleRefreshHint,
      updatedAt: this.nowSeconds(),
    });
    this.bundleCache = next;
    this.log.info({ sequence: next.sequence, jwtKeys: jwtKeys.size, x509Authorities: this.root.anchors.length }, 'ca: published the bundle');
    this.emit('bundle', next);
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
    if (kind === 'jwt') return [...this.jwtPublished.values()].some((s) => s.row.status === 'prepared');
    return this.x509Prepared;
  }

  /** All journal rows, for status reporting. */
  async journal(): Promise<JournalEntry[]> {
    return this.ds.listJournal();
  }
}

/** Same authorities and refresh hint; the sequence is what changes when they do not. */
function sameContent(a: SpiffeBundle, b: SpiffeBundle): boolean {
  return a.x509.equals(b.x509) && a.jwt.equals(b.jwt) && a.refreshHint === b.refreshHint;
}

async function jwkThumbprint(spki: Uint8Array): Promise<string> {
  const jwk = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ format: 'jwk' }) as JWK;
  return calculateJwkThumbprint(jwk, 'sha256');
}
