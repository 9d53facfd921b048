import { generateKeyPairSync, sign } from 'node:crypto';
import { bitString, encode, implicitConstructed, oid, seq, smallInteger } from '../ca/x509/der.js';

const ECDSA_WITH_SHA256 = oid('1.2.840.10045.4.3.2');

/**
 * Builds a minimal PKCS#10 request for a fresh P-256 key, as an agent would
 * send for each workload SVID (empty subject: the server takes the ID from
 * the entry, not from the request).
 */
export function makeP256Csr(): Buffer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const info = encode(seq(smallInteger(0), seq(), spki, implicitConstructed(0)));
  const signature = sign('sha256', info, privateKey);
  return encode(seq(info, seq(ECDSA_WITH_SHA256), bitString(signature)));
}
