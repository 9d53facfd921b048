import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

/**
 * A key's JWK, exported from a copy made through DER. Exporting a key from
 * generateKeyPairSync as JWK directly can deadlock Node 20: a garbage
 * collection during the export may finalize the keygen job, whose destructor
 * takes the lock the export holds (see common/csr-create.ts). A copy made
 * from DER belongs to no job. DER export does not hit it.
 */
export function jwkOf(key: KeyObject): JsonWebKey {
  const copy =
    key.type === 'private'
      ? createPrivateKey({ key: key.export({ type: 'pkcs8', format: 'der' }), format: 'der', type: 'pkcs8' })
      : createPublicKey({ key: key.export({ type: 'spki', format: 'der' }), format: 'der', type: 'spki' });
  return copy.export({ format: 'jwk' });
}
