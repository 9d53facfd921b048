import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bitString, encode, implicitConstructed, oid, seq, smallInteger } from '@anchorage/client/der';

const ECDSA_WITH_SHA256 = oid('1.2.840.10045.4.3.2');

/**
 * A minimal PKCS#10 request (empty subject, no attributes) signed by a P-256
 * key: the server takes the SPIFFE ID from the entry, so the request only
 * proves possession of the key.
 */
export function createP256Csr(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  const info = encode(seq(smallInteger(0), seq(), publicKey.export({ type: 'spki', format: 'der' }), implicitConstructed(0)));
  return encode(seq(info, seq(ECDSA_WITH_SHA256), bitString(sign('sha256', info, privateKey))));
}

/** A new P-256 key with its CSR; the key as unencrypted PKCS#8 DER (what the Workload API hands out). */
export function newKeyAndCsr(): { csr: Buffer; pkcs8: Buffer; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { csr: createP256Csr(privateKey, publicKey), pkcs8: privateKey.export({ type: 'pkcs8', format: 'der' }), privateKey };
}
