import { createECDH, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { bitString, encode, implicitConstructed, oid, seq, smallInteger } from '@anchorage/client/der';

const ECDSA_WITH_SHA256 = oid('1.2.840.10045.4.3.2');

/**
 * A minimal PKCS#10 request (empty subject, no attributes) signed by a P-256
 * key: the server takes the SPIFFE ID from the entry, so the request only
 * proves possession of the key.
 */
export function createP256Csr(privateKey: KeyObject, publicKey: KeyObject | Buffer): Buffer {
  const spki = Buffer.isBuffer(publicKey) ? publicKey : publicKey.export({ type: 'spki', format: 'der' });
  const info = encode(seq(smallInteger(0), seq(), spki, implicitConstructed(0)));
  return encode(seq(info, seq(ECDSA_WITH_SHA256), bitString(sign('sha256', info, privateKey))));
}

/** SubjectPublicKeyInfo of a P-256 key up to the uncompressed point (id-ecPublicKey, prime256v1). */
export const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
/** PKCS#8 PrivateKeyInfo of a P-256 key (RFC 5915 ECPrivateKey inside) up to the private scalar. */
export const P256_PKCS8_PREFIX = Buffer.from('308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420', 'hex');
/** Between the scalar and the point: [1] publicKey BIT STRING. */
export const P256_PKCS8_POINT = Buffer.from('a144034200', 'hex');

/** SPKI and PKCS#8 DER of a P-256 key from its uncompressed point and private scalar. */
function p256DerFrom(point: Buffer, d: Buffer): { spki: Buffer; pkcs8: Buffer } {
  if (point.length !== 65 || point[0] !== 4 || d.length !== 32) throw new Error('csr: not a P-256 private key');
  return { spki: Buffer.concat([P256_SPKI_PREFIX, point]), pkcs8: Buffer.concat([P256_PKCS8_PREFIX, d, P256_PKCS8_POINT, point]) };
}

/**
 * A new P-256 key with its CSR; the key as unencrypted PKCS#8 DER (what the
 * Workload API hands out) and its public half as SPKI DER (what the signed
 * certificate must carry).
 *
 * The key is made by OpenSSL's EC key generation through createECDH (the
 * same operation as generateKeyPairSync, without its job object) and
 * imported as a KeyObject from its JWK numbers. Never export a
 * generateKeyPairSync key as JWK: Node 20 (20.20.2 here) deadlocks when a
 * garbage collection during the export finalizes the key-generation job that
 * made the key (the job's destructor takes the lock the export holds;
 * csr-create.test.ts reproduces it). Keys from the async generateKeyPair did
 * not (the agent's workload keys, node-agent/agent/keys.ts).
 */
export function newKeyAndCsr(): { csr: Buffer; pkcs8: Buffer; spki: Buffer; privateKey: KeyObject } {
  const ecdh = createECDH('prime256v1');
  const point = ecdh.generateKeys();
  const d = ecdh.getPrivateKey();
  // getPrivateKey drops leading zero bytes; the scalar is 32 octets in both encodings.
  const scalar = d.length === 32 ? d : Buffer.concat([Buffer.alloc(32 - d.length), d]);
  const privateKey = createPrivateKey({
    format: 'jwk',
    key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url'), d: scalar.toString('base64url') },
  });
  const { spki, pkcs8 } = p256DerFrom(point, scalar);
  return { csr: createP256Csr(privateKey, spki), pkcs8, spki, privateKey };
}
