// Several servers on one datastore (the CA part of issue 16): each CaManager
// owns its intermediates and JWT keys under its server id, roots are shared,
// the bundle holds every server's JWT keys, the tainted sets every server's
// tainted authorities, and a server reloads what another one changed.
import { generateKeyPairSync } from 'node:crypto';
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

const token = useSoftHsmToken('servers');
const td = TrustDomain.parse('servers.test');
const workload = SpiffeId.parse('spiffe://servers.test/w');
let dir: string;
let km: Pkcs11KeyManager;
let ds: SqliteDataStore;
let a: CaManager;
let b: CaManager;

async function server(serverId: string): Promise<CaManager> {
  const root = await loadRootOfTrust(
    { type: 'self-signed', ttl: 365 * 86400 },
    { trustDomain: td, datastore: ds, keyManager: km, now: Date.now, logger: silentLogger(), defaultKeyType: 'ec-p256' },
  );
  const ca = new CaManager({
    trustDomain: td,
    keyManager: km,
    root,
    datastore: ds,
    caTtl: 86400,
    keyType: 'ec-p256',
    bundleRefreshHint: 300,
    logger: silentLogger(),
    serverId,
    rootRotation: { keyManager: km, keyType: 'ec-p256', ttl: 365 * 86400, labelBase: 'anchorage-root-servers.test' },
  });
  await ca.start();
  return ca;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-servers-'));
  km = await Pkcs11KeyManager.open({ module: token.module, tokenLabel: token.label, pin: token.pin, logger: silentLogger() });
  ds = SqliteDataStore.open(join(dir, 'ds.sqlite3'));
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await ds?.close();
  await km?.close();
  rmSync(dir, { recursive: true, force: true });
  token.cleanup();
});

const x509Of = (ca: CaManager) => new Minter({ ca, x509SvidTtl: 600, jwtSvidTtl: 600 });
async function mintX509(ca: CaManager): Promise<Uint8Array[]> {
  const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
  return (await x509Of(ca).mintX509({ spiffeId: workload, spki })).chain;
}

describe('two servers sharing one datastore', () => {
  it('a lone server adopts the rows made before servers had ids; a second one makes its own', async () => {
    const lone = await server('');
    const before = (await ds.listJournal()).filter((r) => r.kind !== 'root').map((r) => r.id);
    await lone.close();
    a = await server('server-a');
    const rows = await ds.listJournal();
    expect(rows.filter((r) => before.includes(r.id)).every((r) => r.serverId === 'server-a')).toBe(true);
    expect(a.activeX509().row.id).toBe(before.find((id) => id.startsWith('x509-')));
    b = await server('server-b');
    expect(b.activeX509().row.id).not.toBe(a.activeX509().row.id);
    expect(b.activeJwt().kid).not.toBe(a.activeJwt().kid);
    expect((await ds.listJournal()).filter((r) => r.kind === 'x509' && r.status === 'active').map((r) => r.serverId).sort()).toEqual(['server-a', 'server-b']);
  });

  it('publishes every server\'s JWT keys and one root; SVIDs of either verify against either\'s bundle', async () => {
    await a.reload();
    const bundle = a.bundle();
    expect([...bundle.jwt.keys().keys()].sort()).toEqual([a.activeJwt().kid, b.activeJwt().kid].sort());
    expect(b.bundle().sequence).toBe(bundle.sequence);
    expect(bundle.x509.size).toBe(1);
    const jwt = await x509Of(b).mintJwt({ spiffeId: workload, audience: ['svc'] });
    const jwtBundle = new JwtBundle(td, bundle.jwt.keys());
    expect((await verifyJwtSvid(jwt.token, () => jwtBundle, ['svc'])).spiffeId.toString()).toBe(workload.toString());
    const x509Bundle = new X509Bundle(td, bundle.x509.authorities());
    for (const ca of [a, b]) expect(verifyX509Svid(await mintX509(ca), () => x509Bundle).spiffeId.toString()).toBe(workload.toString());
  });

  it('refuses to act on another server\'s authority, naming the owner', async () => {
    const err = (await a.taintAuthority('x509', b.activeX509().row.id).catch((e: unknown) => e)) as AnchorageError;
    expect(err).toBeInstanceOf(AnchorageError);
    expect(err.code).toBe('failed_precondition');
    expect(err.message).toContain('belongs to server server-b');
  });

  it('tells every server of a taint made on one (after the other reloads), and announces its own changes', async () => {
    const announced: unknown[] = [];
    b.on('journal', () => announced.push(1));
    const out = await b.taintAuthority('x509', undefined);
    expect(announced.length).toBeGreaterThan(0);
    const fp = certFingerprint(out.row.certDer!);
    expect(b.taintedAuthorities().x509).toEqual([fp]);
    expect(a.taintedAuthorities().x509).toEqual([]);
    const taintEvents: unknown[] = [];
    a.on('taint', (t) => taintEvents.push(t));
    await a.reload();
    expect(a.taintedAuthorities().x509).toEqual([fp]);
    expect(taintEvents).toHaveLength(1);
  });

  it('a root activated on one server is the signer of the other\'s next intermediate once it reloads', async () => {
    const root = (await a.prepareAuthority('root')).row;
    await a.activateAuthority('root', root.id);
    await b.reload();
    expect(b.rootOfTrust().id).toBe(root.id);
    const next = await b.prepareAuthority('x509');
    expect(next.row).toMatchObject({ issuerId: root.id, serverId: 'server-b' });
  });

  it('will not withdraw a root while another server\'s intermediate under it is untainted', async () => {
    // server-a's first intermediate: tainted and old after a's taint; but a's active one is still under "root".
    await a.prepareAuthority('x509');
    await a.activateAuthority('x509', undefined);
    const old = (await ds.listJournal()).filter((r) => r.kind === 'x509' && r.issuerId === 'root' && r.serverId === 'server-a');
    for (const r of old.filter((x) => !x.taintedAt)) await a.taintAuthority('x509', r.id);
    const err = (await a.revokeAuthority('root', 'root').catch((e: unknown) => e)) as AnchorageError;
    expect(err.message).toContain('(server server-b)');
    expect(err.message).toContain('anchorage authority x509 prepare');
  });
});
