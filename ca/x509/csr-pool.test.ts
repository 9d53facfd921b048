import { afterAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from '@anchorage/client/errors';
import { makeP256Csr } from '../../bench/csr.js';
import { CsrVerifierPool } from './csr-pool.js';
import { parseCsr } from './csr.js';

const pool = new CsrVerifierPool({ workers: 2 });
afterAll(() => pool.close());

describe('CsrVerifierPool', () => {
  it('returns the same SPKI as the inline parser for many CSRs verified at once', async () => {
    const csrs = Array.from({ length: 300 }, makeP256Csr);
    const pooled = await Promise.all(csrs.map((c) => pool.verify(c)));
    for (const [i, c] of csrs.entries()) {
      const inline = await parseCsr(c);
      expect(Buffer.from(pooled[i]!.spki).equals(Buffer.from(inline.spki))).toBe(true);
      expect(pooled[i]!.keyType).toBe('ec-p256');
    }
  });

  it('keeps the error code and message of a rejected CSR, without failing its neighbours', async () => {
    const good = makeP256Csr();
    const bad = Buffer.from(makeP256Csr());
    bad[bad.length - 2]! ^= 0x01;
    const [a, b, c] = await Promise.allSettled([pool.verify(good), pool.verify(bad), pool.verify(Buffer.from('junk'))]);
    expect(a.status).toBe('fulfilled');
    expect(b.status).toBe('rejected');
    const eb = (b as PromiseRejectedResult).reason;
    expect(isAnchorageError(eb, 'invalid_argument') && eb.message).toBe('csr: signature does not verify');
    const ec = (c as PromiseRejectedResult).reason;
    expect(isAnchorageError(ec, 'invalid_argument') && ec.message).toMatch(/^csr: not valid DER/);
  });

  it('refuses work after close', async () => {
    const p = new CsrVerifierPool({ workers: 1 });
    await p.close();
    await expect(p.verify(makeP256Csr())).rejects.toThrow('csr: the verifier is closed');
  });
});
