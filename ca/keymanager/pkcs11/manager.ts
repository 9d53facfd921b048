/**
 * Pkcs11KeyManager: the KeyManager over a PKCS#11 token. It owns the state
 * machine that ties the other files together: every operation runs on a
 * session of the pool (session-pool.ts) with the retry rules of errors.ts,
 * keys are found and made through objects.ts and cached by id, and an outage
 * (the token, not the request, at fault) switches the manager to failing
 * fast while a background recovery re-initializes the module (module.ts),
 * logs in again and finds every cached key again.
 */
import type { PKCS11 } from 'pkcs11js';
import { AnchorageError, errorMessage, invalid, isAnchorageError } from '@anchorage/client/errors';
import { silentLogger, type Logger } from '../../../common/log.js';
import type { KeyHandle, KeyManager, KeyProtection, KeyType } from '../KeyManager.js';
import { CURVES, checkKeyId, checkKeyType, closedError, digestFor, spkiFromEcPoint } from '../ec.js';
import { ckr, HANDLE_INVALID, isTokenGone, p11Error, SESSION_LOST, TOKEN_TROUBLE } from './errors.js';
import { acquirePkcs11Module, P, type Handle, type Pkcs11Module } from './module.js';
import { generationTemplates, KeyObjects, type FoundKey } from './objects.js';
import { findSlot, SessionPool } from './session-pool.js';

/** Options for {@link Pkcs11KeyManager.open}. */
export interface Pkcs11Options {
  /** Path of the PKCS#11 module (.so). */
  module: string;
  /** CKA_LABEL of the token (trailing blanks ignored). */
  tokenLabel: string;
  /** User PIN. Kept only in memory, for re-login after a lost session; never logged. */
  pin: string;
  /** Size of the session pool: the number of signatures the token works on at once. Default 4. */
  sessions?: number;
  logger?: Logger;
}

interface KeyEntry {
  readonly id: string;
  readonly type: KeyType;
  readonly spki: Buffer;
  priv: Handle;
  pub: Handle;
  /** Module generation of priv/pub; after a re-initialize they are looked up again by label. */
  gen: number;
  deleted: boolean;
  handle?: KeyHandle;
}

const DEFAULT_SESSIONS = 4;
const MAX_SESSIONS = 64;

/**
 * Recovery backoff after a token outage: the first retry comes quickly (most
 * outages are a session or a reconnect), then doubles up to the cap, so a
 * token that comes back is in use again within RECOVERY_MAX_MS.
 */
const RECOVERY_FIRST_MS = 100;
const RECOVERY_MAX_MS = 2000;
/** While operations are still in flight, a re-initialize waits this long and looks again. */
const RECOVERY_DRAIN_MS = 20;

/**
 * Keys in an HSM reached through PKCS#11. Keys are generated in the token as
 * sensitive, never-extractable objects; signing hashes locally and has the
 * token sign the digest (CKM_ECDSA) on a pool of logged-in sessions, so up to
 * `sessions` signatures run in parallel on the libuv threadpool.
 *
 * Key generation is atomic from the caller's point of view: CKA_LABEL and
 * CKA_ID are in both generation templates, and what a crash in the middle
 * leaves (an unfinished object, an unlabelled half, one half without the
 * other) is recognized and cleaned up: unfinished unlabelled objects when the
 * manager opens, the rest when the id is looked up or generated again.
 *
 * Token outages are recovered from without a restart: when an operation
 * fails in a way that says the token, not the request, is at fault (see
 * TOKEN_TROUBLE), the manager marks the token unavailable, fails every
 * request fast with `unavailable`, and in the background drops its sessions,
 * re-initializes the module if the token does not answer, logs in again and
 * finds its keys again by label, with backoff. It logs each state change once.
 */
export class Pkcs11KeyManager implements KeyManager {
  readonly kind = 'pkcs11' as const;
  /** Size of the session pool (a benchmark uses it to compare with raw signing). */
  readonly sessions: number;
  readonly tokenLabel: string;
  readonly module: string;

  readonly #mod: Pkcs11Module;
  readonly #lib: PKCS11;
  readonly #logger: Logger;
  readonly #pool: SessionPool;
  readonly #objects: KeyObjects;
  readonly #keys = new Map<string, KeyEntry>();
  /** Serializes generateKey/deleteKey so "is this label free?" and "create it" cannot interleave. */
  #mutex: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Set while the token is unavailable: why, for the fail-fast error. */
  #down: string | undefined;
  #recoverTimer: NodeJS.Timeout | undefined;
  #recoverDelay = RECOVERY_FIRST_MS;
  #recoveries = 0;
  /** Set when recovery stopped for good (the token refused the PIN). */
  #gaveUp = false;
  /** Told the duration of every signature (ca/metrics.ts). */
  #signObserver: ((seconds: number, error?: unknown) => void) | undefined;

  private constructor(opts: Required<Omit<Pkcs11Options, 'logger'>> & { logger: Logger }, mod: Pkcs11Module, slot: Handle) {
    this.module = opts.module;
    this.tokenLabel = opts.tokenLabel;
    this.sessions = opts.sessions;
    this.#logger = opts.logger;
    this.#mod = mod;
    this.#lib = mod.lib;
    this.#pool = new SessionPool(mod, slot, opts.sessions, opts.tokenLabel, opts.pin, opts.logger);
    this.#objects = new KeyObjects(mod.lib, opts.tokenLabel, opts.logger);
  }

  /**
   * Loads the module (shared per process), finds the token by label, logs in
   * and opens the session pool. Every failure names what to fix: the module
   * path, the labels that do exist, or the PIN. Then removes unfinished,
   * unlabelled key objects that an interrupted key generation left behind.
   */
  static async open(opts: Pkcs11Options): Promise<Pkcs11KeyManager> {
    const sessions = opts.sessions ?? DEFAULT_SESSIONS;
    if (!Number.isInteger(sessions) || sessions < 1 || sessions > MAX_SESSIONS) {
      throw invalid(`pkcs11: sessions must be an integer from 1 to ${MAX_SESSIONS}`);
    }
    if (typeof opts.tokenLabel !== 'string' || opts.tokenLabel.trim() === '') throw invalid('pkcs11: token label is empty');
    if (typeof opts.pin !== 'string' || opts.pin === '') throw invalid('pkcs11: pin is empty');
    const logger = opts.logger ?? silentLogger();
    const tokenLabel = opts.tokenLabel.trim();
    const mod = acquirePkcs11Module(opts.module);
    let km: Pkcs11KeyManager | undefined;
    try {
      const slot = findSlot(mod.lib, tokenLabel);
      const info = mod.lib.C_GetTokenInfo(slot);
      if ((info.flags & P.CKF_USER_PIN_LOCKED) !== 0) {
        throw new AnchorageError('permission_denied', `pkcs11: login to token "${tokenLabel}" failed: the user pin is locked (the security officer must unlock it)`);
      }
      if ((info.flags & P.CKF_USER_PIN_INITIALIZED) === 0) {
        throw new AnchorageError('failed_precondition', `pkcs11: token "${tokenLabel}" has no user pin; initialize it first`);
      }
      const mechs = new Set(mod.lib.C_GetMechanismList(slot));
      for (const [m, name] of [
        [P.CKM_ECDSA, 'CKM_ECDSA'],
        [P.CKM_EC_KEY_PAIR_GEN, 'CKM_EC_KEY_PAIR_GEN'],
      ] as const) {
        if (!mechs.has(m)) throw new AnchorageError('failed_precondition', `pkcs11: token "${tokenLabel}" does not support ${name}`);
      }
      km = new Pkcs11KeyManager({ module: opts.module, tokenLabel, pin: opts.pin, sessions, logger }, mod, slot);
      // Opening every session now, not lazily, makes a wrong PIN or a full
      // token fail at startup instead of on the first signature.
      for (const ps of km.#pool.sessions) km.#pool.ensureOpen(ps);
      km.#objects.sweepRemnants(km.#pool.sessions[0]!.handle!);
    } catch (err) {
      if (km) km.#pool.closeAll();
      mod.release();
      throw err instanceof AnchorageError ? err : p11Error(`opening token "${tokenLabel}"`, err);
    }
    logger.info({ module: opts.module, token: tokenLabel, sessions }, 'pkcs11: token opened');
    return km;
  }

  /** How many times a lost session was replaced; for metrics and tests. */
  get sessionReopens(): number {
    return this.#pool.reopens;
  }

  /** How many times the manager recovered from a token outage; for metrics and tests. */
  get recoveries(): number {
    return this.#recoveries;
  }

  /** The session pool now: its size, sessions handed out, callers waiting for one (for metrics). */
  get poolState(): { size: number; inUse: number; waiters: number } {
    return { size: this.sessions, inUse: this.#pool.busy, waiters: this.#pool.waiting };
  }

  /**
   * Calls `observer` after every signature with its duration, waiting for a
   * session included, and its error if it failed; undefined stops it.
   */
  onSign(observer: ((seconds: number, error?: unknown) => void) | undefined): void {
    this.#signObserver = observer;
  }

  /** The observer set by {@link onSign}. */
  get signObserver(): ((seconds: number, error?: unknown) => void) | undefined {
    return this.#signObserver;
  }

  /** Why the token is unavailable now, or undefined when it is in use. */
  get unavailableReason(): string | undefined {
    return this.#down;
  }

  /**
   * Generates the key pair with label and CKA_ID in both templates, so the
   * token never holds a labelled half of it. Remains of an interrupted
   * generation under this id (one half alone, unfinished objects) are
   * destroyed first: no certificate can name them, since callers generate
   * only for ids that no record trusts yet (the CA journal's `preparing`).
   */
  async generateKey(id: string, type: KeyType): Promise<KeyHandle> {
    this.#checkOpen();
    checkKeyId(id);
    checkKeyType(type);
    return this.#serial(() =>
      this.#withSession(`generating key "${id}"`, undefined, async (s) => {
        const found = this.#objects.inspect(s, id);
        if (found.others > 0) {
          // A certificate or data object under the label is someone else's.
          throw new AnchorageError(
            'already_exists',
            `pkcs11: label "${id}" is already used by ${found.others} other object(s) on token "${this.tokenLabel}"`,
          );
        }
        if (found.privs.length > 0 && found.pubs.length > 0) {
          throw new AnchorageError('already_exists', `pkcs11: key "${id}" already exists on token "${this.tokenLabel}"`);
        }
        const leftovers = [...found.privs, ...found.pubs, ...found.remnants];
        if (leftovers.length > 0) this.#objects.destroy(s, id, leftovers, 'the remains of an interrupted key generation');
        const { publicTemplate, privateTemplate } = generationTemplates(id, type);
        const pair = await this.#lib.C_GenerateKeyPairAsync(s, { mechanism: P.CKM_EC_KEY_PAIR_GEN }, publicTemplate, privateTemplate);
        let spki: Buffer;
        try {
          const [point] = this.#lib.C_GetAttributeValue(s, pair.publicKey, [{ type: P.CKA_EC_POINT }]);
          spki = spkiFromEcPoint(type, point!.value);
        } catch (err) {
          // A half-usable key would block the id forever; take it back out.
          for (const h of [pair.privateKey, pair.publicKey]) {
            try {
              this.#lib.C_DestroyObject(s, h);
            } catch {
              // best effort
            }
          }
          throw err;
        }
        this.#logger.info({ id, type, token: this.tokenLabel }, 'pkcs11: generated key in token');
        return this.#remember(id, { type, spki, priv: pair.privateKey, pub: pair.publicKey }).handle!;
      }),
    );
  }

  /**
   * Finds a key pair by id. Only a whole pair counts: one half alone, or
   * unfinished objects, are what an interrupted generation left, and give
   * undefined (generateKey then replaces them). Two private or two public
   * keys under one id fail with failed_precondition: which one a certificate
   * names is for the operator to decide.
   */
  async getKey(id: string): Promise<KeyHandle | undefined> {
    this.#checkOpen();
    checkKeyId(id);
    const found = await this.#withSession(`looking up key "${id}"`, undefined, async (s) => this.#objects.loadKey(s, id));
    if (found === 'repair') {
      // Repairs write to the token: serialized with generateKey/deleteKey,
      // so a generation in flight is never mistaken for its own remains.
      return this.#serial(() =>
        this.#withSession(`looking up key "${id}"`, undefined, async (s) => {
          const again = this.#objects.loadKey(s, id, true);
          return again && again !== 'repair' ? this.#remember(id, again).handle : this.#forget(id);
        }),
      );
    }
    return found ? this.#remember(id, found).handle : this.#forget(id);
  }

  async keyProtection(id: string): Promise<KeyProtection | undefined> {
    this.#checkOpen();
    checkKeyId(id);
    return this.#withSession(`reading the attributes of key "${id}"`, undefined, async (s) => this.#objects.protection(s, id));
  }

  async listKeys(): Promise<KeyHandle[]> {
    this.#checkOpen();
    return this.#withSession('listing keys', undefined, async (s) => {
      const privs = this.#objects.findObjects(s, [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
      ]);
      const ids = new Set<string>();
      for (const h of privs) {
        const [label] = this.#lib.C_GetAttributeValue(s, h, [{ type: P.CKA_LABEL }]);
        const id = label?.value.toString('utf8') ?? '';
        if (id !== '') ids.add(id);
      }
      const out: KeyHandle[] = [];
      for (const id of [...ids].sort()) {
        try {
          const found = this.#objects.loadKey(s, id);
          if (found && found !== 'repair') out.push(this.#remember(id, found).handle!);
        } catch (err) {
          // Keys this manager did not make (other curves, no public half) are
          // not ours to list; say so once instead of failing the whole list.
          this.#logger.debug({ id, err: errorMessage(err) }, 'pkcs11: skipping unusable key');
        }
      }
      return out;
    });
  }

  async deleteKey(id: string): Promise<void> {
    this.#checkOpen();
    checkKeyId(id);
    await this.#serial(() =>
      this.#withSession(`deleting key "${id}"`, undefined, async (s) => {
        const found = this.#objects.inspect(s, id);
        const objects = [...found.privs, ...found.pubs, ...found.remnants];
        for (const o of objects) {
          try {
            this.#lib.C_DestroyObject(s, o.h);
          } catch (err) {
            if (!HANDLE_INVALID.has(ckr(err) ?? '')) throw err;
          }
        }
        this.#forget(id);
        if (objects.length > 0) this.#logger.info({ id, token: this.tokenLabel }, 'pkcs11: destroyed key in token');
      }),
    );
  }

  /**
   * Waits for signatures in flight, closes the pool's sessions and drops
   * this manager's reference to the module. It does not C_Logout: login
   * state belongs to the whole process, and another manager may share it.
   */
  async close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      if (this.#recoverTimer) clearTimeout(this.#recoverTimer);
      this.#pool.shutDown();
      if (this.#pool.busy > 0) await this.#pool.drained();
      this.#pool.closeAll();
      for (const e of this.#keys.values()) e.deleted = true;
      this.#keys.clear();
      this.#mod.release();
      this.#logger.info({ token: this.tokenLabel }, 'pkcs11: token closed');
    })();
    return this.#closing;
  }

  /**
   * Test hook: closes the pool's sessions behind the manager's back, as a
   * token reset or a reconnecting network HSM would. Call it while no
   * operation is in flight. The manager notices on next use and reopens.
   */
  _dropSessionsForTest(): void {
    for (const ps of this.#pool.sessions) {
      if (!ps.handle || ps.gen !== this.#mod.generation) continue;
      try {
        this.#lib.C_CloseSession(ps.handle);
      } catch {
        // already gone is what we wanted
      }
    }
  }

  // -- signing --------------------------------------------------------------

  #handleFor(entry: KeyEntry): KeyHandle {
    return {
      id: entry.id,
      type: entry.type,
      publicKeySpki: new Uint8Array(entry.spki),
      sign: (data: Uint8Array) => this.#sign(entry, data),
    };
  }

  async #sign(entry: KeyEntry, data: Uint8Array): Promise<Uint8Array> {
    const observer = this.#signObserver;
    if (observer === undefined) return this.#signNow(entry, data);
    const t0 = performance.now();
    try {
      const sig = await this.#signNow(entry, data);
      observer((performance.now() - t0) / 1000);
      return sig;
    } catch (err) {
      observer((performance.now() - t0) / 1000, err);
      throw err;
    }
  }

  async #signNow(entry: KeyEntry, data: Uint8Array): Promise<Uint8Array> {
    this.#checkOpen();
    if (entry.deleted) throw new AnchorageError('not_found', `pkcs11: key "${entry.id}" was deleted`);
    const { size } = CURVES[entry.type];
    const digest = digestFor(entry.type, data);
    return this.#withSession(`signing with key "${entry.id}"`, entry, async (s) => {
      // Object handles die with a re-initialized module: find the key again.
      // An integer compare, no PKCS#11 call, on the hot path.
      if (entry.gen !== this.#mod.generation && !this.#refreshKey(s, entry)) throw this.#keyVanished(entry, 'CKR_OBJECT_HANDLE_INVALID');
      // C_SignInit and C_Sign together, off the event loop (native-sign.ts).
      const sig = await this.#mod.sign(s, entry.priv, P.CKM_ECDSA, digest);
      if (sig.length !== 2 * size) {
        throw new AnchorageError('internal', `pkcs11: token returned a ${sig.length}-byte ecdsa signature, expected ${2 * size}`);
      }
      return new Uint8Array(sig);
    });
  }

  // -- keys -----------------------------------------------------------------

  #remember(id: string, found: FoundKey): KeyEntry {
    const cached = this.#keys.get(id);
    if (cached && !cached.deleted && cached.type === found.type && cached.spki.equals(found.spki)) {
      cached.priv = found.priv;
      cached.pub = found.pub;
      cached.gen = this.#mod.generation;
      return cached;
    }
    if (cached) cached.deleted = true; // a different key now has this label
    const entry: KeyEntry = { id, ...found, gen: this.#mod.generation, deleted: false };
    entry.handle = this.#handleFor(entry);
    this.#keys.set(id, entry);
    return entry;
  }

  #forget(id: string): undefined {
    const cached = this.#keys.get(id);
    if (cached) cached.deleted = true;
    this.#keys.delete(id);
    return undefined;
  }

  // -- sessions -------------------------------------------------------------

  /**
   * Runs `op` on a session of the pool. A lost session (closed, logged out,
   * token re-inserted) is reopened and the op retried once; stale key
   * handles are looked up again by label and the op retried once. Anything
   * beyond that which says the token is in trouble marks it unavailable and
   * starts the background recovery; while it is unavailable every op fails
   * fast with `unavailable`, without touching the token.
   */
  async #withSession<T>(what: string, entry: KeyEntry | undefined, op: (s: Handle) => Promise<T>): Promise<T> {
    if (this.#down !== undefined) throw this.#unavailable();
    const ps = await this.#pool.acquire();
    this.#mod.enter();
    try {
      let sessionRetried = false;
      let handleRetried = false;
      for (;;) {
        if (this.#down !== undefined) throw this.#unavailable();
        let s: Handle;
        try {
          s = this.#pool.ensureOpen(ps);
        } catch (err) {
          const code = ckr(err instanceof AnchorageError ? err.cause : err);
          if (!this.#closed && ((code !== undefined && TOKEN_TROUBLE.has(code)) || isTokenGone(err))) {
            throw this.#goDown(`${what} failed: ${code ?? errorMessage(err)}`);
          }
          throw err instanceof AnchorageError ? err : p11Error(what, err);
        }
        try {
          return await op(s);
        } catch (err) {
          if (err instanceof AnchorageError) throw err;
          const code = ckr(err);
          if (code === undefined || this.#closed) throw p11Error(what, err);
          if (SESSION_LOST.has(code) && !sessionRetried) {
            sessionRetried = true;
            this.#pool.discard(ps, code);
            continue;
          }
          if (entry && HANDLE_INVALID.has(code) && !handleRetried) {
            handleRetried = true;
            if (this.#refreshKey(s, entry)) continue;
            throw this.#keyVanished(entry, code);
          }
          if (TOKEN_TROUBLE.has(code)) throw this.#goDown(`${what} failed: ${code}`);
          throw p11Error(what, err);
        }
      }
    } finally {
      this.#mod.leave();
      this.#pool.release(ps);
    }
  }

  /**
   * Looks a cached key up again by label after its handle went stale. True
   * if found (handles updated); throws not_found if another key took the
   * label; false if nothing has the label, which #keyVanished sorts out.
   */
  #refreshKey(s: Handle, entry: KeyEntry): boolean {
    let found: FoundKey | 'repair' | undefined;
    try {
      found = this.#objects.loadKey(s, entry.id);
    } catch (err) {
      throw p11Error(`looking up key "${entry.id}" again`, err);
    }
    if (found === 'repair') found = undefined;
    if (!found) return false;
    if (found.type !== entry.type || !found.spki.equals(entry.spki)) {
      this.#markDeleted(entry);
      throw new AnchorageError('not_found', `pkcs11: key "${entry.id}" is no longer on token "${this.tokenLabel}"`);
    }
    entry.priv = found.priv;
    entry.pub = found.pub;
    entry.gen = this.#mod.generation;
    return true;
  }

  /**
   * A cached key is not on the token any more. Either it was deleted, or the
   * token is in trouble and shows nothing (SoftHSM2 whose token directory
   * went away answers finds with nothing and C_GetTokenInfo with
   * CKR_GENERAL_ERROR, and stays so until re-initialized). The token's own
   * answer tells which; only a healthy token gets to say "deleted".
   */
  #keyVanished(entry: KeyEntry, code: string): AnchorageError {
    try {
      this.#lib.C_GetTokenInfo(this.#pool.slot);
    } catch (err) {
      return this.#goDown(`key "${entry.id}" cannot be found (${code}) and the token answers ${ckr(err) ?? errorMessage(err)}`);
    }
    this.#markDeleted(entry);
    return new AnchorageError('not_found', `pkcs11: key "${entry.id}" is no longer on token "${this.tokenLabel}"`);
  }

  #markDeleted(entry: KeyEntry): void {
    entry.deleted = true;
    if (this.#keys.get(entry.id) === entry) this.#keys.delete(entry.id);
  }

  #unavailable(): AnchorageError {
    const next = this.#gaveUp ? 'not retrying (fix the pin and restart)' : 'retrying';
    return new AnchorageError('unavailable', `pkcs11: token "${this.tokenLabel}" is unavailable: ${this.#down}; ${next}`);
  }

  /** Marks the token unavailable (logging only the transition) and schedules recovery. */
  #goDown(reason: string): AnchorageError {
    if (this.#down === undefined) {
      this.#down = reason;
      this.#recoverDelay = RECOVERY_FIRST_MS;
      this.#logger.warn({ token: this.tokenLabel, reason }, `pkcs11: token "${this.tokenLabel}" is unavailable: ${reason}; retrying`);
      this.#scheduleRecovery(0);
    }
    return this.#unavailable();
  }

  #scheduleRecovery(delay: number): void {
    if (this.#closed || this.#recoverTimer) return;
    this.#recoverTimer = setTimeout(() => {
      this.#recoverTimer = undefined;
      this.#recover();
    }, delay);
    this.#recoverTimer.unref();
  }

  /**
   * One recovery attempt: new sessions, a new login, every cached key found
   * again by label; and when the token does not answer, a re-initialized
   * module first. Runs only when nothing is in flight on the module, since
   * C_Finalize under a running C_Sign is undefined behaviour.
   */
  #recover(): void {
    if (this.#closed || this.#down === undefined) return;
    if (this.#pool.busy > 0 || this.#mod.busy > 0) {
      this.#scheduleRecovery(RECOVERY_DRAIN_MS);
      return;
    }
    this.#pool.closeAll();
    try {
      let healthy = this.#mod.initialized;
      if (healthy) {
        try {
          this.#lib.C_GetTokenInfo(this.#pool.slot);
        } catch {
          healthy = false;
        }
      }
      if (!healthy) this.#mod.reinitialize();
      this.#pool.slot = findSlot(this.#lib, this.tokenLabel);
      this.#pool.slotStale = false;
      for (const ps of this.#pool.sessions) this.#pool.ensureOpen(ps);
      const s = this.#pool.sessions[0]!.handle!;
      for (const entry of [...this.#keys.values()]) {
        if (!this.#refreshKey(s, entry)) {
          this.#markDeleted(entry);
          this.#logger.warn({ id: entry.id, token: this.tokenLabel }, 'pkcs11: key is no longer on the token after recovery');
        }
      }
    } catch (err) {
      this.#pool.closeAll();
      const detail = err instanceof AnchorageError ? err.message.replace(/^pkcs11: /, '') : (ckr(err) ?? errorMessage(err));
      this.#logger.debug({ token: this.tokenLabel, err: detail, retryMs: this.#recoverDelay }, 'pkcs11: token still unavailable');
      this.#down = `${detail}`;
      if (isAnchorageError(err, 'permission_denied')) {
        // A wrong or locked PIN does not heal, and every retry would count
        // towards locking it: stop, and say so.
        this.#gaveUp = true;
        this.#logger.error({ token: this.tokenLabel, err: detail }, `pkcs11: token "${this.tokenLabel}" refused the login; not retrying (fix the pin and restart)`);
        return;
      }
      const delay = this.#recoverDelay;
      this.#recoverDelay = Math.min(this.#recoverDelay * 2, RECOVERY_MAX_MS);
      this.#scheduleRecovery(delay);
      return;
    }
    this.#down = undefined;
    this.#recoveries++;
    this.#logger.info({ token: this.tokenLabel }, `pkcs11: token "${this.tokenLabel}" is available again`);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#mutex.then(fn, fn);
    this.#mutex = run.catch(() => undefined);
    return run;
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError('pkcs11');
  }
}
