import { createPrivateKey, createPublicKey, generateKeyPair, generateKeyPairSync } from 'node:crypto';
import { promisify } from 'node:util';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCsr } from '../../ca/x509/csr.js';
import { createP256Csr } from '../../common/csr-create.js';
import { newWorkloadKey, workloadKeyOf } from './keys.js';
import { assertBuilt, REPO } from '../../test/helpers/process.js';

describe('workload keys', () => {
  it('are the SPKI and PKCS#8 node:crypto exports, with a CSR the server accepts, of the bytes common/csr-create.ts writes', async () => {
    for (let i = 0; i < 50; i++) {
      // The async generateKeyPair: a JWK export of a generateKeyPairSync key can deadlock Node 20 (common/csr-create.ts).
      const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });
      const k = workloadKeyOf(privateKey);
      expect(k.spki.toString('hex')).toBe(publicKey.export({ type: 'spki', format: 'der' }).toString('hex'));
      expect(k.pkcs8.toString('hex')).toBe(privateKey.export({ type: 'pkcs8', format: 'der' }).toString('hex'));
      expect(createPrivateKey({ key: k.pkcs8, format: 'der', type: 'pkcs8' }).equals(privateKey)).toBe(true);
      expect(createPublicKey({ key: k.spki, format: 'der', type: 'spki' }).equals(publicKey)).toBe(true);
      const parsed = await parseCsr(k.csr);
      expect(parsed.keyType).toBe('ec-p256');
      expect(Buffer.from(parsed.spki).toString('hex')).toBe(k.spki.toString('hex'));
      // The same request as createP256Csr's up to the signature (ECDSA signatures differ each time).
      const theirs = createP256Csr(privateKey, publicKey);
      expect(k.csr.subarray(3, 3 + 100 + 12).toString('hex')).toBe(theirs.subarray(3, 3 + 100 + 12).toString('hex'));
      // One buffer for all three.
      expect(k.csr.buffer).toBe(k.pkcs8.buffer);
      expect(k.spki.buffer).toBe(k.pkcs8.buffer);
    }
  });

  it('come from the thread pool as fresh keys', async () => {
    const [a, b] = await Promise.all([newWorkloadKey(), newWorkloadKey()]);
    expect(a!.spki.equals(b!.spki)).toBe(false);
    expect((await parseCsr(a!.csr)).keyType).toBe('ec-p256');
  });

  it('refuse a key that is not P-256', () => {
    expect(() => workloadKeyOf(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey)).toThrow('agent: not a P-256 private key');
    expect(() => workloadKeyOf(generateKeyPairSync('ed25519').privateKey)).toThrow('agent: not a P-256 private key');
  });

  // The agent makes thousands of these; the pattern that deadlocks Node 20
  // (a JWK export of a generateKeyPairSync key, see common/csr-create.ts) must
  // not come back. A liveness check: the child needs about a second under a GC
  // every 20 allocations, and a deadlocked one never exits.
  it('are made without deadlocking the process under constant garbage collection', () => {
    assertBuilt();
    const mod = pathToFileURL(join(REPO, 'dist', 'node-agent', 'agent', 'keys.js')).href;
    const script = `const { newWorkloadKey } = await import(${JSON.stringify(mod)}); for (let i = 0; i < 3000; i += 20) await Promise.all(Array.from({ length: 20 }, newWorkloadKey)); console.log('made 3000');`;
    const r = spawnSync(process.execPath, ['--gc-interval=20', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 90_000 });
    expect(r.signal).toBeNull();
    expect(r.stdout.trim()).toBe('made 3000');
    expect(r.status).toBe(0);
  });
});

