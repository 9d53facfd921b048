import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PKCS11, Template } from 'pkcs11js';
import { AnchorageError, errorMessage, invalid } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import type { KeyHandle, KeyManager, KeyType } from './KeyManager.js';
import { CURVES, checkKeyId, checkKeyType, closedError, digestFor, keyTypeFromEcParams, spkiFromEcPoint } from './ec.js';

// pkcs11js is CommonJS and builds its exports with a spread, which Node's
// ESM loader cannot see through: the constants exist only on module.exports.
const P = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');

/** PKCS#11 object and slot handles are opaque byte strings in pkcs11js. */
type Handle = Buffer;

// ---------------------------------------------------------------------------
// Module registry
// ---------------------------------------------------------------------------

/**
 * A reference to a loaded and initialized PKCS#11 module, shared by every
 * user in the process. A module can be C_Initialize'd only once per process
 * (the second call gets CKR_CRYPTOKI_ALREADY_INITIALIZED) and C_Finalize ends
 * it for everyone, so managers, tests and benchmarks that want the same
 * module go through this registry instead of loading it themselves.
 */
export interface Pkcs11Module {
  /** The pkcs11js instance; valid until release(). */
  readonly lib: PKCS11;
  /** The path as given to acquirePkcs11Module. */
  readonly path: string;
  /** Drops this reference; the last one finalizes and unloads the module. */
  release(): void;
}

interface LoadedModule {
  lib: PKCS11;
  refs: number;
  /** False when something outside the registry initialized the library first; then it is not ours to finalize. */
  ownsInit: boolean;
}

const loaded = new Map<string, LoadedModule>();

/**
 * Loads (once per process) and initializes a PKCS#11 module, ref-counted.
 * Always initializes with CKF_OS_LOCKING_OK: without it, sessions used from
 * several libuv threads at once (C_SignAsync) spin forever in SoftHSM2.
 */
export function acquirePkcs11Module(path: string): Pkcs11Module {
  if (typeof path !== 'string' || path === '') throw invalid('pkcs11: module path is empty');
  let key = path;
  try {
    key = realpathSync(path);
  } catch {
    // Not a file: let load() report it, with the loader's own words.
  }
  let mod = loaded.get(key);
  if (!mod) {
    // A fresh instance every time: a failed load() leaves a pkcs11js object unusable.
    const lib = new P.PKCS11();
    try {
      lib.load(path);
    } catch (err) {
      const detail = errorMessage(err).replace(`${path}: `, '');
      throw new AnchorageError('failed_precondition', `pkcs11: cannot load module ${path}: ${detail}`, { cause: err });
    }
    let ownsInit = true;
    try {
      lib.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
    } catch (err) {
      if (ckr(err) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        ownsInit = false;
      } else {
        try {
          lib.close();
        } catch {
          // already failing; the initialize error is the one to report
        }
        throw new AnchorageError('unavailable', `pkcs11: cannot initialize module ${path}: ${ckr(err) ?? errorMessage(err)}`, {
          cause: err,
        });
      }
    }
    mod = { lib, refs: 0, ownsInit };
    loaded.set(key, mod);
  }
  mod.refs++;
  const entry = mod;
  let released = false;
  return {
    lib: entry.lib,
    path,
    release: () => {
      if (released) return;
      released = true;
      entry.refs--;
      if (entry.refs > 0) return;
      loaded.delete(key);
      try {
        if (entry.ownsInit) entry.lib.C_Finalize();
      } catch {
        // Finalize failing at shutdown changes nothing for the caller.
      }
      try {
        entry.lib.close();
      } catch {
        // as above
      }
    },
  };
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** The CKR_* name of a PKCS#11 error, or undefined for anything else. */
export function ckr(err: unknown): string | undefined {
  if (err instanceof Error && /^CKR_[A-Z0-9_]+$/.test(err.message)) return err.message;
  return undefined;
}

/** The session is gone or useless; a new one (and maybe a new login) fixes it. */
const SESSION_LOST = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_OPERATION_ACTIVE',
]);
/** The token was re-inserted or re-enumerated; the slot has to be found again by label. */
const SLOT_LOST = new Set(['CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT']);
/** Cached object handles no longer name the object; look it up again by label. */
const HANDLE_INVALID = new Set(['CKR_KEY_HANDLE_INVALID', 'CKR_OBJECT_HANDLE_INVALID']);
const UNAVAILABLE = new Set([
  ...SESSION_LOST,
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_HOST_MEMORY',
  'CKR_SESSION_COUNT',
  'CKR_FUNCTION_FAILED',
]);

function p11Error(what: string, err: unknown): AnchorageError {
  if (err instanceof AnchorageError) return err;
  const code = ckr(err);
  if (code === undefined) return new AnchorageError('internal', `pkcs11: ${what} failed: ${errorMessage(err)}`, { cause: err });
  const errCode = UNAVAILABLE.has(code) ? 'unavailable' : HANDLE_INVALID.has(code) ? 'not_found' : 'internal';
  return new AnchorageError(errCode, `pkcs11: ${what} failed: ${code}`, { cause: err });
}

function loginError(tokenLabel: string, err: unknown): AnchorageError {
  const prefix = `pkcs11: login to token "${tokenLabel}" failed`;
  switch (ckr(err)) {
    case 'CKR_PIN_INCORRECT':
      return new AnchorageError('permission_denied', `${prefix}: incorrect pin`, { cause: err });
    case 'CKR_PIN_LOCKED':
      return new AnchorageError('permission_denied', `${prefix}: the user pin is locked (the security officer must unlock it)`, { cause: err });
    case 'CKR_PIN_EXPIRED':
      return new AnchorageError('permission_denied', `${prefix}: the user pin has expired`, { cause: err });
    case 'CKR_PIN_LEN_RANGE':
    case 'CKR_PIN_INVALID':
      return new AnchorageError('permission_denied', `${prefix}: the pin has an invalid length or characters`, { cause: err });
    case 'CKR_USER_PIN_NOT_INITIALIZED':
      return new AnchorageError('failed_precondition', `${prefix}: the user pin is not initialized`, { cause: err });
    default:
      return p11Error(`login to token "${tokenLabel}"`, err);
  }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function trimLabel(label: string): string {
  return label.replace(/[\s\u0000]+$/, '').trim();
}

function findSlot(lib: PKCS11, tokenLabel: string): Handle {
  let slots: Handle[];
  try {
    slots = lib.C_GetSlotList(true);
  } catch (err) {
    throw p11Error('listing slots', err);
  }
  const labels: string[] = [];
  for (const slot of slots) {
    let info;
    try {
      info = lib.C_GetTokenInfo(slot);
    } catch {
      continue; // a slot that vanished between the two calls
    }
    if ((info.flags & P.CKF_TOKEN_INITIALIZED) === 0) continue;
    const label = trimLabel(info.label);
    if (label === tokenLabel) return slot;
    labels.push(label);
  }
  const have = labels.length === 0 ? 'no initialized tokens' : `tokens: ${labels.sort().map((l) => JSON.stringify(l)).join(', ')}`;
  throw new AnchorageError('not_found', `pkcs11: no token labelled "${tokenLabel}" (${have})`);
}

/** Stable CKA_ID bytes for an id, so other PKCS#11 tools can pair the two halves of a key the usual way. */
function ckaIdFor(id: string): Buffer {
  return createHash('sha256').update(id, 'utf8').digest().subarray(0, 20);
}

function attrUlong(v: Buffer | undefined): number {
  if (!v || v.length === 0) return -1;
  return v.length >= 8 ? Number(v.readBigUInt64LE(0)) : v.readUInt32LE(0);
}

// ---------------------------------------------------------------------------
// Manager
// ---------------------------------------------------------------------------

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

interface PoolSession {
  /** Open session, or null when it must be (re)opened before use. */
  handle: Handle | null;
  /** True once this slot has held a session: the next open is a reopen. */
  used: boolean;
}

interface KeyEntry {
  readonly id: string;
  readonly type: KeyType;
  readonly spki: Buffer;
  priv: Handle;
  pub: Handle;
  deleted: boolean;
  handle?: KeyHandle;
}

/** What #loadKey reads from the token about one key. */
interface FoundKey {
  type: KeyType;
  spki: Buffer;
  priv: Handle;
  pub: Handle;
}

/** CK_STATE of a read/write session whose token is logged in as the user (pkcs11js does not export CKS_*). */
const CKS_RW_USER_FUNCTIONS = 3;

const DEFAULT_SESSIONS = 4;
const MAX_SESSIONS = 64;

/**
 * Keys in an HSM reached through PKCS#11. Keys are generated in the token as
 * sensitive, never-extractable objects; signing hashes locally and has the
 * token sign the digest (CKM_ECDSA) on a pool of logged-in sessions, so up to
 * `sessions` signatures run in parallel on the libuv threadpool.
 */
export class Pkcs11KeyManager implements KeyManager {
  readonly kind = 'pkcs11' as const;
  /** Size of the session pool (a benchmark uses it to compare with raw signing). */
  readonly sessions: number;
  readonly tokenLabel: string;
  readonly module: string;

  readonly #mod: Pkcs11Module;
  readonly #lib: PKCS11;
  readonly #pin: string;
  readonly #logger: Logger;
  #slot: Handle;
  #slotStale = false;
  readonly #pool: PoolSession[];
  readonly #free: PoolSession[];
  readonly #waiters: Array<{ resolve: (s: PoolSession) => void; reject: (e: unknown) => void }> = [];
  #busy = 0;
  #onDrained: (() => void) | undefined;
  readonly #keys = new Map<string, KeyEntry>();
  /** Serializes generateKey/deleteKey so "is this label free?" and "create it" cannot interleave. */
  #mutex: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;
  #reopens = 0;

  private constructor(opts: Required<Omit<Pkcs11Options, 'logger'>> & { logger: Logger }, mod: Pkcs11Module, slot: Handle) {
    this.module = opts.module;
    this.tokenLabel = opts.tokenLabel;
    this.sessions = opts.sessions;
    this.#pin = opts.pin;
    this.#logger = opts.logger;
    this.#mod = mod;
    this.#lib = mod.lib;
    this.#slot = slot;
    this.#pool = Array.from({ length: opts.sessions }, () => ({ handle: null, used: false }));
    this.#free = [...this.#pool];
  }

  /**
   * Loads the module (shared per process), finds the token by label, logs in
   * and opens the session pool. Every failure names what to fix: the module
   * path, the labels that do exist, or the PIN.
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
      for (const ps of km.#pool) km.#ensureOpen(ps);
    } catch (err) {
      if (km) km.#closeSessions();
      mod.release();
      throw err instanceof AnchorageError ? err : p11Error(`opening token "${tokenLabel}"`, err);
    }
    logger.info({ module: opts.module, token: tokenLabel, sessions }, 'pkcs11: token opened');
    return km;
  }

  /** How many times a lost session was replaced; for metrics and tests. */
  get sessionReopens(): number {
    return this.#reopens;
  }

  async generateKey(id: string, type: KeyType): Promise<KeyHandle> {
    this.#checkOpen();
    checkKeyId(id);
    checkKeyType(type);
    return this.#serial(() =>
      this.#withSession(`generating key "${id}"`, undefined, async (s) => {
        const label = Buffer.from(id, 'utf8');
        // Any object with the label blocks it, not only a complete pair: a
        // second pair under one label would make every later lookup ambiguous.
        const taken = this.#findObjects(s, [{ type: P.CKA_LABEL, value: label }]);
        if (taken.length > 0) {
          const hasPrivate = this.#findObjects(s, [
            { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
            { type: P.CKA_LABEL, value: label },
          ]).length > 0;
          throw new AnchorageError(
            'already_exists',
            hasPrivate
              ? `pkcs11: key "${id}" already exists on token "${this.tokenLabel}"`
              : `pkcs11: label "${id}" is already used by ${taken.length} other object(s) on token "${this.tokenLabel}"`,
          );
        }
        const curve = CURVES[type];
        const ckaId = ckaIdFor(id);
        const publicTemplate: Template = [
          { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
          { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
          { type: P.CKA_TOKEN, value: true },
          { type: P.CKA_PRIVATE, value: false },
          { type: P.CKA_VERIFY, value: true },
          { type: P.CKA_EC_PARAMS, value: curve.oidDer },
          { type: P.CKA_LABEL, value: label },
          { type: P.CKA_ID, value: ckaId },
        ];
        const privateTemplate: Template = [
          { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
          { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
          { type: P.CKA_TOKEN, value: true },
          { type: P.CKA_PRIVATE, value: true },
          { type: P.CKA_SENSITIVE, value: true },
          { type: P.CKA_EXTRACTABLE, value: false },
          { type: P.CKA_SIGN, value: true },
          { type: P.CKA_DERIVE, value: false },
          { type: P.CKA_LABEL, value: label },
          { type: P.CKA_ID, value: ckaId },
        ];
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

  async getKey(id: string): Promise<KeyHandle | undefined> {
    this.#checkOpen();
    checkKeyId(id);
    return this.#withSession(`looking up key "${id}"`, undefined, async (s) => {
      const found = this.#loadKey(s, id);
      return found ? this.#remember(id, found).handle : this.#forget(id);
    });
  }

  async listKeys(): Promise<KeyHandle[]> {
    this.#checkOpen();
    return this.#withSession('listing keys', undefined, async (s) => {
      const privs = this.#findObjects(s, [
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
          const found = this.#loadKey(s, id);
          if (found) out.push(this.#remember(id, found).handle!);
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
        const label = Buffer.from(id, 'utf8');
        const objects = [
          ...this.#findObjects(s, [
            { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
            { type: P.CKA_LABEL, value: label },
          ]),
          ...this.#findObjects(s, [
            { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
            { type: P.CKA_LABEL, value: label },
          ]),
        ];
        for (const h of objects) {
          try {
            this.#lib.C_DestroyObject(s, h);
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
      for (const w of this.#waiters.splice(0)) w.reject(closedError('pkcs11'));
      if (this.#busy > 0) await new Promise<void>((resolve) => (this.#onDrained = resolve));
      this.#closeSessions();
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
    for (const ps of this.#pool) {
      if (!ps.handle) continue;
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
    this.#checkOpen();
    if (entry.deleted) throw new AnchorageError('not_found', `pkcs11: key "${entry.id}" was deleted`);
    const { size } = CURVES[entry.type];
    const digest = digestFor(entry.type, data);
    return this.#withSession(`signing with key "${entry.id}"`, entry, async (s) => {
      this.#lib.C_SignInit(s, { mechanism: P.CKM_ECDSA }, entry.priv);
      const sig = await this.#lib.C_SignAsync(s, digest, Buffer.alloc(2 * size));
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
      return cached;
    }
    if (cached) cached.deleted = true; // a different key now has this label
    const entry: KeyEntry = { id, ...found, deleted: false };
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

  /** Finds a key pair by label: exactly one EC private key and one public key. */
  #loadKey(s: Handle, id: string): FoundKey | undefined {
    const label = Buffer.from(id, 'utf8');
    const privs = this.#findObjects(s, [
      { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
      { type: P.CKA_LABEL, value: label },
    ]);
    if (privs.length === 0) return undefined;
    const fail = (why: string) => new AnchorageError('failed_precondition', `pkcs11: key "${id}" on token "${this.tokenLabel}" ${why}`);
    if (privs.length > 1) throw fail(`is ambiguous: ${privs.length} private keys have that label`);
    const priv = privs[0]!;
    const [keyType, privParams] = this.#lib.C_GetAttributeValue(s, priv, [{ type: P.CKA_KEY_TYPE }, { type: P.CKA_EC_PARAMS }]);
    if (attrUlong(keyType?.value) !== P.CKK_EC) throw fail('is not an ec key');
    const type = keyTypeFromEcParams(privParams!.value);
    if (!type) throw fail('is on a curve other than p-256 or p-384');
    const pubs = this.#findObjects(s, [
      { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
      { type: P.CKA_LABEL, value: label },
    ]);
    if (pubs.length !== 1) throw fail(pubs.length === 0 ? 'has no public key object' : `is ambiguous: ${pubs.length} public keys have that label`);
    const pub = pubs[0]!;
    const [pubParams, point] = this.#lib.C_GetAttributeValue(s, pub, [{ type: P.CKA_EC_PARAMS }, { type: P.CKA_EC_POINT }]);
    if (!pubParams!.value.equals(privParams!.value)) throw fail('has public and private halves on different curves');
    return { type, spki: spkiFromEcPoint(type, point!.value), priv, pub };
  }

  /** Runs a whole find (init, collect, final) synchronously, so nothing else can use the session's find state meanwhile. */
  #findObjects(s: Handle, template: Template): Handle[] {
    const out: Handle[] = [];
    this.#lib.C_FindObjectsInit(s, template);
    try {
      for (;;) {
        const batch = this.#lib.C_FindObjects(s, 32);
        if (batch.length === 0) break;
        out.push(...batch);
      }
    } finally {
      this.#lib.C_FindObjectsFinal(s);
    }
    return out;
  }

  // -- sessions -------------------------------------------------------------

  /**
   * Runs `op` on a session of the pool. A lost session (closed, logged out,
   * token re-inserted) is reopened and the op retried once; stale key
   * handles are looked up again by label and the op retried once.
   */
  async #withSession<T>(what: string, entry: KeyEntry | undefined, op: (s: Handle) => Promise<T>): Promise<T> {
    const ps = await this.#acquire();
    try {
      let sessionRetried = false;
      let handleRetried = false;
      for (;;) {
        let s: Handle;
        try {
          s = this.#ensureOpen(ps);
        } catch (err) {
          throw err instanceof AnchorageError ? err : p11Error(what, err);
        }
        try {
          return await op(s);
        } catch (err) {
          const code = ckr(err);
          if (code === undefined || this.#closed) throw p11Error(what, err);
          if (SESSION_LOST.has(code) && !sessionRetried) {
            sessionRetried = true;
            this.#discardSession(ps, code);
            continue;
          }
          if (entry && HANDLE_INVALID.has(code) && !handleRetried) {
            handleRetried = true;
            this.#refreshKey(s, entry);
            continue;
          }
          throw p11Error(what, err);
        }
      }
    } finally {
      this.#release(ps);
    }
  }

  #refreshKey(s: Handle, entry: KeyEntry): void {
    let found: FoundKey | undefined;
    try {
      found = this.#loadKey(s, entry.id);
    } catch (err) {
      throw p11Error(`looking up key "${entry.id}" again`, err);
    }
    if (!found || found.type !== entry.type || !found.spki.equals(entry.spki)) {
      entry.deleted = true;
      if (this.#keys.get(entry.id) === entry) this.#keys.delete(entry.id);
      throw new AnchorageError('not_found', `pkcs11: key "${entry.id}" is no longer on token "${this.tokenLabel}"`);
    }
    entry.priv = found.priv;
    entry.pub = found.pub;
  }

  #discardSession(ps: PoolSession, code: string): void {
    if (ps.handle) {
      try {
        this.#lib.C_CloseSession(ps.handle);
      } catch {
        // it is already dead; that is why we are here
      }
    }
    ps.handle = null;
    if (SLOT_LOST.has(code)) this.#slotStale = true;
    this.#logger.warn({ token: this.tokenLabel, code }, 'pkcs11: session lost; reopening');
  }

  /** Returns the slot's open session, opening it (and logging in) if needed. Synchronous on purpose: no other op can interleave. */
  #ensureOpen(ps: PoolSession): Handle {
    if (ps.handle) return ps.handle;
    if (this.#slotStale) {
      this.#slot = findSlot(this.#lib, this.tokenLabel);
      this.#slotStale = false;
    }
    let s: Handle;
    try {
      s = this.#lib.C_OpenSession(this.#slot, P.CKF_RW_SESSION | P.CKF_SERIAL_SESSION);
    } catch (err) {
      if (SLOT_LOST.has(ckr(err) ?? '')) this.#slotStale = true;
      throw p11Error(`opening a session on token "${this.tokenLabel}"`, err);
    }
    try {
      // Login is per application and token, not per session: only the first
      // session (or the first after the token logged us out) needs it.
      if (this.#lib.C_GetSessionInfo(s).state !== CKS_RW_USER_FUNCTIONS) {
        try {
          this.#lib.C_Login(s, P.CKU_USER, this.#pin);
        } catch (err) {
          if (ckr(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw loginError(this.tokenLabel, err);
        }
      }
    } catch (err) {
      try {
        this.#lib.C_CloseSession(s);
      } catch {
        // the login error is the one to report
      }
      throw err instanceof AnchorageError ? err : p11Error(`opening a session on token "${this.tokenLabel}"`, err);
    }
    if (ps.used) this.#reopens++;
    ps.used = true;
    ps.handle = s;
    return s;
  }

  #acquire(): Promise<PoolSession> {
    if (this.#closed) return Promise.reject(closedError('pkcs11'));
    const ps = this.#free.pop();
    if (ps) {
      this.#busy++;
      return Promise.resolve(ps);
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #release(ps: PoolSession): void {
    const next = this.#waiters.shift();
    if (next && !this.#closed) {
      next.resolve(ps); // handed over: still busy
      return;
    }
    this.#free.push(ps);
    this.#busy--;
    if (this.#busy === 0 && this.#onDrained) this.#onDrained();
  }

  #closeSessions(): void {
    for (const ps of this.#pool) {
      if (!ps.handle) continue;
      try {
        this.#lib.C_CloseSession(ps.handle);
      } catch {
        // closing anyway
      }
      ps.handle = null;
    }
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
