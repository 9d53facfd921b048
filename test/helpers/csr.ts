import { generateKeyPairSync, sign } from 'node:crypto';
import { bitString, encode, implicitConstructed, oid, seq, smallInteger } from '../../ca/x509/der.js';

/** A fresh P-256 key and a minimal CSR for it, as an agent makes them. */
export function keyAndCsr(): { csr: Buffer; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const info = encode(seq(smallInteger(0), seq(), publicKey.export({ type: 'spki', format: 'der' }), implicitConstructed(0)));
  const csr = encode(seq(info, seq(oid('1.2.840.10045.4.3.2')), bitString(sign('sha256', info, privateKey))));
  return { csr, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}
