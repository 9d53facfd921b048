import { mkdtempSync, rmSync, statSync, readdirSync, readFileSync, chmodSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { captureLogger, runKeyManagerContract, verifyP1363 } from '../../test/contract/keymanager.js';
import { DiskKeyManager } from './disk.js';

const roots: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'anchorage-diskkm-'));
  roots.push(d);
  return d;
}
afterAll(() => {
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});

runKeyManagerContract('disk', async () => {
  const dir = join(tempDir(), 'keys');
  const km = await DiskKeyManager.open({ dir });
  return {
    km,
    reopen: () => DiskKeyManager.open({ dir }),
    cleanup: () => km.close(),
  };
});

describe('DiskKeyManager', () => {
  it('creates the directory 0700 and key files 0600, PKCS#8 PEM, no temp files left', async () => {
    const dir = join(tempDir(), 'a', 'b');
    const km = await DiskKeyManager.open({ dir });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    await km.generateKey('root-key', 'ec-p384');
    expect(readdirSync(dir)).toEqual(['root-key.pem']);
    const file = join(dir, 'root-key.pem');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    await km.close();
  });

  it('warns loudly that keys are in software', async () => {
    const { logger, records } = captureLogger();
    const km = await DiskKeyManager.open({ dir: tempDir(), logger });
    await new Promise((r) => setImmediate(r));
    expect(records.find((r) => r.level === 40)?.msg).toMatch(/software.*development only/);
    await km.close();
  });

  it('rejects ids that are not safe file names', async () => {
    const km = await DiskKeyManager.open({ dir: tempDir() });
    for (const id of ['../escape', 'a/b', '.hidden', '..', 'sp ace']) {
      await expect(km.generateKey(id, 'ec-p256'), id).rejects.toMatchObject({ code: 'invalid_argument' });
      await expect(km.getKey(id), id).rejects.toMatchObject({ code: 'invalid_argument' });
    }
    await km.close();
  });

  it('refuses a directory other users can enter', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    await expect(DiskKeyManager.open({ dir })).rejects.toMatchObject({ code: 'failed_precondition', message: expect.stringMatching(/chmod 700/) });
  });

  it('refuses a key file other users can read', async () => {
    const dir = tempDir();
    const km = await DiskKeyManager.open({ dir });
    await km.generateKey('k', 'ec-p256');
    await km.close();
    chmodSync(join(dir, 'k.pem'), 0o644);
    const km2 = await DiskKeyManager.open({ dir });
    await expect(km2.getKey('k')).rejects.toMatchObject({ code: 'failed_precondition' });
    await km2.close();
  });

  it('loads a PKCS#8 key placed there by hand, and ignores stray files in listKeys', async () => {
    const dir = tempDir();
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'imported.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(dir, '.tmp-leftover.tmp'), 'x', { mode: 0o600 });
    writeFileSync(join(dir, 'notes.txt'), 'x', { mode: 0o600 });
    mkdirSync(join(dir, 'sub'));
    const km = await DiskKeyManager.open({ dir });
    const keys = await km.listKeys();
    expect(keys.map((k) => k.id)).toEqual(['imported']);
    expect(keys[0]!.type).toBe('ec-p256');
    const data = Buffer.from('hi');
    expect(verifyP1363(keys[0]!, data, await keys[0]!.sign(data))).toBe(true);
    await km.close();
  });

  it('reports a file that is not an EC key without quoting it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.pem'), 'SECRET-LOOKING-CONTENT', { mode: 0o600 });
    const km = await DiskKeyManager.open({ dir });
    const err = await km.getKey('bad').catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'failed_precondition' });
    expect((err as Error).message).not.toContain('SECRET');
    await km.close();
  });
});
