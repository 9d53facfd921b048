import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ecdsaVerifyDigest } from './ecverify.js';

function fixture(curve: 'P-256' | 'P-384') {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const size = curve === 'P-256' ? 65 : 97;
  const hash = curve === 'P-256' ? 'sha256' : 'sha384';
  const data = Buffer.from('to be signed');
  return {
    point: spki.subarray(spki.length - size),
    digest: createHash(hash).update(data).digest(),
    sig: sign(hash, data, privateKey),
    bits: (curve === 'P-256' ? 256 : 384) as 256 | 384,
  };
}

describe('native ecdsa check', () => {
  for (const curve of ['P-256', 'P-384'] as const) {
    it(`accepts a good ${curve} signature and rejects a tampered one`, () => {
      const f = fixture(curve);
      expect(ecdsaVerifyDigest(f.bits, f.point, f.digest, f.sig)).toBe('ok');
      const digest = Buffer.from(f.digest);
      digest[0]! ^= 1;
      expect(ecdsaVerifyDigest(f.bits, f.point, digest, f.sig)).toBe('bad-signature');
      const sig = Buffer.from(f.sig);
      sig[sig.length - 1]! ^= 1;
      expect(ecdsaVerifyDigest(f.bits, f.point, f.digest, sig)).toBe('bad-signature');
      // trailing garbage after the DER signature
      expect(ecdsaVerifyDigest(f.bits, f.point, f.digest, Buffer.concat([f.sig, Buffer.from([0])]))).toBe('bad-signature');
    });
  }

  it('reports a point that is not on the curve, the wrong size, or compressed as a bad key', () => {
    const f = fixture('P-256');
    const off = Buffer.from(f.point);
    off[64]! ^= 1;
    expect(ecdsaVerifyDigest(256, off, f.digest, f.sig)).toBe('bad-key');
    expect(ecdsaVerifyDigest(384, f.point, f.digest, f.sig)).toBe('bad-key');
    expect(ecdsaVerifyDigest(256, f.point.subarray(0, 33), f.digest, f.sig)).toBe('bad-key');
  });

  it('throws a TypeError on arguments of the wrong kind', () => {
    const f = fixture('P-256');
    expect(() => ecdsaVerifyDigest(512 as 256, f.point, f.digest, f.sig)).toThrow(/curveBits must be 256 or 384/);
    expect(() => ecdsaVerifyDigest(256, 'x' as unknown as Uint8Array, f.digest, f.sig)).toThrow(/must be Uint8Arrays/);
  });
});
