import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../ca/config.js';
import { startServer, type RunningServer } from '../ca/server.js';
import { Admin } from '../cli/client.js';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../common/log.js';
import { toPem } from '@anchorage/client/pem';
import { X509Bundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyJwtSvid } from '@anchorage/client/spiffe/jwtsvid';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { captureLogger } from '../test/helpers/log.js';
import * as grpc from '@grpc/grpc-js';
import { NodeAgent } from './agent.js';
import { EvictedError, fromGrpc } from './connection.js';
import { parseAgentConfig, type AgentConfig } from './config.js';
import { STATE_FILE } from './state.js';
import { startTestCa } from '../test/helpers/test-ca.js';
import { until } from '../test/helpers/until.js';

const TD = 'agent.test';
const td = TrustDomain.parse(TD);
let dir: string;
let serverCfgDoc: Record<string, unknown>;
let server: RunningServer | undefined;
let admin: Admin;
let bundlePem: string;
let agentCount = 0;

const sel = (uid: number) => [{ type: 'unix', value: `uid:${uid}` }];

async function startTheServer(): Promise<RunningServer> {
  const cfg = parseServerConfig(serverCfgDoc, 'test', dir);
  server = await startServer(cfg, { logger: silentLogger() });
  admin?.close();
  admin = new Admin(cfg.admin_socket);
  return server;
}

async function newToken(): Promise<string> {
  return (await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 })).token;
}

function agentConfig(extra: Record<string, unknown> = {}, dataDir?: string): AgentConfig {
  const d = dataDir ?? join(dir, `agent-${++agentCount}`);
  return parseAgentConfig(
    {
      trust_domain: TD,
      server_address: `127.0.0.1:${server!.agentPort}`,
      data_dir: d,
      socket_path: join(d, '..', `sock-${agentCount}`, 'api.sock'),
      trust_bundle_file: join(dir, 'bundle.pem'),
      ...extra,
    },
    'agent.yaml',
    dir,
  );
}


async function createEntry(spiffeId: string, parentId: string, uid: number, x509Ttl = 0): Promise<string> {
  const e = await admin.call('CreateEntry', {
    entry: { spiffe_id: spiffeId, parent_id: parentId, selectors: sel(uid), x509_svid_ttl: x509Ttl, jwt_svid_ttl: 0, hint: `h${uid}` },
  });
  return e.id;
}

function bundleOf(): X509Bundle {
  return new X509Bundle(td, server!.ca.bundle().x509.authorities());
}

async function thrown(p: Promise<unknown>): Promise<AnchorageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return err as AnchorageError;
  }
  throw new Error('expected an error');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-agent-'));
  serverCfgDoc = {
    trust_domain: TD,
    data_dir: join(dir, 'server'),
    admin_socket: 'admin.sock',
    bind_address: '127.0.0.1:0',
    key_manager: { type: 'disk' },
    ca: { ttl: '24h' },
    agent_svid_ttl: '1h',
  };
  await startTheServer();
  bundlePem = server!.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join('');
  writeFileSync(join(dir, 'bundle.pem'), bundlePem);
});

afterAll(async () => {
  admin?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('node agent', () => {
  it('attests with a join token, syncs its entries and mints SVIDs for keys it made', async () => {
    const token = await newToken();
    const agent = await NodeAgent.start({ config: agentConfig({ join_token: token }), logger: silentLogger() });
    try {
      expect(agent.spiffeId).toBe(`spiffe://${TD}/anchorage/agent/join_token/${token}`);
      const entryId = await createEntry(`spiffe://${TD}/web`, agent.spiffeId!, 1001);
      await until('the SVID', () => agent.cache.x509Identities(sel(1001)).length === 1, 10_000, 20);
      const [id] = agent.cache.x509Identities(sel(1001));
      expect(id!.spiffeId.toString()).toBe(`spiffe://${TD}/web`);
      expect(id!.hint).toBe('h1001');
      // The chain verifies against the bundle the agent serves, and the key is the leaf's.
      const verified = verifyX509Svid(id!.chain, (t) => (t.equals(td) ? agent.cache.bundle(TD)!.x509 : undefined));
      expect(verified.spiffeId.toString()).toBe(`spiffe://${TD}/web`);
      const pub = createPublicKey(createPrivateKey({ key: Buffer.from(id!.privateKey), format: 'der', type: 'pkcs8' }));
      expect(pub.export({ type: 'spki', format: 'der' }).equals(verified.chain[0]!.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
      // Another uid gets nothing; an entry for another agent is not synced here.
      expect(agent.cache.x509Identities(sel(1002))).toEqual([]);
      await createEntry(`spiffe://${TD}/other`, `spiffe://${TD}/anchorage/agent/join_token/${'0'.repeat(32)}`, 1001);
      await new Promise((r) => setTimeout(r, 300));
      expect(agent.cache.x509Identities(sel(1001)).map((i) => i.spiffeId.toString())).toEqual([`spiffe://${TD}/web`]);
      // Deleting the entry removes the identity at once (push, not poll).
      await admin.call('DeleteEntry', { id: entryId });
      await until('the identity to go', () => agent.cache.x509Identities(sel(1001)).length === 0, 10_000, 20);
    } finally {
      await agent.close();
    }
  });

  it('keeps its identity and bundles (never a workload key) in a 0700 data dir with a 0600 file; restarted with the server down, it mints again once the server is back, without attesting again', async () => {
    const token = await newToken();
    const cfg = agentConfig({ join_token: token });
    let agent = await NodeAgent.start({ config: cfg, logger: silentLogger() });
    await createEntry(`spiffe://${TD}/cached`, agent.spiffeId!, 2001);
    await until('the SVID', () => agent.cache.x509Identities(sel(2001)).length === 1, 10_000, 20);
    const before = agent.cache.x509Identities(sel(2001))[0]!;
    await agent.close();
    expect(statSync(cfg.data_dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(cfg.data_dir, STATE_FILE)).mode & 0o777).toBe(0o600);
    const text = readFileSync(join(cfg.data_dir, STATE_FILE), 'utf8');
    expect(Object.keys(JSON.parse(text)).sort()).toEqual(['agent', 'bundle', 'federated', 'trustDomain', 'version']);
    expect(text).not.toContain(Buffer.from(before.privateKey).toString('base64'));

    await server!.close();
    server = undefined;
    try {
      const { logger, records } = captureLogger();
      agent = await NodeAgent.start({ config: cfg, logger });
      expect(agent.spiffeId).toBe(`spiffe://${TD}/anchorage/agent/join_token/${token}`);
      expect(agent.cache.x509Identities(sel(2001))).toEqual([]);
      expect(agent.cache.bundle(TD)!.x509.size).toBe(1);
      await until('the unreachable warning', () => records.some((r) => r.msg === 'agent: server unreachable; serving cached svids'), 10_000, 20);
      // No entries until the first sync: no JWT-SVID either.
      expect(await agent.cache.jwtSvids(sel(2001), ['x'])).toEqual([]);
    } finally {
      await startTheServer();
    }
    // The server is back on a new port: the restarted agent would follow the
    // config; here the same agent reconnects once its address is right.
    await agent.close();
    const cfg2 = { ...cfg, server_address: `127.0.0.1:${server!.agentPort}` };
    agent = await NodeAgent.start({ config: cfg2, logger: silentLogger() });
    try {
      await until('a new SVID', () => agent.cache.x509Identities(sel(2001)).length === 1, 10_000, 20);
      expect(agent.spiffeId).toBe(`spiffe://${TD}/anchorage/agent/join_token/${token}`);
      const after = agent.cache.x509Identities(sel(2001))[0]!;
      expect(after.spiffeId.toString()).toBe(`spiffe://${TD}/cached`);
      expect(Buffer.from(after.privateKey).equals(Buffer.from(before.privateKey))).toBe(false);
    } finally {
      await agent.close();
    }
  });

  it('receives federated bundles set at the server at once, and loses them when deleted', async () => {
    const fed = await startTestCa('fed.test', dir);
    const agent = await NodeAgent.start({ config: agentConfig({ join_token: await newToken() }), logger: silentLogger() });
    try {
      await until('the sync', () => agent.synced, 10_000, 20);
      const changes: number[] = [];
      agent.cache.onChange(() => changes.push(1));
      await admin.call('SetFederatedBundle', { trust_domain: 'fed.test', document: fed.ca.bundle().marshal() });
      await until('the federated bundle', () => agent.cache.bundle('fed.test') !== undefined, 10_000, 20);
      expect(agent.cache.bundle('fed.test')!.x509.equals(fed.ca.bundle().x509)).toBe(true);
      expect(agent.cache.bundle('fed.test')!.jwt.equals(fed.ca.bundle().jwt)).toBe(true);
      expect(changes.length).toBeGreaterThan(0);
      // Trust domains are never merged: the own bundle is unchanged.
      expect(agent.cache.bundle(TD)!.x509.equals(bundleOf())).toBe(true);
      await admin.call('DeleteFederatedBundle', { trust_domain: 'fed.test' });
      await until('the federated bundle to go', () => agent.cache.bundle('fed.test') === undefined, 10_000, 20);
    } finally {
      await agent.close();
      await fed.close();
    }
  });

  it('caches JWT-SVIDs per audience until half-life', async () => {
    const agent = await NodeAgent.start({ config: agentConfig({ join_token: await newToken() }), logger: silentLogger() });
    try {
      await createEntry(`spiffe://${TD}/jwt`, agent.spiffeId!, 3001);
      await until('the entry', () => agent.synced && agent.cache.entries().length === 1, 10_000, 20);
      const [a] = await agent.cache.jwtSvids(sel(3001), ['svc-a']);
      const [a2] = await agent.cache.jwtSvids(sel(3001), ['svc-a']);
      const [b] = await agent.cache.jwtSvids(sel(3001), ['svc-b']);
      expect(a!.token).toBe(a2!.token);
      expect(b!.token).not.toBe(a!.token);
      const v = await verifyJwtSvid(a!.token, (t) => (t.equals(td) ? agent.cache.bundle(TD)!.jwt : undefined), ['svc-a']);
      expect(v.spiffeId.toString()).toBe(`spiffe://${TD}/jwt`);
      expect(agent.cache.jwtCacheSize).toBe(2);
      // Asking for an ID the caller does not have is refused.
      const err = await thrown(agent.cache.jwtSvids(sel(3001), ['svc-a'], SpiffeId.parse(`spiffe://${TD}/nope`)));
      expect(err.code).toBe('permission_denied');
    } finally {
      await agent.close();
    }
  });

  it('rotates workload SVIDs at half-life with ±10 % jitter, keeping the key private to the agent', async () => {
    const agent = await NodeAgent.start({ config: agentConfig({ join_token: await newToken() }), logger: silentLogger() });
    try {
      await createEntry(`spiffe://${TD}/short`, agent.spiffeId!, 4001, 8);
      await until('the SVID', () => agent.cache.x509Identities(sel(4001)).length === 1, 10_000, 20);
      const obtained = Date.now() / 1000;
      const first = agent.cache.x509Identities(sel(4001))[0]!;
      const firstLeaf = new X509Certificate(first.chain[0]!);
      const notAfter = Date.parse(firstLeaf.validTo) / 1000;
      const svid = agent.cache.svids().find((s) => Buffer.from(s.chain[0]!).equals(Buffer.from(first.chain[0]!)))!;
      // Half-life of what is left (the server backdates notBefore), ±10 %;
      // the agent counts in whole seconds, hence the 1.5 s slack.
      const half = (notAfter - obtained) / 2;
      expect(svid.rotateAt - obtained).toBeGreaterThanOrEqual(half * 0.9 - 1.5);
      expect(svid.rotateAt - obtained).toBeLessThanOrEqual(half * 1.1 + 1.5);
      await until('rotation', () => !Buffer.from(agent.cache.x509Identities(sel(4001))[0]?.chain[0] ?? []).equals(Buffer.from(first.chain[0]!)), 20_000, 20);
      const rotated = Date.now() / 1000;
      expect(rotated - obtained).toBeGreaterThanOrEqual(half * 0.9 - 1.5);
      const second = agent.cache.x509Identities(sel(4001))[0]!;
      expect(new X509Certificate(second.chain[0]!).serialNumber).not.toBe(firstLeaf.serialNumber);
      expect(Buffer.from(second.privateKey).equals(Buffer.from(first.privateKey))).toBe(false);
      // The old one was replaced before it expired.
      expect(rotated).toBeLessThan(notAfter);
      // and exactly once so far: the new one is not due yet.
      await new Promise((r) => setTimeout(r, 500));
      expect(Buffer.from(agent.cache.x509Identities(sel(4001))[0]!.chain[0]!).equals(Buffer.from(second.chain[0]!))).toBe(true);
    } finally {
      await agent.close();
    }
  }, 30_000);

  it('attests again with a new token from its config after eviction', async () => {
    const first = await newToken();
    const cfg = agentConfig({ join_token: first });
    let token = first;
    const { logger, records } = captureLogger();
    const agent = await NodeAgent.start({ config: cfg, logger, joinToken: () => token });
    try {
      const oldId = agent.spiffeId!;
      await createEntry(`spiffe://${TD}/evicted-workload`, oldId, 6001);
      await until('the SVID', () => agent.cache.x509Identities(sel(6001)).length === 1, 10_000, 20);
      await admin.call('EvictAgent', { spiffe_id: oldId });
      await until('eviction noticed', () => records.some((r) => r.msg === 'agent: evicted by the server; dropped every workload identity it held; attesting again with a new join token'), 10_000, 20);
      // Nothing obtained with the evicted identity is served or kept on disk.
      expect(agent.cache.x509Identities(sel(6001))).toEqual([]);
      expect(agent.cache.entries()).toEqual([]);
      const onDisk = JSON.parse(readFileSync(join(cfg.data_dir, STATE_FILE), 'utf8'));
      expect(Object.keys(onDisk).sort()).toEqual(['bundle', 'federated', 'trustDomain', 'version']);
      // The spent token is not tried again.
      await until('the spent-token message', () => records.some((r) => String(r.err ?? '').includes('was already used by this agent')), 10_000, 20);
      token = await newToken();
      await until('re-attestation', () => agent.spiffeId === `spiffe://${TD}/anchorage/agent/join_token/${token}`, 40_000, 20);
      expect(agent.spiffeId).not.toBe(oldId);
    } finally {
      await agent.close();
    }
  }, 60_000);

  it('evicted while it was down: drops its identity once the server says so', async () => {
    const cfg = agentConfig({ join_token: await newToken() });
    let agent = await NodeAgent.start({ config: cfg, logger: silentLogger() });
    const id = agent.spiffeId!;
    await createEntry(`spiffe://${TD}/evicted-offline`, id, 6101);
    await until('the SVID', () => agent.cache.x509Identities(sel(6101)).length === 1, 10_000, 20);
    await agent.close();
    await admin.call('EvictAgent', { spiffe_id: id });
    const { logger, records } = captureLogger();
    agent = await NodeAgent.start({ config: cfg, logger });
    try {
      await until('eviction', () => records.some((r) => r.msg === 'agent: evicted by the server; dropped every workload identity it held; attesting again with a new join token'), 10_000, 20);
      expect(agent.cache.x509Identities(sel(6101))).toEqual([]);
      const onDisk = JSON.parse(readFileSync(join(cfg.data_dir, STATE_FILE), 'utf8'));
      expect(onDisk.agent).toBeUndefined();
      // Its bundle stays, to verify the server when it attests again.
      expect(onDisk.bundle).toBeTypeOf('string');
    } finally {
      await agent.close();
    }
  });

  it('tells eviction apart from every other refusal by the server', () => {
    const evicted = fromGrpc({ code: grpc.status.PERMISSION_DENIED, details: `agent api: agent spiffe://${TD}/anchorage/agent/x has been evicted` }, 'sync stream');
    expect(evicted).toBeInstanceOf(EvictedError);
    expect((evicted as EvictedError).agentId).toBe(`spiffe://${TD}/anchorage/agent/x`);
    expect(evicted.message).toBe(`agent: sync stream: agent api: agent spiffe://${TD}/anchorage/agent/x has been evicted`);
    for (const [code, details] of [
      [grpc.status.PERMISSION_DENIED, `agent api: the svid presented by spiffe://${TD}/anchorage/agent/x has been superseded`],
      [grpc.status.PERMISSION_DENIED, `agent api: spiffe://${TD}/anchorage/agent/x is not an attested agent`],
      [grpc.status.UNAVAILABLE, `agent api: agent spiffe://${TD}/anchorage/agent/x has been evicted`],
      [grpc.status.UNAVAILABLE, 'No connection established'],
    ] as const) {
      expect(fromGrpc({ code, details }, 'sync stream'), details).not.toBeInstanceOf(EvictedError);
    }
  });

  it('renews its own SVID at half-life and keeps syncing with the new one', async () => {
    await server!.close();
    serverCfgDoc = { ...serverCfgDoc, agent_svid_ttl: '4s' };
    await startTheServer();
    try {
      const agent = await NodeAgent.start({ config: agentConfig({ join_token: await newToken() }), logger: silentLogger() });
      try {
        const path = join(agent.config.data_dir, STATE_FILE);
        const firstChain = JSON.parse(readFileSync(path, 'utf8')).agent.chain[0] as string;
        await until('renewal', () => JSON.parse(readFileSync(path, 'utf8')).agent.chain[0] !== firstChain, 15_000, 20);
        // Still authorized with the renewed SVID: a new entry arrives.
        await createEntry(`spiffe://${TD}/after-renewal`, agent.spiffeId!, 5001);
        await until('an SVID after renewal', () => agent.cache.x509Identities(sel(5001)).length === 1, 10_000, 20);
        const listed = await admin.call('GetAgent', { spiffe_id: agent.spiffeId! });
        const renewed = new X509Certificate(Buffer.from(JSON.parse(readFileSync(path, 'utf8')).agent.chain[0], 'base64'));
        expect(listed.cert_serial).toBe(renewed.serialNumber.replace(/^0+/, ''));
      } finally {
        await agent.close();
      }
    } finally {
      await server!.close();
      serverCfgDoc = { ...serverCfgDoc, agent_svid_ttl: '1h' };
      await startTheServer();
    }
  }, 30_000);

  it('refuses to start misconfigured, with one clear line', async () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{}, 'failed_precondition', 'no valid agent SVID and no join_token in agent.yaml'],
      [{ join_token: 'f'.repeat(32) }, 'permission_denied', 'join token is unknown, used or expired'],
      [{ join_token: await newToken(), trust_bundle_file: join(dir, 'missing.pem') }, 'failed_precondition', 'cannot read trust_bundle_file'],
      [{ join_token: await newToken(), trust_bundle_file: undefined }, 'failed_precondition', 'no trust bundle to verify the server with'],
    ];
    writeFileSync(join(dir, 'garbage.pem'), 'not a bundle');
    cases.push([{ join_token: await newToken(), trust_bundle_file: join(dir, 'garbage.pem') }, 'failed_precondition', 'bundle: no PEM certificates found']);
    for (const [extra, code, message] of cases) {
      const err = await thrown(NodeAgent.start({ config: agentConfig(extra), logger: silentLogger() }));
      expect(err.code, message).toBe(code);
      expect(err.message).toContain(message);
    }
  });

  it('refuses a state file that is a link (it could feed the agent keys and bundles of someone else)', async () => {
    const cfg = agentConfig({ join_token: await newToken() });
    mkdirSync(cfg.data_dir, { mode: 0o700 });
    writeFileSync(join(dir, 'elsewhere.json'), '{}');
    symlinkSync(join(dir, 'elsewhere.json'), join(cfg.data_dir, STATE_FILE));
    const err = await thrown(NodeAgent.start({ config: cfg, logger: silentLogger() }));
    expect(err.code).toBe('failed_precondition');
    expect(err.message).toBe(`agent: ${join(cfg.data_dir, STATE_FILE)} is not a regular file owned by uid ${process.getuid!()}; move it away to start afresh`);
    // Refused before the lock is kept or anything is written.
    expect(readdirSync(cfg.data_dir)).toEqual([STATE_FILE]);
  });

  it('does not trust a server whose certificate does not chain to the bootstrap bundle', async () => {
    const other = mkdtempSync(join(tmpdir(), 'anchorage-agent-other-'));
    const otherServer = await startServer(
      parseServerConfig({ trust_domain: TD, data_dir: other, admin_socket: 'admin.sock', bind_address: '127.0.0.1:0', key_manager: { type: 'memory' } }, 'test', other),
      { logger: silentLogger() },
    );
    try {
      // Our bundle file names the first server's root; the impostor has its own.
      const { logger, records } = captureLogger();
      const agent = await NodeAgent.start({
        config: { ...agentConfig({ join_token: await newToken() }), server_address: `127.0.0.1:${otherServer.agentPort}` },
        logger,
      });
      try {
        expect(agent.spiffeId).toBeUndefined();
        expect(records.some((r) => r.msg === 'agent: server unreachable for attestation; retrying in the background')).toBe(true);
      } finally {
        await agent.close();
      }
    } finally {
      await otherServer.close();
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('bootstraps with insecure_bootstrap and then trusts the bundle it received', async () => {
    const { logger, records } = captureLogger();
    const agent = await NodeAgent.start({
      config: agentConfig({ join_token: await newToken(), trust_bundle_file: undefined, insecure_bootstrap: true }),
      logger,
    });
    try {
      expect(agent.spiffeId).toMatch(/^spiffe:\/\/agent\.test\/anchorage\/agent\/join_token\/[0-9a-f]{32}$/);
      expect(records.some((r) => r.msg === 'agent: insecure_bootstrap: the server is not verified for this first attestation')).toBe(true);
      expect(agent.cache.bundle(TD)!.x509.equals(bundleOf())).toBe(true);
      await until('the sync', () => agent.synced, 10_000, 20);
    } finally {
      await agent.close();
    }
  });
});
