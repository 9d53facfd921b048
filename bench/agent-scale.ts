import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { AnchorageProcess } from '../test/helpers/process.js';
import { withBenchNode } from './node.js';

/**
 * Many entries on one agent, through a real agent process and a real server
 * on SoftHSM2 (what issue 17 measured against SPIRE):
 * - `BENCH_ENTRIES` entries (default 5,000) over `BENCH_UIDS` uids (default
 *   50), created at the server with 50 CreateEntry calls in flight, or with
 *   `BENCH_CREATE=batch` in BatchCreateEntry calls of 1,000;
 * - all_svids_ready_ms: from the last create answered to the moment the
 *   agent holds an SVID for every entry (its "workload svids minted" log
 *   records add up to the count; the Workload API serves from that cache);
 * - agent_cpu_ms and server_cpu_ms: the CPU time (user + system, all
 *   threads) each process spent from the first create to that moment: on a
 *   machine of a few cores the two compete, so what one spends per SVID
 *   slows the other;
 * - agent_rss_mb: the agent's RSS once all are minted, sampled for a few
 *   seconds (the highest sample), and state_bytes: the size of its data dir.
 */

const TD = 'bench.test';
const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 5000);
const UIDS = Number(process.env.BENCH_UIDS ?? 50);
const IN_FLIGHT = 50;
/** `single`: CreateEntry calls, 50 in flight (as issue 17 measured); `batch`: BatchCreateEntry calls of 1,000. */
const CREATE = process.env.BENCH_CREATE ?? 'single';
const CREATE_BATCH = 1000;
const SETTLE_MS = 5000;

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU time (user + system, all threads) of a process so far, in ms, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const st = statSync(join(dir, name));
    total += st.isDirectory() ? dirBytes(join(dir, name)) : st.size;
  }
  return total;
}

/** Sum of the agent's "svids minted" log counts so far (reading only what was logged since the last call). */
function mintedCounter(agent: AnchorageProcess): () => number {
  let offset = 0;
  let count = 0;
  return () => {
    const log = agent.log();
    const end = log.lastIndexOf('\n') + 1;
    for (const m of log.slice(offset, end).matchAll(/"minted":(\d+)[^\n]*"msg":"agent: workload svids minted"/g)) count += Number(m[1]);
    offset = Math.max(offset, end);
    return count;
  };
}

async function waitFor(pred: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`bench agent-scale: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function benchAgentScale(): Promise<void> {
  if (!Number.isSafeInteger(ENTRIES) || ENTRIES < 1 || !Number.isSafeInteger(UIDS) || UIDS < 1) {
    throw new Error('bench agent-scale: BENCH_ENTRIES and BENCH_UIDS must be positive integers');
  }
  if (CREATE !== 'single' && CREATE !== 'batch') throw new Error('bench agent-scale: BENCH_CREATE must be single or batch');
  await withBenchNode('agent-scale', TD, '', async ({ admin: a, agent, agentDir, agentId, server }) => {
    const pid = agent.child.pid!;
    const serverPid = server.child.pid!;
    const minted = mintedCounter(agent);
    console.log(`bench agent-scale: ${cpus().length} cores, ${ENTRIES} entries over ${UIDS} uids (${CREATE} creates), agent pid ${pid}, SoftHSM2-backed server`);

    const perUid = Math.ceil(ENTRIES / UIDS);
    const entry = (n: number) => {
      const uid = 100_000 + Math.floor(n / perUid);
      return { spiffe_id: `spiffe://${TD}/bench/uid${uid}/w${n % perUid}`, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] };
    };
    const cpu0 = { agent: cpuMs(pid), server: cpuMs(serverPid) };
    const t0 = performance.now();
    if (CREATE === 'batch') {
      for (let n = 0; n < ENTRIES; n += CREATE_BATCH) {
        const res = await a.call('BatchCreateEntry', { entries: Array.from({ length: Math.min(CREATE_BATCH, ENTRIES - n) }, (_, k) => entry(n + k)) });
        const failed = res.results.find((r) => r.code !== 0);
        if (failed) throw new Error(`bench agent-scale: an entry was not created: ${failed.message}`);
      }
    } else {
      let next = 0;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < ENTRIES) await a.call('CreateEntry', { entry: entry(next++) });
        }),
      );
    }
    const lastCreate = performance.now();
    const mintedAtLastCreate = minted();
    const progress = setInterval(() => console.log(`  minted ${minted()}/${ENTRIES}`), 5000);
    await waitFor(() => minted() >= ENTRIES, `${ENTRIES} SVIDs`, 600_000).finally(() => clearInterval(progress));
    const ready = performance.now();
    const agentCpu = cpuMs(pid) - cpu0.agent;
    const serverCpu = cpuMs(serverPid) - cpu0.server;
    const readyMs = ready - lastCreate;
    console.log(`created ${ENTRIES} entries in ${round(lastCreate - t0, 0)} ms (${mintedAtLastCreate} SVIDs minted by then)`);
    console.log(`all_svids_ready_ms ${round(readyMs, 0)}  (after the last create; ${round(ready - t0, 0)} ms after the first)`);
    console.log(`agent_cpu_ms ${agentCpu}  server_cpu_ms ${serverCpu}  (from the first create; ${round((agentCpu * 1000) / ENTRIES)} us of agent CPU per SVID)`);

    // Steady state: the highest RSS over a few seconds after the last mint (the state write and GC included).
    let rss = 0;
    for (let t = 0; t < SETTLE_MS; t += 250) {
      rss = Math.max(rss, rssMb(pid));
      await new Promise((r) => setTimeout(r, 250));
    }
    const stateBytes = dirBytes(agentDir);
    console.log(`agent_rss_mb ${round(rss)}  state_bytes ${stateBytes}`);

    const result = {
      date: new Date().toISOString(),
      cores: cpus().length,
      entries: ENTRIES,
      uids: UIDS,
      create: CREATE,
      create_ms: round(lastCreate - t0, 0),
      minted_at_last_create: mintedAtLastCreate,
      all_svids_ready_ms: round(readyMs, 0),
      all_svids_ready_from_first_create_ms: round(ready - t0, 0),
      agent_cpu_ms: agentCpu,
      server_cpu_ms: serverCpu,
      agent_rss_mb: round(rss),
      state_bytes: stateBytes,
      targets: { all_svids_ready_ms: '< 3000 (5,000 entries)', agent_rss_mb: '< 250 (20,000 entries)' },
    };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/agent-scale.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/agent-scale.json');
  });
}
