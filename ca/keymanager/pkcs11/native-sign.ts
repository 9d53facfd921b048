/**
 * C_SignInit + C_Sign as one call on the libuv threadpool (native/p11sign).
 *
 * pkcs11js has no asynchronous C_SignInit, and for a token key that is the
 * costly half of a signature (SoftHSM2 reads and decrypts the key object
 * there: ≈ 30 µs alone, 50–80 µs while other sessions sign). On the event
 * loop it bounded the server's minting rate; through this addon the event
 * loop spends ≈ 5 µs per signature. The module is loaded and initialized by
 * pkcs11js (module.ts); the addon only takes its function list.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import type { Handle } from './module.js';

// pkcs11js's CKR_ constants, as module.ts loads them (CommonJS, seen only on module.exports).
const P = createRequire(import.meta.url)('pkcs11js') as Record<string, unknown>;

interface Addon {
  open(path: string): object;
  sign(mod: object, session: Handle, key: Handle, mechanism: number, data: Uint8Array): Promise<Buffer>;
  close(mod: object): void;
}

let addon: Addon | undefined;

/** native/p11sign is built by scripts/setup.sh (and npm's install script); found from the sources and from dist/. */
function load(): Addon {
  if (addon) return addon;
  for (const rel of ['../../../native/p11sign/build/Release/p11sign.node', '../../../../native/p11sign/build/Release/p11sign.node']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) {
      addon = createRequire(import.meta.url)(path) as Addon;
      return addon;
    }
  }
  throw new AnchorageError('failed_precondition', 'pkcs11: native/p11sign is not built; run "npm run build" (scripts/setup.sh builds it)');
}

/** CK_RV number → its CKR_ name, from pkcs11js's constants (the names errors.ts classifies). */
let names: Map<number, string> | undefined;
function ckrName(rv: number): string {
  if (!names) {
    names = new Map();
    for (const [k, v] of Object.entries(P)) if (k.startsWith('CKR_') && typeof v === 'number' && !names.has(v)) names.set(v, k);
  }
  return names.get(rv) ?? `CKR_VENDOR_DEFINED_0X${rv.toString(16).toUpperCase()}`;
}

export interface NativeSigner {
  /**
   * C_SignInit(session, {mechanism}, key) then C_Sign(data) on a threadpool
   * thread; resolves to the signature (at most 1,024 bytes). Throws at once
   * if this signer already has a signature in flight on the session (PKCS#11
   * allows one operation per session; the manager's pool never asks). Rejects with an Error whose message is the CKR_ name (as
   * pkcs11js's errors are, so errors.ts classifies both alike).
   */
  sign(session: Handle, key: Handle, mechanism: number, data: Uint8Array): Promise<Buffer>;
  /** Drops the addon's reference to the module; refuses while signatures are in flight. */
  close(): void;
}

/** Opens the already loaded and initialized module at `path` for signing. */
export function openNativeSigner(path: string): NativeSigner {
  const a = load();
  let mod: object;
  try {
    mod = a.open(path);
  } catch (err) {
    throw new AnchorageError('failed_precondition', `pkcs11: cannot open module ${path} for signing: ${errorMessage(err)}`, { cause: err });
  }
  return {
    sign: (session, key, mechanism, data) =>
      a.sign(mod, session, key, mechanism, data).catch((err: unknown) => {
        const rv = (err as { rv?: unknown }).rv;
        if (typeof rv !== 'number') throw err;
        const e = new Error(ckrName(rv));
        (e as Error & { fn?: unknown }).fn = (err as { fn?: unknown }).fn;
        throw e;
      }),
    close: () => a.close(mod),
  };
}
