import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { SpiffeWorkloadAPIClient } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import { splitDer } from '../helpers/test-ca.js';
import { cli, startAgentProcess, writeFile, type AnchorageProcess } from '../helpers/process.js';
import { runWorkloadClient } from '../helpers/workload.js';
import { startServerFixture, type ServerFixture } from '../helpers/server-fixture.js';
import { lacks } from '../helpers/needs.js';

/**
 * Issue 10, item 11: `anchorage agent evict` must stop the agent from serving
 * what it got with the evicted identity — at once, on open streams too, and
 * after a restart — while an unreachable server must not: the agent then
 * keeps serving its cached SVIDs until they expire.
 */

const TD = 'agent-evict.test';
const NOBODY = 65534;
const ROOT_ID = `spiffe://${TD}/root-workload`;
const NOBODY_ID = `spiffe://${TD}/nobody-workload`;
const isRoot = process.getuid?.() === 0;
/** What a caller without identity gets from the Workload API. */
const DENIED = { ok: false, code: grpc.status.PERMISSION_DENIED, details: 'workloadapi: no identity issued' };

let f: ServerFixture;
let agent: AnchorageProcess | undefined;
let agentCfg: string;
let dataDir: string;
let socket: string;
let agentId: string;
const clients: SpiffeWorkloadAPIClient[] = [];
const streams: grpc.ClientReadableStream<unknown>[] = [];

function agentConfigWith(token: string): string {
  return f.agentConfig('agent', { dataDir, socket, token });
}

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A FetchX509SVID stream held by this process (uid 0), recording messages and how it ended. */
function holdStream() {
  const c = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socket}`, grpc.credentials.createInsecure());
  clients.push(c);
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  const call = c.FetchX509SVID({}, md);
  streams.push(call);
  const messages: X509SVIDResponse__Output[] = [];
  let ended: { code: number; details: string } | undefined;
  call.on('data', (m: X509SVIDResponse__Output) => messages.push(m));
  call.on('error', (e: grpc.ServiceError) => (ended = { code: e.code, details: e.details }));
  return { messages, ended: () => ended };
}

function leafSerial(res: { response?: { svids?: { x509_svid: string }[] } }): string {
  return new X509Certificate(splitDer(Buffer.from(res.response!.svids![0]!.x509_svid, 'base64'))[0]!).serialNumber;
}

function state(): { agent?: { spiffeId: string }; bundle?: string; federated: Record<string, string> } {
  return JSON.parse(readFileSync(join(dataDir, 'agent-state.json'), 'utf8'));
}

beforeAll(async () => {
  f = await startServerFixture(TD, 'anchorage-agent-evict-');
  dataDir = join(f.dir, 'agent');
  socket = join(f.dir, 'public', 'api.sock');
  const token = await f.newToken();
  agentId = `spiffe://${TD}/anchorage/agent/join_token/${token}`;
  agentCfg = agentConfigWith(token);
  agent = await startAgentProcess(agentCfg, socket, f.env);
  for (const [id, uid] of [
    [ROOT_ID, 0],
    [NOBODY_ID, NOBODY],
  ] as const) {
    await f.admin((a) => a.call('CreateEntry', { entry: { spiffe_id: id, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] } }));
  }
}, 120_000);

afterAll(async () => {
  for (const s of streams) s.cancel();
  for (const c of clients) c.close();
  await agent?.kill('SIGTERM');
  await f?.close();
});

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('eviction', () => {
  it('with the server down (not evicted), the agent keeps serving its cached SVIDs', async () => {
    const before = await until(async () => {
      const r = await runWorkloadClient(NOBODY, { socket, method: 'FetchX509SVID' });
      return r.ok ? r : undefined;
    }, 'the first SVID');
    await f.server!.kill('SIGKILL');
    f.server = undefined;
    await until(() => (agent!.log().includes('"msg":"agent: server unreachable; serving cached svids"') ? true : undefined), 'the agent to notice');
    const during = await runWorkloadClient(NOBODY, { socket, method: 'FetchX509SVID' });
    expect(during.ok).toBe(true);
    expect(during.response!.svids!.map((s) => s.spiffe_id)).toEqual([NOBODY_ID]);
    expect(leafSerial(during)).toBe(leafSerial(before));
    expect(agent!.log()).not.toContain('agent: evicted by the server');
    await f.startServer();
  }, 60_000);

  it('agent evict ends open streams with PERMISSION_DENIED, refuses new calls, and empties agent-state.json', async () => {
    const held = holdStream();
    await until(() => (held.messages.length > 0 ? true : undefined), 'the held stream’s first message');
    expect(held.messages[0]!.svids.map((s) => s.spiffe_id)).toEqual([ROOT_ID]);
    // The agent reconnects to the restarted server within its backoff (≤ 5 s).
    await until(async () => ((await runWorkloadClient(NOBODY, { socket, method: 'FetchJWTSVID', audience: ['db'] })).ok ? true : undefined), 'a JWT-SVID');
    expect(state().agent?.spiffeId).toBe(agentId);

    const r = cli(['agent', 'evict', '--spiffe-id', agentId, '--socket', f.adminSocket], f.env);
    expect([r.code, r.stdout]).toEqual([0, `Evicted ${agentId}\n`]);

    const ended = await until(held.ended, 'the held stream to end');
    expect({ ok: false, ...ended }).toEqual(DENIED);
    for (const uid of [0, NOBODY]) {
      expect(await runWorkloadClient(uid, { socket, method: 'FetchX509SVID' })).toEqual(DENIED);
    }
    // The cached JWT-SVID for "db" is gone too.
    expect(await runWorkloadClient(NOBODY, { socket, method: 'FetchJWTSVID', audience: ['db'] })).toEqual(DENIED);
    expect(Object.keys(state()).sort()).toEqual(['bundle', 'federated', 'trustDomain', 'version']);
    expect(agent!.log()).toContain('"msg":"agent: evicted by the server; dropped every workload identity it held; attesting again with a new join token"');
  }, 60_000);

  it('attests again with a new join token and serves only what the new identity is authorized for, also after a restart', async () => {
    const token = await f.newToken();
    const newId = `spiffe://${TD}/anchorage/agent/join_token/${token}`;
    writeFile(agentCfg, readFileSync(agentCfg, 'utf8').replace(/^join_token: .*$/m, `join_token: ${token}`));
    await until(() => (state().agent?.spiffeId === newId ? true : undefined), 're-attestation');
    await f.admin((a) =>
      a.call('CreateEntry', { entry: { spiffe_id: `spiffe://${TD}/after-eviction`, parent_id: newId, selectors: [{ type: 'unix', value: 'uid:0' }] } }),
    );
    const root = await until(async () => {
      const res = await runWorkloadClient(0, { socket, method: 'FetchX509SVID' });
      return res.ok ? res : undefined;
    }, 'the new SVID');
    expect(root.response!.svids!.map((s) => s.spiffe_id)).toEqual([`spiffe://${TD}/after-eviction`]);
    // The old entries name the evicted agent as parent: not this agent's any more.
    expect(await runWorkloadClient(NOBODY, { socket, method: 'FetchX509SVID' })).toEqual(DENIED);

    // Restarted with the server down, it keeps the new identity (and no workload key);
    // once the server is back it serves what that identity is authorized for, and only that.
    await f.server!.kill('SIGKILL');
    f.server = undefined;
    await agent!.kill('SIGKILL');
    agent = await startAgentProcess(agentCfg, socket, f.env);
    expect(await runWorkloadClient(0, { socket, method: 'FetchX509SVID' })).toEqual(DENIED);
    expect(state().agent?.spiffeId).toBe(newId);
    await f.startServer();
    const after = await until(async () => {
      const res = await runWorkloadClient(0, { socket, method: 'FetchX509SVID' });
      return res.ok ? res : undefined;
    }, 'the SVID after the restart');
    expect(after.response!.svids!.map((s) => s.spiffe_id)).toEqual([`spiffe://${TD}/after-eviction`]);
    expect(await runWorkloadClient(NOBODY, { socket, method: 'FetchX509SVID' })).toEqual(DENIED);
  }, 90_000);
});
