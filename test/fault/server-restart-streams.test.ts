// Fault: the server restarts under 1,000 open Workload API streams (issue 10,
// fault suite). A real server and agent; this process holds 1,000
// FetchX509SVID streams over 10 connections to the agent's socket. The server
// is killed with SIGKILL and started again on the same data dir and port.
//
// The promise: the agent keeps every stream open, every message on every
// stream carries SVIDs that verify against the bundle (so workloads hold a
// valid SVID throughout), a workload that connects while the server is down is
// still served, and after the restart a new entry reaches all 1,000 streams.
import { createHash } from 'node:crypto';
import { chmodSync } from 'node:fs';
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
import { waitForSvid } from '../helpers/trust-domain.js';
import { cli, freePort, startAgentProcess, startServerProcess, tempDir, writeFile, type AnchorageProcess } from '../helpers/process.js';
import { createSoftHsmToken, type SoftHsmToken, writePkcs11ServerConfig } from '../helpers/softhsm.js';
import { until } from '../helpers/until.js';

const TD = 'restart.example';
const td = TrustDomain.parse(TD);
const CONNECTIONS = 10;
const STREAMS_PER_CONNECTION = 100;
const STREAMS = CONNECTIONS * STREAMS_PER_CONNECTION;
const FIRST = `spiffe://${TD}/first`;
const SECOND = `spiffe://${TD}/second`;

/** One open stream: what it saw, and anything that would break the promise. */
interface Watched {
  call: grpc.ClientReadableStream<X509SVIDResponse__Output>;
  messages: number;
  ids: string[];
  /** Problems: an ended stream, an error, a message whose SVID did not verify. */
  problems: string[];
}

/**
 * Every SVID of a message verifies against the bundle in the same message;
 * returns the IDs. The agent sends the same SVID to every stream of the same
 * workload, so each distinct (SVID, bundle) pair is verified once: verifying
 * 1,000 copies would make this process, not the agent, the bottleneck.
 */
const verified = new Map<string, string>();
function verifiedIds(m: X509SVIDResponse__Output): string[] {
  return m.svids.map((s) => {
    const key = createHash('sha256').update(s.x509_svid).update(s.bundle).digest('hex');
    let id = verified.get(key);
    if (id === undefined) {
      const bundle = new X509Bundle(td, splitDer(s.bundle));
      id = verifyX509Svid(splitDer(s.x509_svid), (t) => (t.equals(td) ? bundle : undefined)).spiffeId.toString();
      verified.set(key, id);
    }
    return id;
  });
}


describe('fault: the server restarts under 1,000 open Workload API streams', () => {
  let hsm: SoftHsmToken;
  let tmp: { dir: string; cleanup: () => void };
  let env: NodeJS.ProcessEnv;
  let serverConfig: string;
  let adminSocket: string;
  let workloadSocket: string;
  let server: AnchorageProcess | undefined;
  let agent: AnchorageProcess | undefined;
  let agentId: string;
  const clients: SpiffeWorkloadAPIClient[] = [];
  const watched: Watched[] = [];

  const admin = <T>(fn: (a: Admin) => Promise<T>): Promise<T> => {
    const a = new Admin(adminSocket);
    return fn(a).finally(() => a.close());
  };
  const createEntry = (spiffeId: string) =>
    admin((a) => a.call('CreateEntry', { entry: { spiffe_id: spiffeId, parent_id: agentId, selectors: [{ type: 'unix', value: 'uid:0' }] } }));

  beforeAll(async () => {
    hsm = createSoftHsmToken('anchorage-restart', '3579');
    tmp = tempDir('anchorage-fault-restart-');
    chmodSync(tmp.dir, 0o755);
    env = { ...hsm.env };
    const port = await freePort();
    adminSocket = join(tmp.dir, 'admin.sock');
    workloadSocket = join(tmp.dir, 'public', 'api.sock');
    serverConfig = writePkcs11ServerConfig(hsm, { dir: tmp.dir, trustDomain: TD, socket: adminSocket, dataDir: join(tmp.dir, 'server'), port });
    server = await startServerProcess(serverConfig, adminSocket, env);
    const token = await admin((a) => a.call('CreateJoinToken', { spiffe_id: '', ttl: 600 }));
    agentId = `spiffe://${TD}/anchorage/agent/join_token/${token.token}`;
    writeFile(join(tmp.dir, 'bundle.pem'), cli(['bundle', 'show', '--format', 'pem', '--socket', adminSocket], env).stdout);
    const agentConfig = writeFile(
      join(tmp.dir, 'agent.yaml'),
      `trust_domain: ${TD}
server_address: 127.0.0.1:${port}
data_dir: ${join(tmp.dir, 'agent')}
socket_path: ${workloadSocket}
join_token: ${token.token}
trust_bundle_file: ${join(tmp.dir, 'bundle.pem')}
`,
    );
    agent = await startAgentProcess(agentConfig, workloadSocket, env);
    await createEntry(FIRST);
    await waitForSvid(workloadSocket, FIRST, 30_000);
  });

  afterAll(async () => {
    for (const w of watched) w.call.cancel();
    for (const c of clients) c.close();
    await agent?.kill('SIGTERM');
    await server?.kill('SIGTERM');
    tmp?.cleanup();
    hsm?.cleanup();
  });

  it('keeps every stream open and valid through a SIGKILL and restart, and then delivers a new entry to all of them', async () => {
    const Client = loadWorkloadProto().SpiffeWorkloadAPI;
    for (let c = 0; c < CONNECTIONS; c++) {
      // A connection of its own per client (grpc-js would otherwise share one).
      const client = new Client(`unix://${workloadSocket}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(client);
      for (let s = 0; s < STREAMS_PER_CONNECTION; s++) {
        const md = new grpc.Metadata();
        md.set('workload.spiffe.io', 'true');
        const w: Watched = { call: client.FetchX509SVID({}, md), messages: 0, ids: [], problems: [] };
        w.call.on('data', (m: X509SVIDResponse__Output) => {
          w.messages++;
          try {
            w.ids = verifiedIds(m).sort();
          } catch (err) {
            w.problems.push(`message ${w.messages} does not verify: ${(err as Error).message}`);
          }
        });
        w.call.on('error', (e: grpc.ServiceError) => w.problems.push(`error ${grpc.status[e.code]}: ${e.details}`));
        w.call.on('end', () => w.problems.push('ended'));
        watched.push(w);
      }
    }
    const problems = () => watched.flatMap((w, i) => w.problems.map((p) => `stream ${i}: ${p}`));
    await until(`all ${STREAMS} streams to get their first SVID`, () => watched.every((w) => w.messages >= 1) || problems().length > 0, 30_000, 100);
    expect(problems()).toEqual([]);
    expect(watched.every((w) => w.ids.join() === FIRST)).toBe(true);

    // The server dies hard; the agent keeps serving from its cache.
    await server!.kill('SIGKILL');
    const whileDown = await waitForSvid(workloadSocket, FIRST, 10_000);
    expect(verifiedIds(whileDown)).toEqual([FIRST]);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(problems()).toEqual([]);

    // Back on the same data dir and port; the agent reconnects by itself.
    server = await startServerProcess(serverConfig, adminSocket, env);
    await createEntry(SECOND);
    await until(`the new entry to reach all ${STREAMS} streams`, () => watched.every((w) => w.ids.join() === [FIRST, SECOND].sort().join()) || problems().length > 0, 45_000, 100);
    expect(problems()).toEqual([]);
    expect(watched.filter((w) => w.ids.join() !== [FIRST, SECOND].sort().join())).toHaveLength(0);
  });
});
