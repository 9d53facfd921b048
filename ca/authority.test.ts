// The authority lifecycle on a real SoftHSM2 token and SQLite: prepare,
// activate, taint and revoke of intermediates, JWT keys and roots, with the
// refusals the issue names and the root gate on agents' acknowledged bundle.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { JwtBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyJwtSvid } from '@anchorage/client/spiffe/jwtsvid';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { silentLogger } from '../common/log.js';
import { useSoftHsmToken } from '../test/helpers/softhsm.js';
import { SqliteDataStore } from './datastore/sqlite/index.js';
import { Pkcs11KeyManager } from './keymanager/pkcs11/index.js';
import { CaManager, certFingerprint } from './manager.js';
import { Minter } from './minter.js';
import { loadRootOfTrust } from './root.js';
import type { AuditEvent } from './audit/event.js';

const token = useSoftHsmToken('authority');
const td = TrustDomain.parse('authority.test');
const workload = SpiffeId.parse('spiffe://authority.test/workload');
let dir: string;
let km: Pkcs11KeyManager;
let ds: SqliteDataStore;
let ca: CaManager;
let minter: Minter;
const audit: AuditEvent[] = [];
const T0 = Date.UTC(2026, 11, 1);
let clock = T0;
const now = () => clock;

async function newManager(): Promise<CaManager> {
  const root = await loadRootOfTrust(
    { type: 'self-signed', ttl: 365 * 86400 },
    { trustDomain: td, datastore: ds, keyManager: km, now, logger: silentLogger(), defaultKeyType: 'ec-p256' },
  );
  const m = new CaManager({
    trustDomain: td,
    keyManager: km,
    root,
    datastore: ds,
    caTtl: 86400,
    keyType: 'ec-p256',
    bundleRefreshHint: 300,
    now,
    logger: silentLogger(),
    rootRotation: { keyManager: km, keyType: 'ec-p256', ttl: 365 * 86400, labelBase: 'anchorage-root-authority.test' },
    audit: { record: async (e) => void audit.push(e) },
  });
  await m.start();
  return m;
}

async function rejection(p: Promise<unknown>): Promise<AnchorageError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AnchorageError);
  return err as AnchorageError;
}

async function mintX509(): Promise<Uint8Array[]> {
  const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
  return (await minter.mintX509({ spiffeId: workload, spki })).chain;
}

function verifiesNow(chain: Uint8Array[]): boolean {
  const bundle = new X509Bundle(td, ca.bundle().x509.authorities());
  try {
    verifyX509Svid(chain, (t) => (t.equals(td) ? bundle : undefined), new Date(clock));
    return true;
  } catch {
    return false;
  }
}

async function jwtVerifiesNow(token: string): Promise<boolean> {
  const bundle = new JwtBundle(td, ca.bundle().jwt.keys());
  try {
    await verifyJwtSvid(token, (t) => (t.equals(td) ? bundle : undefined), ['svc'], new Date(clock));
    return true;
  } catch {
    return false;
  }
}

const row = async (id: string) => (await ds.listJournal()).find((r) => r.id === id)!;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-authority-'));
  km = await Pkcs11KeyManager.open({ module: token.module, tokenLabel: token.label, pin: token.pin, logger: silentLogger() });
  ds = SqliteDataStore.open(join(dir, 'ds.sqlite3'));
  ca = await newManager();
  minter = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 3600, now });
});

afterAll(async () => {
  await ca?.close();
  await ds?.close();
  await km?.close();
  rmSync(dir, { recursive: true, force: true });
  token.cleanup();
});

describe('x509 authorities and roots', () => {
  let first: string; // the intermediate made at start, under root "root"
  let second: string;
  let oldSvid: Uint8Array[];

  it('prepares an intermediate under the active root, once', async () => {
    first = ca.activeX509().row.id;
    oldSvid = await mintX509();
    const out = await ca.prepareAuthority('x509');
    second = out.row.id;
    expect(out.row).toMatchObject({ kind: 'x509', status: 'prepared', issuerId: 'root' });
    expect(ca.activeX509().row.id).toBe(first);
    const again = await rejection(ca.prepareAuthority('x509'));
    expect(again.code).toBe('failed_precondition');
    expect(again.message).toContain(`x509 authority ${second} is already prepared`);
    expect(audit.at(-1)).toMatchObject({ type: 'authority.prepared', authority: second });
  });

  it('activates it: new SVIDs are signed by it; the old one stays trusted', async () => {
    const out = await ca.activateAuthority('x509', undefined);
    expect(out.row).toMatchObject({ id: second, status: 'active' });
    expect(out.also.map((r) => [r.id, r.status])).toEqual([[first, 'old']]);
    const svid = await mintX509();
    expect(certFingerprint(svid[1]!)).toBe(certFingerprint((await row(second)).certDer!));
    expect(verifiesNow(oldSvid)).toBe(true);
    expect((await rejection(ca.activateAuthority('x509', first))).message).toContain('was replaced before');
  });

  it('refuses to revoke what is active or not tainted, and unknown ids', async () => {
    expect((await rejection(ca.revokeAuthority('x509', second))).message).toContain('is active');
    const untainted = await rejection(ca.revokeAuthority('x509', first));
    expect(untainted.code).toBe('failed_precondition');
    expect(untainted.message).toContain('is not tainted');
    expect((await rejection(ca.revokeAuthority('x509', 'x509-nope'))).code).toBe('not_found');
    expect((await rejection(ca.revokeAuthority('x509', undefined))).code).toBe('invalid_argument');
    expect((await rejection(ca.taintAuthority('root', undefined))).code).toBe('invalid_argument');
  });

  it('taints the old one: agents are told its fingerprint at once', async () => {
    const events: unknown[] = [];
    ca.on('taint', (t) => events.push(t));
    const out = await ca.taintAuthority('x509', first);
    expect(out.row.taintedAt).toBe(Math.floor(clock / 1000));
    expect(ca.taintedAuthorities().x509).toEqual([certFingerprint((await row(first)).certDer!)]);
    expect(events).toHaveLength(1);
    expect(verifiesNow(oldSvid)).toBe(true); // tainted is still trusted
    expect((await rejection(ca.taintAuthority('x509', first))).message).toContain('was tainted at');
    expect((await rejection(ca.activateAuthority('x509', first))).message).toContain('was tainted');
  });

  it('refuses to revoke an intermediate whose root is active: trust is withdrawn by root', async () => {
    const err = await rejection(ca.revokeAuthority('x509', first));
    expect(err.code).toBe('failed_precondition');
    expect(err.message).toContain('means withdrawing root root');
    expect(err.message).toContain('anchorage authority root prepare');
  });

  let newRoot: string;
  it('prepares a root: published beside the old one, recorded with its first sequence', async () => {
    const before = ca.bundle().sequence!;
    const out = await ca.prepareAuthority('root');
    newRoot = out.row.id;
    expect(out.row).toMatchObject({ kind: 'root', status: 'prepared', publishedSequence: before + 1 });
    expect(ca.bundle().x509.size).toBe(2);
    expect(new X509Certificate(out.row.certDer!).subject).toContain(`serialNumber=${newRoot}`);
  });

  it('gates root activation on every agent holding the bundle with it', async () => {
    const agent = {
      spiffeId: 'spiffe://authority.test/anchorage/agent/join_token/a1',
      attestationType: 'join_token',
      certSerial: '01',
      certNotAfter: Math.floor(clock / 1000) + 3600,
      selectors: [],
      evicted: false,
      createdAt: 1,
      updatedAt: 1,
    };
    await ds.putAgent(agent);
    await ds.reportAgentState(agent.spiffeId, { seenAt: 1, bundleSequence: ca.bundle().sequence! - 1, clockSkewMs: 0 });
    const err = await rejection(ca.activateAuthority('root', undefined));
    expect(err.code).toBe('failed_precondition');
    expect(err.message).toContain(agent.spiffeId);
    await ds.reportAgentState(agent.spiffeId, { seenAt: 2, bundleSequence: ca.bundle().sequence!, clockSkewMs: 0 });
    const out = await ca.activateAuthority('root', undefined);
    expect(out.row).toMatchObject({ id: newRoot, status: 'active' });
    expect(out.message).toContain(`the active x509 authority ${second} still chains to root`);
    expect(ca.rootOfTrust().id).toBe(newRoot);
  });

  let third: string;
  it('moves the intermediate under the new root, then revokes the old root with its tainted intermediates', async () => {
    third = (await ca.prepareAuthority('x509')).row.id;
    expect((await row(third)).issuerId).toBe(newRoot);
    // The second intermediate (old root) is still untainted: revoking the first (same root) is refused.
    await ca.activateAuthority('x509', third);
    const blocked = await rejection(ca.revokeAuthority('x509', first));
    expect(blocked.message).toContain(`x509 authority ${second} chains to root`);
    await ca.taintAuthority('x509', second);
    // The agent still holds a bundle from before: the gate holds revocation back, --force goes on.
    const seq = ca.bundle().sequence!;
    const agentId = 'spiffe://authority.test/anchorage/agent/join_token/a1';
    await ds.reportAgentState(agentId, { seenAt: 3, bundleSequence: 1, clockSkewMs: 0 });
    expect((await rejection(ca.revokeAuthority('x509', first))).message).toContain(agentId);
    await ds.reportAgentState(agentId, { seenAt: 4, bundleSequence: seq, clockSkewMs: 0 });
    const out = await ca.revokeAuthority('x509', first);
    expect(out.row).toMatchObject({ id: first });
    expect(out.row.revokedAt).toBe(Math.floor(clock / 1000));
    expect(out.also.map((r) => r.id).sort()).toEqual(['root', second].sort());
    expect(ca.bundle().x509.size).toBe(1);
    expect(ca.bundle().x509.authorities()[0]).toEqual((await row(newRoot)).certDer);
    // An SVID of the revoked intermediate no longer verifies; a new one does.
    expect(verifiesNow(oldSvid)).toBe(false);
    expect(verifiesNow(await mintX509())).toBe(true);
    expect(await km.getKey((await row(first)).keyId)).toBeUndefined();
    expect((await rejection(ca.revokeAuthority('x509', first))).message).toContain('already revoked');
  });

  it('survives a restart on the rotated root', async () => {
    await ca.close();
    const seq = ca.bundle().sequence;
    ca = await newManager();
    minter = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 3600, now });
    expect(ca.rootOfTrust().id).toBe(newRoot);
    expect(ca.activeX509().row.id).toBe(third);
    expect(ca.bundle().sequence).toBe(seq);
    expect(verifiesNow(await mintX509())).toBe(true);
  });

  it('refuses to revoke the active root', async () => {
    expect((await rejection(ca.revokeAuthority('root', newRoot))).message).toContain('is the active root');
  });
});

describe('JWT keys', () => {
  it('taints the active key by activating a successor made on the spot; revoke removes it from the bundle', async () => {
    const before = ca.activeJwt().row.id;
    const oldToken = (await minter.mintJwt({ spiffeId: workload, audience: ['svc'] })).token;
    const out = await ca.taintAuthority('jwt', undefined);
    expect(out.row).toMatchObject({ id: before, status: 'old' });
    expect(out.also).toHaveLength(1);
    expect(ca.activeJwt().row.id).toBe(out.also[0]!.id);
    expect(ca.taintedAuthorities().jwt).toEqual([out.row.kid]);
    expect(await jwtVerifiesNow(oldToken)).toBe(true);
    const next = ca.activeJwt().row.id;
    expect((await rejection(ca.revokeAuthority('jwt', next))).message).toContain('is active');
    await ca.revokeAuthority('jwt', before);
    expect(ca.bundle().jwt.keys().has(out.row.kid!)).toBe(false);
    expect(await jwtVerifiesNow(oldToken)).toBe(false);
    expect(await jwtVerifiesNow((await minter.mintJwt({ spiffeId: workload, audience: ['svc'] })).token)).toBe(true);
    expect(audit.filter((e) => e.type === 'authority.revoked').map((e) => e.authority)).toContain(before);
  });
});
