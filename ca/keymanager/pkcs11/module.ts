/**
 * The PKCS#11 module itself: loading the .so once per process, C_Initialize
 * with CKF_OS_LOCKING_OK, and the ref-counted registry that every manager,
 * test and benchmark in the process shares, with the generation counter that
 * tells holders their session and object handles died with a re-initialize.
 * Kept apart from the manager because a module is process-wide state that
 * outlives any one manager.
 */
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PKCS11 } from 'pkcs11js';
import { AnchorageError, errorMessage, invalid } from '@anchorage/client/errors';
import { ckr } from './errors.js';
import { openNativeSigner, type NativeSigner } from './native-sign.js';

// pkcs11js is CommonJS and builds its exports with a spread, which Node's
// ESM loader cannot see through: the constants exist only on module.exports.
export const P = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');

/** PKCS#11 object and slot handles are opaque byte strings in pkcs11js. */
export type Handle = Buffer;

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
  /**
   * C_SignInit + C_Sign in one call off the event loop (native-sign.ts).
   * Session and key are this module's handles; errors carry the CKR_ name.
   */
  sign(session: Handle, key: Handle, mechanism: number, data: Uint8Array): Promise<Buffer>;
  /** Marks an operation in flight (signatures run on another thread); pair with leave(). */
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
  signer: NativeSigner;
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
 * several libuv threads at once (native-sign.ts) spin forever in SoftHSM2.
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
    let signer: NativeSigner;
    try {
      signer = openNativeSigner(path);
    } catch (err) {
      try {
        lib.close();
      } catch {
        // already failing; the signer's error is the one to report
      }
      throw err;
    }
    let ownsInit: boolean;
    try {
      ownsInit = initializeModule(lib, path) === 'ours';
    } catch (err) {
      try {
        lib.close();
        signer.close();
      } catch {
        // already failing; the initialize error is the one to report
      }
      throw err;
    }
    mod = { lib, signer, refs: 0, ownsInit, initialized: true, generation: 0, busy: 0 };
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
    sign: (session, key, mechanism, data) => entry.signer.sign(session, key, mechanism, data),
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
      try {
        entry.signer.close();
      } catch {
        // as above
      }
    },
  };
}
