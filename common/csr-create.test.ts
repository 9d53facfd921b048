import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCsr } from '../ca/x509/csr.js';
import { newKeyAndCsr } from './csr-create.js';
import { assertBuilt, REPO } from '../test/helpers/process.js';

describe('newKeyAndCsr', () => {
  it('gives a CSR the server accepts, for the key it returns', async () => {
    const { csr, spki, pkcs8, privateKey } = newKeyAndCsr();
    const parsed = await parseCsr(csr);
    expect(parsed.keyType).toBe('ec-p256');
    expect(Buffer.from(parsed.spki).toString('hex')).toBe(spki.toString('hex'));
    expect(pkcs8.toString('hex')).toBe(privateKey.export({ type: 'pkcs8', format: 'der' }).toString('hex'));
  });

  it('gives keys whose SPKI and PKCS#8 are what node:crypto exports for them, each key new', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const { spki, pkcs8, privateKey } = newKeyAndCsr();
      expect(spki.toString('hex')).toBe(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('hex'));
      expect(pkcs8.toString('hex')).toBe(privateKey.export({ type: 'pkcs8', format: 'der' }).toString('hex'));
      seen.add(spki.toString('hex'));
    }
    expect(seen.size).toBe(200);
  });

  // Node 20 deadlocks (the process hangs, no error) when a GC during a JWK
  // export finalizes the generateKeyPairSync job that made the key. With a GC
  // every 20 allocations, 3,000 such keys hung three runs of three; the old
  // newKeyAndCsr did exactly that. A liveness check, not a timing: the child
  // needs about a second, and a deadlocked one never exits.
  it('does not deadlock the process under constant garbage collection (Node 20 keygen-job finalizer)', () => {
    assertBuilt();
    const mod = pathToFileURL(join(REPO, 'dist', 'common', 'csr-create.js')).href;
    const script = `const { newKeyAndCsr } = await import(${JSON.stringify(mod)}); for (let i = 0; i < 3000; i++) newKeyAndCsr(); console.log('made 3000');`;
    const r = spawnSync(process.execPath, ['--gc-interval=20', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 90_000 });
    expect(r.signal).toBeNull();
    expect(r.stdout.trim()).toBe('made 3000');
    expect(r.status).toBe(0);
  });
});
