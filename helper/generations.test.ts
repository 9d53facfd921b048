import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '@anchorage/client/pem';
import { makeCert, type TestCert } from '../test/helpers/pki.js';
import { tempDir } from '../test/helpers/process.js';
import { lacks } from '../test/helpers/needs.js';
import { CURRENT_LINK, GenerationWriter, type GenerationFile } from './generations.js';

const isRoot = process.getuid?.() === 0;
let tmp: { dir: string; cleanup: () => void };
let n = 0;
const freshDir = (): string => join(tmp.dir, `d${++n}`);

beforeAll(() => {
  tmp = tempDir('anchorage-helper-gen-');
});
afterAll(() => tmp.cleanup());

/** Cert/key pairs whose public keys differ, so a mixed pair is detectable. */
async function pairs(count: number): Promise<GenerationFile[][]> {
  const out: GenerationFile[][] = [];
  for (let i = 0; i < count; i++) {
    const c: TestCert = await makeCert({ subject: `CN=pair ${i}` });
    const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', c.keys.privateKey));
    out.push([
      { name: 'svid.pem', data: toPem('CERTIFICATE', c.der), mode: 0o644 },
      { name: 'svid_key.pem', data: toPem('PRIVATE KEY', pkcs8), mode: 0o600 },
    ]);
  }
  return out;
}

describe('GenerationWriter', () => {
  it('writes a generation directory, points current at it and links the stable names through current', () => {
    const dir = freshDir();
    const w = new GenerationWriter(dir, 2);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const gen = w.write(
      [
        { name: 'svid.pem', data: 'cert', mode: 0o644 },
        { name: 'svid_key.pem', data: 'key', mode: 0o600 },
        { name: 'federated/other.test.pem', data: 'fed', mode: 0o644 },
      ],
      ['federated', 'empty'],
    );
    expect(gen).toMatch(/^\.gen-\d+-[0-9a-f]{8}$/);
    expect(readlinkSync(join(dir, CURRENT_LINK))).toBe(gen);
    for (const name of ['svid.pem', 'svid_key.pem', 'federated', 'empty']) expect(readlinkSync(join(dir, name))).toBe(`${CURRENT_LINK}/${name}`);
    expect(readFileSync(join(dir, 'svid.pem'), 'utf8')).toBe('cert');
    expect(readFileSync(join(dir, 'federated', 'other.test.pem'), 'utf8')).toBe('fed');
    expect(readdirSync(join(dir, 'empty'))).toEqual([]);
    expect(statSync(join(dir, gen, 'svid.pem')).mode & 0o777).toBe(0o644);
    expect(statSync(join(dir, gen, 'svid_key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, gen)).mode & 0o777).toBe(0o755);
  });

  it('keeps the newest generations only, and a restart keeps what current names and clears the rest', () => {
    const dir = freshDir();
    const w = new GenerationWriter(dir, 2);
    const gens = [1, 2, 3].map((i) => w.write([{ name: 'a', data: `${i}`, mode: 0o644 }]));
    expect(readdirSync(dir).filter((e) => e.startsWith('.gen-')).sort()).toEqual(gens.slice(1).sort());
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('3');
    new GenerationWriter(dir, 2);
    expect(readdirSync(dir).filter((e) => e.startsWith('.gen-'))).toEqual([gens[2]]);
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('3');
  });

  it('replaces an old regular file with its link, and refuses a directory in the way of a stable name', () => {
    const dir = freshDir();
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'svid.pem'), 'old file of another tool');
    mkdirSync(join(dir, 'bundle.pem'));
    const w = new GenerationWriter(dir, 2);
    expect(() => w.write([{ name: 'svid.pem', data: 'new', mode: 0o644 }, { name: 'bundle.pem', data: 'b', mode: 0o644 }])).toThrow(
      `helper: cannot link ${join(dir, 'bundle.pem')} to current/bundle.pem: EISDIR (a directory is in the way; remove it)`,
    );
    expect(readFileSync(join(dir, 'svid.pem'), 'utf8')).toBe('new');
  });

  it('refuses a cert_dir that is a symbolic link, or writable by others', () => {
    const real = freshDir();
    mkdirSync(real, { mode: 0o700 });
    const link = freshDir();
    symlinkSync(real, link);
    expect(() => new GenerationWriter(link, 2)).toThrow(`helper: cert_dir ${link} is a symbolic link; give the real directory`);
    const open = freshDir();
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(() => new GenerationWriter(open, 2)).toThrow(`helper: cert_dir ${open} is writable by group or others (mode 777); chmod 700 it`);
  });

  it.skipIf(lacks(!isRoot, 'root, to chown a directory to another uid'))('refuses a cert_dir owned by another uid', () => {
    const dir = freshDir();
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 12345, 12345);
    expect(() => new GenerationWriter(dir, 2)).toThrow(`helper: cert_dir ${dir} is owned by uid 12345, not by uid 0 that runs the helper; chown it or choose another cert_dir`);
    expect(existsSync(join(dir, CURRENT_LINK))).toBe(false);
  });

  it('a reader in a tight loop that resolves current once never finds a key that does not match its certificate', async () => {
    const dir = freshDir();
    const w = new GenerationWriter(dir, 3);
    const sets = await pairs(4);
    w.write(sets[0]!);
    const stop = join(tmp.dir, `stop-${n}`);
    const reader = spawn(process.execPath, ['--input-type=module', '-e', READER, dir, stop], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    reader.stdout.on('data', (d) => (out += d));
    reader.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => reader.on('close', r));
    // Rotations start only once the reader is reading.
    while (!out.includes('reading')) {
      if (reader.exitCode !== null) throw new Error(`reader exited: ${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // At least 400 swaps, and on until the reader has read enough across them (it reports every 50
    // rounds): how many rounds a loaded machine gives the reader between swaps varies.
    const progress = (): { consistent: number; seen: number } => {
      const last = out.split('\n').filter((l) => l.startsWith('progress ')).pop()?.split(' ');
      return { consistent: Number(last?.[1] ?? 0), seen: Number(last?.[2] ?? 0) };
    };
    for (let i = 1; i <= 400 || progress().consistent <= 100 || progress().seen <= 2; i++) {
      if (i > 100_000) throw new Error(`the reader did not keep up: ${JSON.stringify(progress())}`);
      w.write(sets[i % sets.length]!);
      // Give the reader's reads a chance to land between swaps on a busy machine.
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    writeFileSync(stop, '');
    expect(await exited, `the reader failed: ${err}`).toBe(0);
    const result = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { consistent: number; mismatched: number; gone: number; seen: number; partial: number; stableMixed: number; stableReads: number };
    console.log(`helper: tight-loop reader: ${JSON.stringify(result)}`);
    expect(result.mismatched).toBe(0);
    expect(result.partial).toBe(0);
    expect(result.consistent).toBeGreaterThan(100);
    // It really read across rotations: several distinct generations.
    expect(result.seen).toBeGreaterThan(2);
  }, 60_000);
});

/**
 * The reader: resolves `current` once per round, reads cert and key from
 * that generation and checks that the key is the certificate's; counts
 * rounds whose generation was already removed (it lagged by more than
 * keep_generations) apart. Also reads the two stable names one after the
 * other, which can straddle a swap: reported, not judged.
 */
const READER = `
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
const [dir, stop] = process.argv.slice(1);
const spki = (k) => k.export({ type: 'spki', format: 'der' }).toString('hex');
const r = { consistent: 0, mismatched: 0, gone: 0, partial: 0, seen: 0, stableMixed: 0, stableReads: 0 };
const seen = new Set();
function pair(certPath, keyPath) {
  const cert = new X509Certificate(readFileSync(certPath));
  const key = createPrivateKey(readFileSync(keyPath));
  return spki(cert.publicKey) === spki(createPublicKey(key));
}
let first = true;
for (let i = 0; ; i++) {
  if (i % 50 === 0) {
    if (existsSync(stop)) break;
    console.log('progress ' + r.consistent + ' ' + seen.size);
  }
  try {
    // Resolving can race a removal too: a generation more than keep_generations old is gone.
    const gen = realpathSync(join(dir, 'current'));
    if (pair(join(gen, 'svid.pem'), join(gen, 'svid_key.pem'))) r.consistent++; else r.mismatched++;
    seen.add(gen);
  } catch (e) {
    if (e.code === 'ENOENT') r.gone++; else { r.partial++; console.error(e.message); }
  }
  try {
    r.stableReads++;
    if (!pair(join(dir, 'svid.pem'), join(dir, 'svid_key.pem'))) r.stableMixed++;
  } catch (e) {
    if (e.code !== 'ENOENT') { r.partial++; console.error(e.message); }
  }
  if (first) { console.log('reading'); first = false; }
}
r.seen = seen.size;
console.log(JSON.stringify(r));
`;
