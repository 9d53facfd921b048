import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Histogram, Registry } from 'prom-client';
import type { CaManager } from '../ca/manager.js';
import { ServerMetrics } from '../ca/metrics.js';
import { Minter } from '../ca/minter.js';
import { AgentMetrics } from '../node-agent/metrics.js';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import type { WorkloadAttestor } from '../workload-api/WorkloadAttestor.js';

const OPS = Number(process.env.BENCH_OPS ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** CPU nanoseconds per call of `op`, OPS calls; CPU time, so other processes on the machine hardly move it. */
async function cpuNs(op: (i: number) => Promise<unknown> | unknown): Promise<number> {
  const t0 = process.cpuUsage();
  for (let i = 0; i < OPS; i++) await op(i);
  const c = process.cpuUsage(t0);
  return ((c.user + c.system) * 1000) / OPS;
}

/**
 * What the metrics hooks themselves cost, in CPU time per operation, each
 * against the same operation without them, in alternating rounds:
 * - minting: the real Minter (JWT path) over a CA whose key signs at once,
 *   without and with a MintObserver, plus one sign-latency observation (what
 *   the PKCS#11 key manager adds per signature with metrics on);
 * - the Workload API: a workload attestation through AgentMetrics.instrument
 *   plus the call and stream counters of one stream call.
 * Divide by the CPU time of a real mint or call (bench mint, workload) for
 * the share.
 */
export async function benchMetricsHooks(): Promise<void> {
  const td = TrustDomain.parse('hooks.test');
  const key = { sign: async () => new Uint8Array(64) };
  const ca = { trustDomain: td, activeJwt: () => ({ key, headerB64: 'eyJ9', notAfter: Math.floor(Date.now() / 1000) + 86400 }) } as unknown as CaManager;
  const server = new ServerMetrics();
  const plainMinter = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 300 });
  const meteredMinter = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 300, metrics: server });
  // The sign observer's body (ca/metrics.ts attach): one bound histogram child.
  const signChild = new Histogram({ name: 'bench_sign_seconds', help: 'x', labelNames: ['token', 'result'], registers: [new Registry()] }).labels('t', 'success');
  const id = SpiffeId.parse('spiffe://hooks.test/w');
  const req = { spiffeId: id, audience: ['a'] };

  const agent = new AgentMetrics();
  const attestor: WorkloadAttestor = { name: 'unix', attest: async () => [{ type: 'unix', value: 'uid:0' }] };
  const timed = agent.instrument(attestor);
  const peer = { pid: 1, uid: 0, gid: 0 };

  const mint: Record<'plain' | 'metered', number[]> = { plain: [], metered: [] };
  const call: Record<'plain' | 'metered', number[]> = { plain: [], metered: [] };
  console.log(`bench metrics-hooks: ${cpus().length} cores, ${ROUNDS} rounds of ${OPS} operations each`);
  for (let r = 0; r <= ROUNDS; r++) {
    const m0 = await cpuNs(() => plainMinter.mintJwt(req));
    const m1 = await cpuNs(async () => {
      const t0 = performance.now();
      await meteredMinter.mintJwt(req);
      signChild.observe((performance.now() - t0) / 1000);
    });
    const c0 = await cpuNs(() => attestor.attest(peer));
    const c1 = await cpuNs(async () => {
      await timed.attest(peer);
      agent.streamOpened('FetchX509SVID');
      agent.streamClosed('FetchX509SVID');
      agent.callEnded('FetchX509SVID', 'CANCELLED');
    });
    if (r === 0) continue; // warm-up
    mint.plain.push(m0);
    mint.metered.push(m1);
    call.plain.push(c0);
    call.metered.push(c1);
    console.log(`  round ${r}: mint ${m0.toFixed(0)} → ${m1.toFixed(0)} ns CPU, workload call hooks ${c0.toFixed(0)} → ${c1.toFixed(0)} ns CPU`);
  }
  const result = {
    mint_hooks_cpu_ns: Math.round(median(mint.metered) - median(mint.plain)),
    workload_call_hooks_cpu_ns: Math.round(median(call.metered) - median(call.plain)),
    ops_per_round: OPS,
    rounds: ROUNDS,
    cpus: cpus().length,
    measured_at: new Date().toISOString(),
  };
  console.log(`mint_hooks_cpu_ns ${result.mint_hooks_cpu_ns}  workload_call_hooks_cpu_ns ${result.workload_call_hooks_cpu_ns}  (CPU the metrics add per mint / per Workload API call)`);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/metrics-hooks.json', JSON.stringify(result, null, 2) + '\n');
  console.log('wrote bench/results/metrics-hooks.json');
}
