import { generateKeyPairSync } from 'node:crypto';
import { jwkOf } from '../helpers/jwk.js';
import { watch } from 'node:fs';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadState } from '../../node-agent/state.js';
import { X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { splitDer } from '../helpers/test-ca.js';
import { startAgentProcess, type AnchorageProcess } from '../helpers/process.js';
import { runWorkloadClient } from '../helpers/workload.js';
import { startServerFixture, type ServerFixture } from '../helpers/server-fixture.js';
import { lacks } from '../helpers/needs.js';

/**
 * Fault suite: SIGKILL `anchorage agent run` at random points while it
 * writes its state, then start it again. The state is the agent's identity
 * and the bundles (workload SVIDs live in memory only), so the churn that
 * makes it write all the time is a federated bundle changing at the server.
 * Every start must succeed on the state left behind — the old or the new,
 * never a torn one — with no temp file of the killed writer left, keep its
 * identity (no new join token), and workloads must get a valid SVID.
 */

const TD = 'agent-state-kill.test';
const td = TrustDomain.parse(TD);
const KILLS = 12;
/** Extra kills, right as a write begins, if none of the first KILLS landed inside one (rare): the suite must exercise that case. */
const EXTRA_KILLS = 8;
/** Keys of the churning federated bundle: they make the state file large (≈ 60 KB), so writes take a while. */
const PEER_KEYS = 300;
const PEER = 'peer.test';
const WORKLOAD_ID = `spiffe://${TD}/kill-workload`;
const isRoot = process.getuid?.() === 0;

let f: ServerFixture;
let agent: AnchorageProcess | undefined;
let agentCfg: string;
let dataDir: string;
let socket: string;
let agentId: string;
const peerKeys = Array.from({ length: PEER_KEYS }, () => jwkOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey));
/** The peer's bundle document, different at every `n`. */
const peerBundle = (n: number) => JSON.stringify({ spiffe_sequence: n, keys: peerKeys.map((k, i) => ({ ...k, use: 'jwt-svid', kid: `k${i}-${n}` })) });

const temps = (): string[] => readdirSync(dataDir).filter((e) => e.endsWith('.tmp'));

beforeAll(async () => {
  f = await startServerFixture(TD, 'anchorage-agent-kill-');
  dataDir = join(f.dir, 'agent');
  socket = join(f.dir, 'public', 'api.sock');
  const token = await f.newToken();
  agentId = `spiffe://${TD}/anchorage/agent/join_token/${token}`;
  agentCfg = f.agentConfig('agent', { dataDir, socket, token });
  agent = await startAgentProcess(agentCfg, socket, f.env);
  await f.admin(async (a) => {
    await a.call('CreateEntry', { entry: { spiffe_id: WORKLOAD_ID, parent_id: agentId, selectors: [{ type: 'unix', value: 'uid:0' }] } });
    await a.call('SetFederatedBundle', { trust_domain: PEER, document: peerBundle(1) });
  });
  const end = Date.now() + 60_000;
  while (loadState(dataDir, TD).federated[PEER] === undefined) {
    if (Date.now() > end) throw new Error('the agent did not write the federated bundle in 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}, 180_000);

afterAll(async () => {
  await agent?.kill('SIGTERM');
  await f?.close();
});

/** Resolves once the agent starts a state write (a temp file appears), or after `ms`. */
function nextWrite(ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const w = watch(dataDir, (_event, name) => {
      if (name?.endsWith('.tmp')) done(true);
    });
    const t = setTimeout(() => done(false), ms);
    function done(seen: boolean) {
      clearTimeout(t);
      w.close();
      resolve(seen);
    }
  });
}

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('SIGKILL during the agent state write', () => {
  it(`${KILLS} kills at random points; every restart finds the old or the new state and no temp file`, async () => {
    // Churn: the peer's bundle changes every 50 ms, so the agent writes its state continuously.
    let churning = true;
    let changes = 0;
    const churn = (async () => {
      while (churning && changes < 5_000) {
        await f.admin((a) => a.call('SetFederatedBundle', { trust_domain: PEER, document: peerBundle(2 + changes++) }));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    let midWrite = 0;
    try {
      let kills = 0;
      for (let i = 0; i < KILLS + EXTRA_KILLS && (i < KILLS || midWrite === 0); i++) {
        kills++;
        if (i % 2 === 0 && i < KILLS) {
          // Anywhere: mid-write, between writes, while minting.
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 1_400));
        } else {
          // Right as a write begins, plus 0–3 ms: inside the write most of the time.
          await nextWrite(5_000);
          await new Promise((r) => setTimeout(r, Math.random() * 3));
        }
        await agent!.kill('SIGKILL');
        agent = undefined;
        const left = temps();
        if (left.length > 0) midWrite++;
        // Old or new, never torn: the agent's own loader accepts it.
        const st = loadState(dataDir, TD);
        expect(st.agent?.spiffeId).toBe(agentId);
        expect(st.bundle).toBeTypeOf('string');
        expect(JSON.parse(st.federated[PEER]!).keys).toHaveLength(PEER_KEYS);

        agent = await startAgentProcess(agentCfg, socket, f.env);
        // The killed writer's temp files are gone (the new agent's own writes use new names).
        expect(left.filter((n) => existsSync(join(dataDir, n)))).toEqual([]);
        if (left.length > 0) expect(agent.log()).toContain('"msg":"agent: removed temp files of an interrupted state write"');
      }
      // How many kills landed inside a write (left a temp file); at least one, or the suite proved little.
      console.log(`agent-state-kill: ${kills} kills, ${midWrite} inside a state write, ${changes} bundle changes`);
    } finally {
      churning = false;
      await churn;
    }
    expect(midWrite).toBeGreaterThan(0);

    // Minted anew after the last restart (workload keys are never on disk).
    let res = await runWorkloadClient(0, { socket, method: 'FetchX509SVID' });
    for (const end = Date.now() + 30_000; !res.ok && Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 200));
      res = await runWorkloadClient(0, { socket, method: 'FetchX509SVID' });
    }
    expect(res.ok).toBe(true);
    const svid = res.response!.svids![0]!;
    expect(res.response!.svids!.map((s) => s.spiffe_id)).toEqual([WORKLOAD_ID]);
    const bundle = new X509Bundle(td, splitDer(Buffer.from(svid.bundle, 'base64')));
    const verified = verifyX509Svid(splitDer(Buffer.from(svid.x509_svid, 'base64')), (t) => (t.equals(td) ? bundle : undefined));
    expect(verified.spiffeId.toString()).toBe(WORKLOAD_ID);

    await agent!.kill('SIGTERM');
    agent = undefined;
    expect(temps()).toEqual([]);
  }, 240_000);
});
