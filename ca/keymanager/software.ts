import { createPublicKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { AnchorageError } from '@anchorage/client/errors';
import type { KeyHandle, KeyType } from './KeyManager.js';
import { CURVES } from './ec.js';

/**
 * A key held in this process's memory (the memory and disk managers). The
 * private KeyObject stays inside the closure: the handle only gives out the
 * public key and signatures, like an HSM-backed one.
 */
export interface SoftwareKey {
  readonly handle: KeyHandle;
  /** Makes every later sign through this handle fail (the key was deleted or the manager closed). */
  revoke(reason: 'deleted' | 'closed'): void;
}

/** Wraps a private key in a KeyHandle; `kind` only shapes error messages. */
export function softwareKey(id: string, type: KeyType, privateKey: KeyObject, kind: 'disk' | 'memory'): SoftwareKey {
  const { hash } = CURVES[type];
  const publicKeySpki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  let revoked: 'deleted' | 'closed' | undefined;
  const handle: KeyHandle = {
    id,
    type,
    publicKeySpki,
    sign: async (data: Uint8Array): Promise<Uint8Array> => {
      if (revoked === 'closed') throw new AnchorageError('failed_precondition', `keymanager: the ${kind} key manager is closed`);
      if (revoked === 'deleted') throw new AnchorageError('not_found', `keymanager: key "${id}" was deleted`);
      return new Uint8Array(nodeSign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
    },
  };
  return {
    handle,
    revoke: (reason) => {
      revoked ??= reason;
    },
  };
}

/** The warning both software managers print when they start; loud on purpose. */
export const SOFTWARE_ROOT_WARNING =
  'keymanager: CA private keys are held in software (not in an HSM); anyone who can read this process or its files can impersonate the trust domain — for development only';
