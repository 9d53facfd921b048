import { X509Certificate } from 'node:crypto';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin } from '../../cli/client.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { SpiffeWorkloadAPIClient } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import { X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { splitDer } from '../helpers/test-ca.js';
import { cli, freePort, startAgentProcess, startServerProcess, tempDir, writeFile, type AnchorageProcess } from '../helpers/process.js';
import { createSoftHsmToken, type SoftHsmToken, writePkcs11ServerConfig } from '../helpers/softhsm.js';
import { runWorkloadClient } from '../helpers/workload.js';
import { lacks } from '../helpers/needs.js';

/**
 * The agent as operators run it: `anchorage server run` on a SoftHSM2 token,
 * `anchorage agent run` attesting with a join token, workloads as separate
 * processes under different uids on the real Unix socket.
 */

const TD = 'agent-it.test';
const td = TrustDomain.parse(TD);
const NOBODY_UID = 65534;
const STRANGER_UID = 12345;
const isRoot = process.getuid?.() === 0;

let hsm: SoftHsmToken;
let tmp: { dir: string; cleanup: () => void };
let env: NodeJS.ProcessEnv;
let port: number;
let serverConfig: string;
let adminSocket: string;
let agentConfig: string;
let workloadSocket: string;
let server: AnchorageProcess | undefined;
let agent: AnchorageProcess | undefined;
let agentId: string;
const streams: grpc.ClientReadableStream<unknown>[] = [];
const clients: SpiffeWorkloadAPIClient[] = [];

function admin<T>(fn: (a: Admin) => Promise<T>): Promise<T> {
  const a = new Admin(adminSocket);
  return fn(a).finally(() => a.close());
}

function workloadClient(): SpiffeWorkloadAPIClient {
  const c = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${workloadSocket}`, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
}

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

/** An open FetchX509SVID stream from this process (uid 0), collecting every message. */
function openStream() {
  const messages: X509SVIDResponse__Output[] = [];
  let error: grpc.ServiceError | undefined;
  const call = workloadClient().FetchX509SVID({}, header());
  streams.push(call);
  call.on('data', (m: X509SVIDResponse__Output) => messages.push(m));
  call.on('error', (e: grpc.ServiceError) => (error = e));
  return {
    messages,
    error: () => error,
    async next(count: number, ms: number): Promise<X509SVIDResponse__Output> {
      const end = Date.now() + ms;
      while (messages.length < count) {
        if (error) throw new Error(`stream ended: ${error.code} ${error.details}`);
        if (Date.now() > end) throw new Error(`no message #${count} within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return messages[count - 1]!;
    },
  };
}

function leafOf(m: X509SVIDResponse__Output, id: string): X509Certificate {
  const svid = m.svids.find((s) => s.spiffe_id === id);
  if (!svid) throw new Error(`no svid ${id} in ${m.svids.map((s) => s.spiffe_id).join(', ')}`);
  return new X509Certificate(splitDer(svid.x509_svid)[0]!);
}

/** Verifies every SVID of a message against the bundle carried in the same message. */
function verifyMessage(m: X509SVIDResponse__Output): void {
  for (const s of m.svids) {
    const bundle = new X509Bundle(td, splitDer(s.bundle));
    expect(verifyX509Svid(splitDer(s.x509_svid), (t) => (t.equals(td) ? bundle : undefined)).spiffeId.toString()).toBe(s.spiffe_id);
  }
}

async function startServer(): Promise<void> {
  server = await startServerProcess(serverConfig, adminSocket, env);
}

async function startAgent(): Promise<void> {
  agent = await startAgentProcess(agentConfig, workloadSocket, env);
}

beforeAll(async () => {
  hsm = createSoftHsmToken('anchorage', '2468');
  tmp = tempDir('anchorage-agent-it-');
  // Workloads of any uid must reach the socket below this directory.
  chmodSync(tmp.dir, 0o755);
  env = { ...hsm.env };
  port = await freePort();
  adminSocket = join(tmp.dir, 'admin.sock');
  workloadSocket = join(tmp.dir, 'public', 'api.sock');
  serverConfig = writePkcs11ServerConfig(hsm, { dir: tmp.dir, trustDomain: TD, socket: adminSocket, dataDir: join(tmp.dir, 'server'), port, extra: `ca:
  ttl: 24h
x509_svid_ttl: 1h
` });
  await startServer();
  const token = await admin((a) => a.call('CreateJoinToken', { spiffe_id: '', ttl: 600 }));
  writeFile(join(tmp.dir, 'bundle.pem'), cli(['bundle', 'show', '--format', 'pem', '--socket', adminSocket], env).stdout);
  agentConfig = writeFile(
    join(tmp.dir, 'agent.yaml'),
    `trust_domain: ${TD}
server_address: 127.0.0.1:${port}
data_dir: ${join(tmp.dir, 'agent')}
socket_path: ${workloadSocket}
join_token: ${token.token}
trust_bundle_file: ${join(tmp.dir, 'bundle.pem')}
`,
  );
  await startAgent();
  agentId = `spiffe://${TD}/anchorage/agent/join_token/${token.token}`;
  for (const [path, uid, ttl] of [
    ['/root-workload', 0, 30],
    ['/nobody-workload', NOBODY_UID, 0],
  ] as const) {
    await admin((a) =>
      a.call('CreateEntry', {
        entry: { spiffe_id: `spiffe://${TD}${path}`, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }], x509_svid_ttl: ttl },
      }),
    );
  }
}, 60_000);

afterAll(async () => {
  for (const s of streams) s.cancel();
  for (const c of clients) c.close();
  await agent?.kill('SIGTERM');
  await server?.kill('SIGTERM');
  tmp?.cleanup();
  hsm?.cleanup();
});

describe('anchorage agent run', () => {
  it('attested with its join token, keeps a 0700 data dir, and the server lists it', async () => {
    expect(statSync(join(tmp.dir, 'agent')).mode & 0o777).toBe(0o700);
    expect(statSync(join(tmp.dir, 'agent', 'agent-state.json')).mode & 0o777).toBe(0o600);
    expect(statSync(workloadSocket).mode & 0o777).toBe(0o777);
    const agents = await admin((a) => a.call('ListAgents', {}));
    expect(agents.agents.map((x) => x.spiffe_id)).toEqual([agentId]);
    // Private keys are never logged.
    expect(agent!.log()).not.toMatch(/BEGIN (EC )?PRIVATE KEY/);
  });

  it('answers bad invocations with exit 2 and bad configs with exit 1, one line each', () => {
    const noConfig = cli(['agent', 'run'], env);
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toContain('anchorage: --config is required');
    const bad = writeFile(join(tmp.dir, 'bad-agent.yaml'), `trust_domain: ${TD}\nserver_address: nowhere\ndata_dir: x\n`);
    const r = cli(['agent', 'run', '-c', bad], env);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`anchorage: config: ${bad}: server_address: must be host:port`);
    // A second agent on the same data dir is refused while the first runs.
    const twice = cli(['agent', 'run', '-c', agentConfig], env);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/^anchorage: agent: another agent \(pid \d+\) is using /);
  });
});

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('workloads under different uids', () => {
  it('root and nobody each get only their own SVID; a uid without an entry gets PERMISSION_DENIED', async () => {
    const rootRes = await runWorkloadClient(0, { socket: workloadSocket, method: 'FetchX509SVID' });
    expect(rootRes.ok).toBe(true);
    expect(rootRes.response!.svids!.map((s) => s.spiffe_id)).toEqual([`spiffe://${TD}/root-workload`]);
    const nobodyRes = await runWorkloadClient(NOBODY_UID, { socket: workloadSocket, method: 'FetchX509SVID' });
    expect(nobodyRes.ok).toBe(true);
    expect(nobodyRes.response!.svids!.map((s) => s.spiffe_id)).toEqual([`spiffe://${TD}/nobody-workload`]);
    const stranger = await runWorkloadClient(STRANGER_UID, { socket: workloadSocket, method: 'FetchX509SVID' });
    expect(stranger).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    const strangerJwt = await runWorkloadClient(STRANGER_UID, { socket: workloadSocket, method: 'FetchJWTSVID', audience: ['x'] });
    expect(strangerJwt).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
  });

  it('a call without the security header gets INVALID_ARGUMENT', async () => {
    const res = await runWorkloadClient(NOBODY_UID, { socket: workloadSocket, method: 'FetchX509SVID', header: false });
    expect(res).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
  });

  it('a JWT-SVID for nobody names nobody and the audience', async () => {
    const res = await runWorkloadClient(NOBODY_UID, { socket: workloadSocket, method: 'FetchJWTSVID', audience: ['db'] });
    expect(res.ok).toBe(true);
    const svids = (res.response as unknown as { svids: { spiffe_id: string; svid: string }[] }).svids;
    expect(svids.map((s) => s.spiffe_id)).toEqual([`spiffe://${TD}/nobody-workload`]);
    const claims = JSON.parse(Buffer.from(svids[0]!.svid.split('.')[1]!, 'base64url').toString());
    expect(claims.sub).toBe(`spiffe://${TD}/nobody-workload`);
    expect(claims.aud).toEqual(['db']);
  });
});

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('rotation, and the server or the agent going away', () => {
  const ROOT_ID = `spiffe://${TD}/root-workload`;

  it('an open stream gets the rotated SVID before the old one expires, verifying against the bundle on the same stream', async () => {
    const s = openStream();
    const first = await s.next(1, 10_000);
    verifyMessage(first);
    const firstLeaf = leafOf(first, ROOT_ID);
    // x509_svid_ttl 30 s: rotation at ≈ half of what is left, ±10 %.
    const rotated = await s.next(2, 25_000);
    const secondLeaf = leafOf(rotated, ROOT_ID);
    expect(secondLeaf.serialNumber).not.toBe(firstLeaf.serialNumber);
    expect(Date.now()).toBeLessThan(Date.parse(firstLeaf.validTo));
    verifyMessage(rotated);
  }, 40_000);

  it('with the server killed, workloads keep their SVIDs; after a restart rotation resumes on the open stream', async () => {
    const s = openStream();
    let first = await s.next(1, 10_000);
    // Start from a freshly rotated SVID (issued ≤ 3 s ago; notBefore is backdated 10 s),
    // so that its expiry is well after the wait below.
    while (Date.now() - (Date.parse(leafOf(first, ROOT_ID).validFrom) + 10_000) > 3_000) first = await s.next(s.messages.length + 1, 25_000);
    const firstLeaf = leafOf(first, ROOT_ID);
    await server!.kill('SIGKILL');
    server = undefined;
    // Past the rotation time of the current SVID: the agent cannot rotate, but keeps serving.
    await new Promise((r) => setTimeout(r, 17_000));
    const during = await runWorkloadClient(0, { socket: workloadSocket, method: 'FetchX509SVID' });
    expect(during.ok).toBe(true);
    const servedLeaf = new X509Certificate(splitDer(Buffer.from(during.response!.svids![0]!.x509_svid, 'base64'))[0]!);
    expect(servedLeaf.serialNumber).toBe(leafOf(s.messages.at(-1)!, ROOT_ID).serialNumber);
    expect(Date.now()).toBeLessThan(Date.parse(servedLeaf.validTo));
    expect(agent!.log()).toContain('agent: server unreachable; serving cached svids');

    await startServer();
    const count = s.messages.length;
    const next = await s.next(count + 1, 15_000);
    const nextLeaf = leafOf(next, ROOT_ID);
    expect(nextLeaf.serialNumber).not.toBe(firstLeaf.serialNumber);
    expect(nextLeaf.serialNumber).not.toBe(servedLeaf.serialNumber);
    verifyMessage(next);
  }, 60_000);

  it('an agent restarted while the server is down keeps its identity but no workload key, and mints anew once the server is back', async () => {
    const before = await runWorkloadClient(NOBODY_UID, { socket: workloadSocket, method: 'FetchX509SVID' });
    expect(before.ok).toBe(true);
    await agent!.kill('SIGKILL');
    agent = undefined;
    await server!.kill('SIGKILL');
    server = undefined;
    await startAgent();
    // Workload keys never reach the disk: nothing to serve until the server is back.
    expect(await runWorkloadClient(NOBODY_UID, { socket: workloadSocket, method: 'FetchX509SVID' })).toEqual({
      ok: false,
      code: grpc.status.PERMISSION_DENIED,
      details: 'workloadapi: no identity issued',
    });
    expect(agent!.log()).toContain('"msg":"agent: restored its identity"');
    await startServer();
    // Its identity was kept: no new join token, and a new SVID for the same entry.
    let after = await runWorkloadClient(NOBODY_UID, { socket: workloadSocket, method: 'FetchX509SVID' });
    for (const end = Date.now() + 30_000; !after.ok && Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 200));
      after = await runWorkloadClient(NOBODY_UID, { socket: workloadSocket, method: 'FetchX509SVID' });
    }
    expect(after.ok).toBe(true);
    expect(after.response!.svids!.map((s) => s.spiffe_id)).toEqual([`spiffe://${TD}/nobody-workload`]);
    expect(after.response!.svids![0]!.x509_svid).not.toBe(before.response!.svids![0]!.x509_svid);
    expect(agent!.log()).not.toContain('"msg":"agent: attested"');
  }, 60_000);
});
