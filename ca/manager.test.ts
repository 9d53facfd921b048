import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../common/log.js';
import { useSoftHsmToken } from '../test/helpers/softhsm.js';
import { JwtBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyJwtSvid } from '@anchorage/client/spiffe/jwtsvid';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { SqliteDataStore } from './datastore/sqlite/index.js';
import type { KeyHandle, KeyType } from './keymanager/KeyManager.js';
import { ForwardingKeyManager } from '../test/helpers/key-manager.js';
import { Pkcs11KeyManager } from './keymanager/pkcs11/index.js';
import { CaManager, rotationTimes } from './manager.js';
import { Minter } from './minter.js';
import { loadRootOfTrust } from './root.js';

const token = useSoftHsmToken('rotation');
const td = TrustDomain.parse('rotation.test');
const T0 = Date.UTC(2026, 10, 23, 0, 0, 0);
const CA_TTL = 600;

/** A real key manager that counts generateKey calls, to prove no key is made twice. */
class CountingKeyManager extends ForwardingKeyManager {
  generated = 0;
  override generateKey(id: string, type: KeyType): Promise<KeyHandle> {
    this.generated++;
    return super.generateKey(id, type);
  }
}

let dir: string;
let km: CountingKeyManager;
let ds: SqliteDataStore;
let clock = T0;
const now = () => clock;

async function newManager(): Promise<{ ca: CaManager; minter: Minter }> {
  const root = await loadRootOfTrust(
    { type: 'self-signed', ttl: 365 * 86400 },
    { trustDomain: td, datastore: ds, keyManager: km, now, logger: silentLogger(), defaultKeyType: 'ec-p256' },
  );
  const ca = new CaManager({
    trustDomain: td,
    keyManager: km,
    root,
    datastore: ds,
    caTtl: CA_TTL,
    keyType: 'ec-p256',
    bundleRefreshHint: 300,
    now,
    logger: silentLogger(),
  });
  await ca.start();
  return { ca, minter: new Minter({ ca, x509SvidTtl: 500, jwtSvidTtl: 500, now }) };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-rotation-'));
  km = new CountingKeyManager(
    await Pkcs11KeyManager.open({ module: token.module, tokenLabel: token.label, pin: token.pin, logger: silentLogger() }),
  );
  ds = SqliteDataStore.open(join(dir, 'ds.sqlite3'));
});

afterAll(async () => {
  await ds?.close();
  await km?.close();
  rmSync(dir, { recursive: true, force: true });
  token.cleanup();
});

interface Issued {
  label: string;
  chain: Uint8Array[];
  jwt: string;
  notAfter: number;
  issuer: string;
}

describe('CA rotation driven by a fake clock', () => {
  const issued: Issued[] = [];
  let ca: CaManager;
  let minter: Minter;
  const workload = SpiffeId.parse('spiffe://rotation.test/workload');

  async function mint(label: string): Promise<Issued> {
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const x = await minter.mintX509({ spiffeId: workload, spki });
    const j = await minter.mintJwt({ spiffeId: workload, audience: ['svc'] });
    const item = { label, chain: x.chain, jwt: j.token, notAfter: x.notAfter, issuer: ca.activeX509().row.id };
    issued.push(item);
    return item;
  }

  /** Every SVID still within its validity verifies against the bundle published now. */
  async function checkAllAgainstBundle(): Promise<void> {
    const b = ca.bundle();
    const at = new Date(clock);
    for (const s of issued.filter((i) => i.notAfter * 1000 > clock)) {
      const x509Bundle = new X509Bundle(td, b.x509.authorities());
      const res = verifyX509Svid(s.chain, (t) => (t.equals(td) ? x509Bundle : undefined), at);
      expect(res.spiffeId.toString(), s.label).toBe(workload.toString());
      const jwtBundle = new JwtBundle(td, b.jwt.keys());
      const j = await verifyJwtSvid(s.jwt, (t) => (t.equals(td) ? jwtBundle : undefined), ['svc'], at);
      expect(j.spiffeId.toString(), s.label).toBe(workload.toString());
    }
  }

  it('starts with a root, one active intermediate and one JWT key, bundle sequence 1', async () => {
    ({ ca, minter } = await newManager());
    const rows = await ds.listJournal();
    expect(rows.map((r) => `${r.kind}:${r.status}`).sort()).toEqual(['jwt:active', 'root:active', 'x509:active']);
    expect(km.generated).toBe(3);
    expect(ca.bundle().sequence).toBe(1);
    expect(ca.bundle().jwt.size).toBe(1);
    expect(ca.bundle().x509.size).toBe(1);
    const inter = new X509Certificate(ca.activeX509().chain[0]!);
    expect(new Date(inter.validTo).getTime()).toBe(T0 + CA_TTL * 1000);
    await mint('s0 (A, before prepare)');
    await checkAllAgainstBundle();
  });

  it('prepares the next intermediate and JWT key at notAfter − lifetime/2 and publishes the JWT key', async () => {
    const a = ca.activeX509().row;
    const t = rotationTimes(a.notBefore, a.notAfter);
    clock = (t.prepareAt - 1) * 1000;
    await ca.tick();
    expect((await ds.listJournal()).filter((r) => r.status === 'prepared')).toHaveLength(0);
    clock = t.prepareAt * 1000;
    await ca.tick();
    const rows = await ds.listJournal();
    expect(rows.filter((r) => r.status === 'prepared').map((r) => r.kind).sort()).toEqual(['jwt', 'x509']);
    expect(ca.activeX509().row.id).toBe(a.id); // still signing with A
    expect(ca.bundle().jwt.size).toBe(2); // bundle holds both JWT keys
    expect(ca.bundle().sequence).toBe(2);
    await mint('s1 (A, after prepare)');
    await checkAllAgainstBundle();
  });

  it('activates the prepared keys at notAfter − lifetime/6; the old ones stay published', async () => {
    const a = ca.activeX509().row;
    const t = rotationTimes(a.notBefore, a.notAfter);
    clock = t.activateAt * 1000;
    await ca.tick();
    const b = ca.activeX509().row;
    expect(b.id).not.toBe(a.id);
    const rows = await ds.listJournal();
    expect(rows.find((r) => r.id === a.id)?.status).toBe('old');
    expect(rows.filter((r) => r.kind === 'jwt').map((r) => r.status).sort()).toEqual(['active', 'old']);
    expect(ca.bundle().jwt.size).toBe(2);
    const s2 = await mint('s2 (B, after activate)');
    expect(s2.issuer).toBe(b.id);
    // The new leaf names the new intermediate as its issuer.
    expect(new X509Certificate(s2.chain[0]!).checkIssued(new X509Certificate(s2.chain[1]!))).toBe(true);
    expect(Buffer.from(s2.chain[1]!).equals(Buffer.from(b.certDer!))).toBe(true);
    await checkAllAgainstBundle();
  });

  it('drops the old intermediate and JWT key after they expire, from the journal, the bundle and the HSM', async () => {
    const old = (await ds.listJournal()).filter((r) => r.status === 'old');
    expect(old).toHaveLength(2);
    const seqBefore = ca.bundle().sequence!;
    clock = (Math.max(...old.map((r) => r.notAfter)) + 1) * 1000;
    await ca.tick();
    const rows = await ds.listJournal();
    for (const r of old) {
      expect(rows.find((x) => x.id === r.id)).toBeUndefined();
      expect(await km.getKey(r.keyId)).toBeUndefined();
    }
    expect([...ca.bundle().jwt.keys().keys()]).not.toContain(old.find((r) => r.kind === 'jwt')!.kid);
    expect(ca.bundle().sequence!).toBeGreaterThan(seqBefore);
    await mint('s3 (after drop)');
    await checkAllAgainstBundle();
  });

  it('a restart resumes from the journal: same active CA, same bundle sequence, no new keys', async () => {
    const before = { x509: ca.activeX509().row.id, jwt: ca.activeJwt().kid, seq: ca.bundle().sequence, generated: km.generated };
    await ca.close();
    ({ ca, minter } = await newManager());
    expect(ca.activeX509().row.id).toBe(before.x509);
    expect(ca.activeJwt().kid).toBe(before.jwt);
    expect(ca.bundle().sequence).toBe(before.seq);
    expect(km.generated).toBe(before.generated);
    await checkAllAgainstBundle();
  });
});

describe('crash recovery', () => {
  it('a row left in "preparing" after its key was generated is completed with that key, not a new one', async () => {
    const { ca } = await newManager();
    const active = ca.activeX509().row;
    // Simulate a crash between generating the key and recording the certificate.
    const row = { id: 'x509-crashed', kind: 'x509' as const, status: 'preparing' as const, keyId: 'anchorage-crash-test', notBefore: 0, notAfter: 0, createdAt: 0 };
    await ds.putJournal(row);
    const key = await km.generateKey(row.keyId, 'ec-p256');
    const generated = km.generated;
    await ca.close();
    const again = await newManager();
    const completed = (await ds.listJournal()).find((r) => r.id === row.id)!;
    expect(completed.status).toBe('prepared');
    expect(Buffer.from(completed.publicKeySpki!).equals(Buffer.from(key.publicKeySpki))).toBe(true);
    expect(km.generated).toBe(generated);
    expect(again.ca.activeX509().row.id).toBe(active.id);
    await again.ca.close();
  });

  it('two active rows (a crash in the middle of an activation) settle on the newer one', async () => {
    const { ca } = await newManager();
    const rows = await ds.listJournal();
    const prepared = rows.find((r) => r.kind === 'x509' && r.status === 'prepared')!;
    const active = rows.find((r) => r.kind === 'x509' && r.status === 'active')!;
    expect(prepared.notBefore).toBeGreaterThanOrEqual(active.notBefore);
    await ds.putJournal({ ...prepared, status: 'active' });
    await ca.close();
    const again = await newManager();
    const after = await ds.listJournal();
    expect(after.filter((r) => r.kind === 'x509' && r.status === 'active').map((r) => r.id)).toEqual([prepared.id]);
    expect(after.find((r) => r.id === active.id)?.status).toBe('old');
    expect(again.ca.activeX509().row.id).toBe(prepared.id);
    await again.ca.close();
  });
});

describe('root expiry monitoring', () => {
  it('warns at every check once the root has less than 90 days left', async () => {
    const { captureLogger } = await import('../test/helpers/log.js');
    const { logger, records } = captureLogger();
    const root = await loadRootOfTrust(
      { type: 'self-signed', ttl: 365 * 86400 },
      { trustDomain: td, datastore: ds, keyManager: km, now, logger, defaultKeyType: 'ec-p256' },
    );
    const mk = () =>
      new CaManager({ trustDomain: td, keyManager: km, root, datastore: ds, caTtl: CA_TTL, keyType: 'ec-p256', bundleRefreshHint: 300, now, logger });
    const warnings = () => records.filter((r) => r.msg === 'ca: the root of trust expires soon; plan its rotation (anchorage authority root prepare)');
    const ca = mk();
    await ca.start();
    expect(warnings()).toHaveLength(0);
    const saved = clock;
    clock = (root.notAfter - 89 * 86400) * 1000;
    await ca.tick();
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ level: 40, daysLeft: 89 });
    clock = saved;
    await ca.close();
  });
});
