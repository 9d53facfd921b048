import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCsr } from '../ca/x509/csr.js';
import { newKeyAndCsr, newKeyAndCsrAsync, p256Der } from './csr-create.js';

describe('p256Der', () => {
  it('builds the exact SPKI and PKCS#8 DER node:crypto exports', () => {
    for (let i = 0; i < 50; i++) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const { spki, pkcs8 } = p256Der(privateKey);
      expect(spki.toString('hex')).toBe(publicKey.export({ type: 'spki', format: 'der' }).toString('hex'));
      expect(pkcs8.toString('hex')).toBe(privateKey.export({ type: 'pkcs8', format: 'der' }).toString('hex'));
      // And they load back as the same key.
      expect(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).equals(privateKey)).toBe(true);
      expect(createPublicKey({ key: spki, format: 'der', type: 'spki' }).equals(publicKey)).toBe(true);
    }
  });

  it('refuses a key of another curve', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    expect(() => p256Der(privateKey)).toThrow('csr: not a P-256 private key');
  });
});

describe('newKeyAndCsr', () => {
  it.each([
    ['on the main thread', async () => newKeyAndCsr()],
    ['on the thread pool', newKeyAndCsrAsync],
  ])('gives a CSR the server accepts, for the key it returns (%s)', async (_how, make) => {
    const { csr, spki, pkcs8, privateKey } = await make();
    const parsed = await parseCsr(csr);
    expect(parsed.keyType).toBe('ec-p256');
    expect(Buffer.from(parsed.spki).toString('hex')).toBe(spki.toString('hex'));
    expect(pkcs8.toString('hex')).toBe(privateKey.export({ type: 'pkcs8', format: 'der' }).toString('hex'));
  });
});
