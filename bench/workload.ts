import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { SpiffeWorkloadAPIClient } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import { startAgentProcess, type AnchorageProcess } from '../test/helpers/process.js';
import { withBenchNode } from './node.js';
import { percentile, round, rssMb } from './stats.js';

/**
 * The Workload API through a real agent process and a real server on
 * SoftHSM2:
 * - first response: FetchX509SVID on a new connection (connect, attest,
 *   first message) while 1,000 other workloads hold open streams;
 * - propagation: entry created at the server → the new SVID on a stream that
 *   was already open, one entry after another;
 * - agent RSS with 1k and 10k cached SVIDs.
 */

const TD = 'bench.test';
const WORKLOADS = Number(process.env.BENCH_WORKLOADS ?? 1000);
const FIRST_SAMPLES = Number(process.env.BENCH_FIRST_SAMPLES ?? 500);
const PROPAGATION_ENTRIES = Number(process.env.BENCH_PROPAGATION_ENTRIES ?? 200);
const RSS_COUNTS = [1000, 10_000];

/** BENCH_METRICS=1: both processes serve metrics (what `metrics:` costs on the Workload API). */
const METRICS_YAML = process.env.BENCH_METRICS === '1' ? 'metrics:\n  address: 127.0.0.1:0\n' : '';

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

/** A client on its own connection (grpc-js would otherwise share one subchannel between clients). */
function newClient(socket: string): SpiffeWorkloadAPIClient {
  return new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socket}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
}

/** Sum of the agent's "svids minted" log counts so far (reading only what was logged since the last call). */
const mintedSeen = new WeakMap<AnchorageProcess, { offset: number; count: number }>();
function minted(agent: AnchorageProcess): number {
  const seen = mintedSeen.get(agent) ?? { offset: 0, count: 0 };
  const log = agent.log();
  const end = log.lastIndexOf('\n') + 1;
  for (const m of log.slice(seen.offset, end).matchAll(/"minted":(\d+)[^\n]*"msg":"agent: workload svids minted"/g)) seen.count += Number(m[1]);
  seen.offset = Math.max(seen.offset, end);
  mintedSeen.set(agent, seen);
  return seen.count;
}

async function waitFor(pred: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`bench workload: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function benchWorkload(): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  const clients: SpiffeWorkloadAPIClient[] = [];
  await withBenchNode('workload', TD, METRICS_YAML, async (node) => {
    const { admin: a, socket, agentConfig, agentId, env } = node;
    let agent = node.agent;
    const agentPid = agent.child.pid!;
    const entry = (spiffeId: string, selectors: { type: string; value: string }[]) =>
      a.call('CreateEntry', { entry: { spiffe_id: spiffeId, parent_id: agentId, selectors } });
    console.log(`bench workload: ${cpus().length} cores, agent pid ${agentPid}, SoftHSM2-backed server${METRICS_YAML ? ', metrics on' : ''}`);

    // ---- first response with WORKLOADS connected ------------------------------
    await entry(`spiffe://${TD}/bench/self`, [{ type: 'unix', value: `uid:${uid}` }]);
    await waitFor(() => minted(agent!) >= 1, 'the first SVID', 30_000);
    let open = 0;
    const held: grpc.ClientReadableStream<unknown>[] = [];
    const failures = new Map<string, number>();
    for (let i = 0; i < WORKLOADS; i++) {
      const c = newClient(socket);
      clients.push(c);
      const call = c.FetchX509SVID({}, header());
      held.push(call);
      call.once('data', () => open++);
      call.on('error', (e: grpc.ServiceError) => {
        if (e.code !== grpc.status.CANCELLED) failures.set(`${grpc.status[e.code]}: ${e.details}`, (failures.get(`${grpc.status[e.code]}: ${e.details}`) ?? 0) + 1);
      });
    }
    const progress = setInterval(() => console.log(`  open streams: ${open}/${WORKLOADS}`, Object.fromEntries(failures)), 5000);
    await waitFor(() => open === WORKLOADS, `${WORKLOADS} open streams`, 120_000).finally(() => clearInterval(progress));
    const firsts: number[] = [];
    for (let i = 0; i < FIRST_SAMPLES; i++) {
      const c = newClient(socket);
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const call = c.FetchX509SVID({}, header());
        call.once('data', () => {
          firsts.push(performance.now() - t0);
          call.cancel();
          resolve();
        });
        call.once('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
      });
      c.close();
    }
    const firstP50 = percentile(firsts, 50);
    const firstP99 = percentile(firsts, 99);
    console.log(`first_response_p50_ms ${round(firstP50)}  first_response_p99_ms ${round(firstP99)}  (${FIRST_SAMPLES} new connections, ${WORKLOADS} streams open)`);
    // Closing a client leaves its streams open: end them, so the next phase measures one stream.
    for (const call of held) call.cancel();
    for (const c of clients.splice(0)) c.close();

    // ---- propagation ------------------------------------------------------------
    const seen = new Map<string, number>();
    const stream = newClient(socket);
    clients.push(stream);
    const call = stream.FetchX509SVID({}, header());
    call.on('data', (m: X509SVIDResponse__Output) => {
      const t = performance.now();
      for (const s of m.svids) if (!seen.has(s.spiffe_id)) seen.set(s.spiffe_id, t);
    });
    call.on('error', () => undefined);
    await waitFor(() => seen.size >= 1, 'the propagation stream', 10_000);
    const propagation: number[] = [];
    for (let i = 0; i < PROPAGATION_ENTRIES; i++) {
      const id = `spiffe://${TD}/bench/propagation/${i}`;
      const t0 = performance.now();
      await entry(id, [{ type: 'unix', value: `uid:${uid}` }]);
      await waitFor(() => seen.has(id), `propagation of ${id}`, 10_000);
      propagation.push(seen.get(id)! - t0);
    }
    if (process.env.BENCH_DEBUG) writeFileSync('/tmp/bench-agent.log', agent.log());
    const propP50 = percentile(propagation, 50);
    const propP99 = percentile(propagation, 99);
    console.log(`propagation_p50_ms ${round(propP50)}  propagation_p99_ms ${round(propP99)}  (${PROPAGATION_ENTRIES} entries, one at a time)`);
    call.cancel();
    for (const c of clients.splice(0)) c.close();

    // ---- RSS with cached SVIDs ---------------------------------------------------
    // A fresh agent process (it mints every SVID anew), so that memory left by
    // the 1,000 connections above does not count as cache.
    await agent.kill('SIGTERM');
    agent = node.agent = await startAgentProcess(agentConfig, socket, env);
    const rssPid = agent.child.pid!;
    const mintedBefore = 0;
    const rss: Record<number, number> = {};
    let created = 1 + PROPAGATION_ENTRIES;
    for (const target of RSS_COUNTS) {
      while (created < target) {
        // Selectors no process on this node has: cached, never served. 50 creates in flight.
        const batch = Array.from({ length: Math.min(50, target - created) }, (_, k) => created + k);
        await Promise.all(batch.map((n) => entry(`spiffe://${TD}/bench/cached/${n}`, [{ type: 'unix', value: `uid:${200000 + n}` }])));
        created += batch.length;
      }
      // All minted by this process: workload SVIDs are not kept on disk across a restart.
      await waitFor(() => minted(agent!) - mintedBefore >= target, `${target} SVIDs cached`, 600_000);
      await new Promise((r) => setTimeout(r, 3000)); // let the state write and GC settle
      rss[target] = rssMb(rssPid);
      console.log(`agent_rss_mb_${target / 1000}k ${round(rss[target]!, 1)}  (${target} cached SVIDs)`);
    }
    const result = {
      date: new Date().toISOString(),
      cores: cpus().length,
      workloads_connected: WORKLOADS,
      first_response_samples: FIRST_SAMPLES,
      first_response_p50_ms: round(firstP50),
      first_response_p99_ms: round(firstP99),
      propagation_entries: PROPAGATION_ENTRIES,
      propagation_p50_ms: round(propP50),
      propagation_p99_ms: round(propP99),
      agent_rss_mb_1k: round(rss[1000]!, 1),
      agent_rss_mb_10k: round(rss[10_000]!, 1),
      targets: { propagation_p99_ms: '< 1000', first_response_p99_ms: '< 10', agent_rss_mb_10k: '< 200' },
    };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/workload.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/workload.json');
  }).finally(() => {
    for (const c of clients) c.close();
  });
}
