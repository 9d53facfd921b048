import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PKCS11, Template } from 'pkcs11js';
import { AnchorageError, errorMessage, invalid, isAnchorageError } from '../../../common/errors.js';
import { silentLogger, type Logger } from '../../../common/log.js';
import type { KeyHandle, KeyManager, KeyType } from '../KeyManager.js';
import { CURVES, checkKeyId, checkKeyType, closedError, digestFor, keyTypeFromEcParams, spkiFromEcPoint } from '../ec.js';

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
  /**
   * Bumped by every C_Finalize/C_Initialize of {@link reinitialize}. Session
   * and object handles from an older generation name nothing (or, worse,
   * something else once numbers are reused), so holders compare it before use.
   */
  readonly generation: number;
  /** Whether the module is initialized now (a failed re-initialize leaves it not). */
  readonly initialized: boolean;
  /** Operations in flight on this module, across every user; a re-initialize waits for zero. */
  readonly busy: number;
  /** Marks an operation in flight (C_SignAsync runs on another thread); pair with leave(). */
  enter(): void;
  leave(): void;
  /**
   * C_Finalize (if initialized) then C_Initialize with CKF_OS_LOCKING_OK:
   * the only way to make SoftHSM2 (and many HSM clients) see a token that
   * came back. Callers must make sure nothing is in flight (busy === 0).
   * Throws `unavailable` if C_Initialize fails; the module then stays
   * uninitialized and a later call tries again.
   */
  reinitialize(): void;
  /** Drops this reference; the last one finalizes and unloads the module. */
  release(): void;
}

interface LoadedModule {
  lib: PKCS11;
  refs: number;
  /** False when something outside the registry initialized the library first; then it is not ours to finalize. */
  ownsInit: boolean;
  initialized: boolean;
  generation: number;
  busy: number;
}

const loaded = new Map<string, LoadedModule>();

function initializeModule(lib: PKCS11, path: string): 'ours' | 'theirs' {
  try {
    lib.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
    return 'ours';
  } catch (err) {
    if (ckr(err) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') return 'theirs';
    throw new AnchorageError('unavailable', `pkcs11: cannot initialize module ${path}: ${ckr(err) ?? errorMessage(err)}`, {
      cause: err,
    });
  }
}

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
    let ownsInit: boolean;
    try {
      ownsInit = initializeModule(lib, path) === 'ours';
    } catch (err) {
      try {
        lib.close();
      } catch {
        // already failing; the initialize error is the one to report
      }
      throw err;
    }
    mod = { lib, refs: 0, ownsInit, initialized: true, generation: 0, busy: 0 };
    loaded.set(key, mod);
  } else if (!mod.initialized) {
    // A re-initialize failed earlier (token outage); this user tries again.
    initializeModule(mod.lib, path);
    mod.initialized = true;
    mod.ownsInit = true;
    mod.generation++;
  }
  mod.refs++;
  const entry = mod;
  let released = false;
  return {
    lib: entry.lib,
    path,
    get generation() {
      return entry.generation;
    },
    get initialized() {
      return entry.initialized;
    },
    get busy() {
      return entry.busy;
    },
    enter: () => {
      entry.busy++;
    },
    leave: () => {
      entry.busy--;
    },
    reinitialize: () => {
      if (entry.initialized) {
        try {
          entry.lib.C_Finalize();
        } catch {
          // A module that cannot finalize is re-initialized all the same.
        }
      }
      entry.initialized = false;
      entry.generation++;
      initializeModule(entry.lib, path);
      entry.initialized = true;
      entry.ownsInit = true;
    },
    release: () => {
      if (released) return;
      released = true;
      entry.refs--;
      if (entry.refs > 0) return;
      loaded.delete(key);
      try {
        if (entry.ownsInit && entry.initialized) entry.lib.C_Finalize();
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
  'CKR_GENERAL_ERROR',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_HOST_MEMORY',
  'CKR_SESSION_COUNT',
  'CKR_FUNCTION_FAILED',
]);

/**
 * The token or the module is in trouble, not the request: the fix is new
 * sessions, a new login, handles found again and maybe a re-initialized
 * module, which the manager does on its own (see Pkcs11KeyManager, recovery).
 */
const TOKEN_TROUBLE = new Set([
  ...SESSION_LOST,
  'CKR_DEVICE_ERROR',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_DEVICE_MEMORY',
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
  /** Module generation the handle belongs to; a handle of an older one is dropped, never closed. */
  gen: number;
  /** True once this slot has held a session: the next open is a reopen. */
  used: boolean;
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

/** What #loadKey reads from the token about one key. */
interface FoundKey {
  type: KeyType;
  spki: Buffer;
  priv: Handle;
  pub: Handle;
}

/** One key object found for an id, as #inspect sees it. */
interface KeyObject {
  h: Handle;
  cls: 'private' | 'public';
  /** Empty label, found through the CKA_ID derived from the id. */
  unlabelled: boolean;
  /**
   * False for an object SoftHSM2 (and others) create before they write the
   * template and the key: no curve (private) or no point (public). Such an
   * object holds no key and can never be used; it is what a SIGKILL in the
   * middle of C_GenerateKeyPair leaves behind.
   */
  finished: boolean;
  params: Buffer;
  point?: Buffer;
}

/** Everything on the token that belongs to one id. */
interface Inspection {
  privs: KeyObject[];
  pubs: KeyObject[];
  /** Unfinished key objects: never usable, always safe to destroy. */
  remnants: KeyObject[];
  /** Objects of other classes (certificates, data) that carry the label. */
  others: number;
}

/** CK_STATE of a read/write session whose token is logged in as the user (pkcs11js does not export CKS_*). */
const CKS_RW_USER_FUNCTIONS = 3;

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
  /** Set while the token is unavailable: why, for the fail-fast error. */
  #down: string | undefined;
  #recoverTimer: NodeJS.Timeout | undefined;
  #recoverDelay = RECOVERY_FIRST_MS;
  #recoveries = 0;
  /** Set when recovery stopped for good (the token refused the PIN). */
  #gaveUp = false;

  private constructor(opts: Required<Omit<Pkcs11Options, 'logger'>> & { logger: Logger }, mod: Pkcs11Module, slot: Handle) {
    this.module = opts.module;
    this.tokenLabel = opts.tokenLabel;
    this.sessions = opts.sessions;
    this.#pin = opts.pin;
    this.#logger = opts.logger;
    this.#mod = mod;
    this.#lib = mod.lib;
    this.#slot = slot;
    this.#pool = Array.from({ length: opts.sessions }, () => ({ handle: null, gen: mod.generation, used: false }));
    this.#free = [...this.#pool];
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
      for (const ps of km.#pool) km.#ensureOpen(ps);
      km.#sweepRemnants(km.#pool[0]!.handle!);
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

  /** How many times the manager recovered from a token outage; for metrics and tests. */
  get recoveries(): number {
    return this.#recoveries;
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
        const label = Buffer.from(id, 'utf8');
        const found = this.#inspect(s, id);
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
        if (leftovers.length > 0) this.#destroy(s, id, leftovers, 'the remains of an interrupted key generation');
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
    const found = await this.#withSession(`looking up key "${id}"`, undefined, async (s) => this.#loadKey(s, id));
    if (found === 'repair') {
      // Repairs write to the token: serialized with generateKey/deleteKey,
      // so a generation in flight is never mistaken for its own remains.
      return this.#serial(() =>
        this.#withSession(`looking up key "${id}"`, undefined, async (s) => {
          const again = this.#loadKey(s, id, true);
          return again && again !== 'repair' ? this.#remember(id, again).handle : this.#forget(id);
        }),
      );
    }
    return found ? this.#remember(id, found).handle : this.#forget(id);
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
        const found = this.#inspect(s, id);
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
    this.#checkOpen();
    if (entry.deleted) throw new AnchorageError('not_found', `pkcs11: key "${entry.id}" was deleted`);
    const { size } = CURVES[entry.type];
    const digest = digestFor(entry.type, data);
    return this.#withSession(`signing with key "${entry.id}"`, entry, async (s) => {
      // Object handles die with a re-initialized module: find the key again.
      // An integer compare, no PKCS#11 call, on the hot path.
      if (entry.gen !== this.#mod.generation && !this.#refreshKey(s, entry)) throw this.#keyVanished(entry, 'CKR_OBJECT_HANDLE_INVALID');
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

  /** Reads one attribute; undefined if the token will not give it (absent, sensitive). */
  #attr(s: Handle, h: Handle, type: number): Buffer | undefined {
    try {
      return this.#lib.C_GetAttributeValue(s, h, [{ type }])[0]?.value;
    } catch (err) {
      const code = ckr(err);
      if (code === 'CKR_ATTRIBUTE_TYPE_INVALID' || code === 'CKR_ATTRIBUTE_SENSITIVE') return undefined;
      throw err;
    }
  }

  /** Describes an EC key object; undefined for anything else (another key type, a certificate). */
  #describe(s: Handle, h: Handle, unlabelled: boolean): KeyObject | undefined {
    const cls = attrUlong(this.#attr(s, h, P.CKA_CLASS));
    if (cls !== P.CKO_PRIVATE_KEY && cls !== P.CKO_PUBLIC_KEY) return undefined;
    // An object killed while its default attributes were being written may
    // not even have a key type yet; one that names another type is not ours.
    const keyType = attrUlong(this.#attr(s, h, P.CKA_KEY_TYPE));
    if (keyType !== P.CKK_EC && keyType !== -1) return undefined;
    const params = this.#attr(s, h, P.CKA_EC_PARAMS) ?? Buffer.alloc(0);
    if (cls === P.CKO_PRIVATE_KEY) return { h, cls: 'private', unlabelled, finished: params.length > 0, params };
    const point = this.#attr(s, h, P.CKA_EC_POINT) ?? Buffer.alloc(0);
    return { h, cls: 'public', unlabelled, finished: params.length > 0 && point.length > 0, params, point };
  }

  /**
   * Everything on the token that belongs to `id`: objects labelled with it,
   * and key objects with an empty label whose CKA_ID is the one derived from
   * it (a half whose label was lost).
   */
  #inspect(s: Handle, id: string): Inspection {
    const out: Inspection = { privs: [], pubs: [], remnants: [], others: 0 };
    const add = (o: KeyObject | undefined) => {
      if (!o) return false;
      if (!o.finished) out.remnants.push(o);
      else (o.cls === 'private' ? out.privs : out.pubs).push(o);
      return true;
    };
    for (const h of this.#findObjects(s, [{ type: P.CKA_LABEL, value: Buffer.from(id, 'utf8') }])) {
      if (!add(this.#describe(s, h, false))) out.others++;
    }
    for (const h of this.#findObjects(s, [
      { type: P.CKA_ID, value: ckaIdFor(id) },
      { type: P.CKA_LABEL, value: Buffer.alloc(0) },
    ])) {
      add(this.#describe(s, h, true));
    }
    return out;
  }

  /**
   * Finds a key pair by id: exactly one finished EC private key and one
   * public key. Returns 'repair' when the pair is whole but has remnants or
   * an unlabelled half beside it (unless `repair`: then it fixes them).
   */
  #loadKey(s: Handle, id: string, repair = false): FoundKey | 'repair' | undefined {
    const found = this.#inspect(s, id);
    const fail = (why: string) => new AnchorageError('failed_precondition', `pkcs11: key "${id}" on token "${this.tokenLabel}" ${why}`);
    if (found.privs.length > 1) throw fail(`is ambiguous: ${found.privs.length} private keys have that label`);
    if (found.pubs.length > 1) throw fail(`is ambiguous: ${found.pubs.length} public keys have that label`);
    const priv = found.privs[0];
    const pub = found.pubs[0];
    if (!priv || !pub) {
      if (priv || pub || found.remnants.length > 0) {
        this.#logger.warn(
          { id, token: this.tokenLabel, private: found.privs.length, public: found.pubs.length, unfinished: found.remnants.length },
          'pkcs11: key is incomplete (an interrupted key generation); generating it again replaces it',
        );
      }
      return undefined;
    }
    const type = keyTypeFromEcParams(priv.params);
    if (!type) throw fail('is on a curve other than p-256 or p-384');
    if (!pub.params.equals(priv.params)) throw fail('has public and private halves on different curves');
    if (found.remnants.length > 0 || priv.unlabelled || pub.unlabelled) {
      if (!repair) return 'repair';
      if (found.remnants.length > 0) this.#destroy(s, id, found.remnants, 'unfinished objects of an interrupted key generation');
      for (const half of [priv, pub].filter((o) => o.unlabelled)) {
        // The pair is whole and its CKA_ID is ours: give the half its label back.
        this.#lib.C_SetAttributeValue(s, half.h, [{ type: P.CKA_LABEL, value: Buffer.from(id, 'utf8') }]);
        this.#logger.warn({ id, token: this.tokenLabel, half: half.cls }, 'pkcs11: restored the label of a key half that had lost it');
      }
    }
    return { type, spki: spkiFromEcPoint(type, pub.point!), priv: priv.h, pub: pub.h };
  }

  #destroy(s: Handle, id: string, objects: KeyObject[], what: string): void {
    for (const o of objects) {
      try {
        this.#lib.C_DestroyObject(s, o.h);
      } catch (err) {
        if (!HANDLE_INVALID.has(ckr(err) ?? '')) throw err;
      }
    }
    this.#logger.warn(
      { id, token: this.tokenLabel, objects: objects.map((o) => `${o.cls}${o.finished ? '' : ' (unfinished)'}${o.unlabelled ? ' (unlabelled)' : ''}`) },
      `pkcs11: destroyed ${what}`,
    );
  }

  /**
   * Destroys unlabelled EC key objects that hold no key (no curve, no point):
   * what SoftHSM2 leaves when killed inside C_GenerateKeyPair, before it
   * wrote the template. No lookup can reach them; they only fill the token.
   */
  #sweepRemnants(s: Handle): void {
    const remnants: KeyObject[] = [];
    for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY]) {
      for (const h of this.#findObjects(s, [
        { type: P.CKA_CLASS, value: cls },
        { type: P.CKA_LABEL, value: Buffer.alloc(0) },
      ])) {
        const o = this.#describe(s, h, true);
        if (o && !o.finished) remnants.push(o);
      }
    }
    if (remnants.length > 0) this.#destroy(s, '', remnants, 'unlabelled, unfinished key objects of interrupted key generations');
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
   * handles are looked up again by label and the op retried once. Anything
   * beyond that which says the token is in trouble marks it unavailable and
   * starts the background recovery; while it is unavailable every op fails
   * fast with `unavailable`, without touching the token.
   */
  async #withSession<T>(what: string, entry: KeyEntry | undefined, op: (s: Handle) => Promise<T>): Promise<T> {
    if (this.#down !== undefined) throw this.#unavailable();
    const ps = await this.#acquire();
    this.#mod.enter();
    try {
      let sessionRetried = false;
      let handleRetried = false;
      for (;;) {
        if (this.#down !== undefined) throw this.#unavailable();
        let s: Handle;
        try {
          s = this.#ensureOpen(ps);
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
            this.#discardSession(ps, code);
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
      this.#release(ps);
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
      found = this.#loadKey(s, entry.id);
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
      this.#lib.C_GetTokenInfo(this.#slot);
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
    if (this.#busy > 0 || this.#mod.busy > 0) {
      this.#scheduleRecovery(RECOVERY_DRAIN_MS);
      return;
    }
    this.#closeSessions();
    try {
      let healthy = this.#mod.initialized;
      if (healthy) {
        try {
          this.#lib.C_GetTokenInfo(this.#slot);
        } catch {
          healthy = false;
        }
      }
      if (!healthy) this.#mod.reinitialize();
      this.#slot = findSlot(this.#lib, this.tokenLabel);
      this.#slotStale = false;
      for (const ps of this.#pool) this.#ensureOpen(ps);
      const s = this.#pool[0]!.handle!;
      for (const entry of [...this.#keys.values()]) {
        if (!this.#refreshKey(s, entry)) {
          this.#markDeleted(entry);
          this.#logger.warn({ id: entry.id, token: this.tokenLabel }, 'pkcs11: key is no longer on the token after recovery');
        }
      }
    } catch (err) {
      this.#closeSessions();
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

  #discardSession(ps: PoolSession, code: string): void {
    if (ps.handle && ps.gen === this.#mod.generation) {
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
    const gen = this.#mod.generation;
    if (ps.handle) {
      if (ps.gen === gen) return ps.handle;
      // Opened before a re-initialize: the number may now be someone else's session.
      ps.handle = null;
      this.#slotStale = true;
    }
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
    ps.gen = gen;
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
      if (ps.gen === this.#mod.generation && this.#mod.initialized) {
        try {
          this.#lib.C_CloseSession(ps.handle);
        } catch {
          // closing anyway
        }
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

/** The token is not there at all (no slot has its label): an outage once the manager is open. */
function isTokenGone(err: unknown): boolean {
  return err instanceof AnchorageError && err.code === 'not_found' && err.message.startsWith('pkcs11: no token labelled');
}
