import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '../common/log.js';
import { UnixWorkloadAttestor } from '../node-agent/attestor/unix.js';
import { AgentMetrics } from '../node-agent/metrics.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import { startWorkloadApi, type WorkloadApiOptions } from '../workload-api/server.js';
import { startTestCa, TestIdentitySource } from '../test/helpers/test-ca.js';

const ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 10);
const CALLS = Number(process.env.BENCH_CALLS ?? 300);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * What metrics cost on the Workload API, measured in one process so that a
 * loaded machine disturbs both sides alike: two Workload API servers over
 * the same identity source and the real unix attestor, one without metrics
 * and one instrumented as `agent run` with `metrics:` is (call and stream
 * counters, the timed attestor). Alternating rounds of CALLS connections:
 * on each, FetchX509SVID to its first message (connect, attest, render),
 * then FetchX509Bundles to its first message (attest, render).
 */
export async function benchWorkloadMetrics(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-bench-wlm-'));
  chmodSync(dir, 0o755);
  const ca = await startTestCa('bench-metrics.test', join(dir, 'ca'));
  const source = new TestIdentitySource(ca);
  await source.addIdentity({ spiffeId: 'spiffe://bench-metrics.test/me', selectors: [`unix:uid:${process.getuid!()}`] });
  const metrics = new AgentMetrics();
  const base = (name: string): WorkloadApiOptions => {
    mkdirSync(join(dir, name), { mode: 0o755 });
    return { socketPath: join(dir, name, 'api.sock'), source, attestor: new UnixWorkloadAttestor({ logger: silentLogger() }), logger: silentLogger() };
  };
  const plainOpts = base('plain');
  const meteredOpts = base('metered');
  const plain = await startWorkloadApi(plainOpts);
  const metered = await startWorkloadApi({ ...meteredOpts, attestor: metrics.instrument(meteredOpts.attestor), observer: metrics });
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');

  /** CALLS calls on new connections; the median milliseconds of each kind. */
  const round = async (socketPath: string): Promise<{ x509: number; bundles: number }> => {
    const x509: number[] = [];
    const bundles: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socketPath}`, grpc.credentials.createInsecure());
      let t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const call = client.FetchX509SVID({}, md);
        call.once('data', () => {
          call.cancel();
          resolve();
        });
        call.once('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
      });
      x509.push(performance.now() - t0);
      // On the connection just made: attestation and a small render, the least a call costs.
      t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const call = client.FetchX509Bundles({}, md);
        call.once('data', () => {
          call.cancel();
          resolve();
        });
        call.once('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
      });
      bundles.push(performance.now() - t0);
      client.close();
    }
    return { x509: median(x509), bundles: median(bundles) };
  };

  try {
    console.log(`bench workload-metrics: ${cpus().length} cores, ${ROUNDS} a/b rounds of ${CALLS} calls, each on a new connection`);
    await round(plainOpts.socketPath);
    await round(meteredOpts.socketPath);
    const x509Ratios: number[] = [];
    const bundleRatios: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // A then B, then B then A: whatever favours the second of a pair favours each side alike.
      let a;
      let b;
      if (r % 2 === 0) {
        a = await round(plainOpts.socketPath);
        b = await round(meteredOpts.socketPath);
      } else {
        b = await round(meteredOpts.socketPath);
        a = await round(plainOpts.socketPath);
      }
      x509Ratios.push(b.x509 / a.x509);
      bundleRatios.push(b.bundles / a.bundles);
      console.log(`  a/b ${r + 1}: FetchX509SVID first message p50 ${a.x509.toFixed(3)} / ${b.x509.toFixed(3)} ms, FetchX509Bundles p50 ${a.bundles.toFixed(3)} / ${b.bundles.toFixed(3)} ms (without / with metrics)`);
    }
    const result = {
      x509_first_message_time_ratio: Number(median(x509Ratios).toFixed(3)),
      bundles_time_ratio: Number(median(bundleRatios).toFixed(3)),
      rounds: ROUNDS,
      calls_per_round: CALLS,
      cpus: cpus().length,
      measured_at: new Date().toISOString(),
    };
    console.log(`x509_first_message_time_ratio ${result.x509_first_message_time_ratio}  bundles_time_ratio ${result.bundles_time_ratio}  (with / without metrics; 1 = free)`);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/workload-metrics.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/workload-metrics.json');
  } finally {
    await plain.close();
    await metered.close();
    await ca.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
