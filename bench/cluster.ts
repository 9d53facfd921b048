import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { silentLogger } from '../common/log.js';
import { ChangeFeed } from '../ca/changes.js';
import { ClusterBridge } from '../ca/cluster/bridge.js';
import { PostgresDataStore, parseConnectionString } from '../ca/datastore/postgres/index.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { percentile, round } from './stats.js';

const CHANGES = Number(process.env.BENCH_CHANGES ?? 1000);
/** Changes under way at once in the burst run (as several admin clients). */
const IN_FLIGHT = 16;

const PLAIN = { x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', admin: false, downstream: false };

/**
 * NOTIFY latency between two servers on one PostgreSQL (a local cluster
 * made by initdb, TCP on 127.0.0.1, fsync on): an entry is created through
 * server 1's store and announced on its feed, as the admin API does after
 * the commit; the clock runs from that announcement to the event on server
 * 2's feed. One change at a time (latency), then IN_FLIGHT at a time (a burst).
 */
export async function benchCluster(): Promise<void> {
  const pg = await startPostgres();
  const closers: Array<() => Promise<void>> = [];
  try {
    const db = await pg.createDatabase();
    const node = async (origin: string) => {
      const ds = await PostgresDataStore.open({ target: parseConnectionString(pg.url(db)), password: pg.password, maxConnections: 10, connectTimeout: 10, statementTimeout: 30 });
      const feed = new ChangeFeed();
      const bridge = new ClusterBridge({ feed, channel: ds.cluster, logger: silentLogger(), origin });
      await bridge.start();
      closers.push(() => ds.close(), () => bridge.close());
      return { ds, feed, bridge };
    };
    const one = await node('bench-1');
    const two = await node('bench-2');
    const waiting = new Map<string, () => void>();
    two.feed.on('entries', (ids: string[]) => {
      for (const id of ids) waiting.get(id)?.();
    });
    let n = 0;
    /** One change: create, announce, wait for server 2; ms from announcement to arrival. */
    const change = async (): Promise<number> => {
      const e = await one.ds.createEntry({
        spiffeId: `spiffe://bench.example/w${n++}`,
        parentId: 'spiffe://bench.example/anchorage/agent/join_token/bench',
        selectors: [{ type: 'unix', value: 'uid:1000' }],
        ...PLAIN,
      });
      const arrived = new Promise<void>((resolve) => waiting.set(e.id, resolve));
      const t0 = performance.now();
      one.feed.entriesChanged([e.id]);
      await arrived;
      waiting.delete(e.id);
      return performance.now() - t0;
    };
    for (let i = 0; i < 50; i++) await change(); // warm-up
    const sequential: number[] = [];
    for (let i = 0; i < CHANGES; i++) sequential.push(await change());
    const burst: number[] = [];
    let left = CHANGES;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (left-- > 0) burst.push(await change());
      }),
    );
    const burstSeconds = (performance.now() - t0) / 1000;
    const figures = (xs: number[]) => ({ p50_ms: round(percentile(xs, 50)), p99_ms: round(percentile(xs, 99)), max_ms: round(Math.max(...xs)) });
    const result = {
      date: new Date().toISOString(),
      cores: cpus().length,
      changes: CHANGES,
      one_at_a_time: figures(sequential),
      burst: { in_flight: IN_FLIGHT, ...figures(burst), changes_per_s: round(CHANGES / burstSeconds, 0) },
      relayed: two.bridge.stats.relayed,
    };
    console.log(`NOTIFY latency, server 1 feed -> server 2 feed, ${CHANGES} changes one at a time: p50 ${result.one_at_a_time.p50_ms} ms, p99 ${result.one_at_a_time.p99_ms} ms, max ${result.one_at_a_time.max_ms} ms`);
    console.log(`  ${IN_FLIGHT} in flight: p50 ${result.burst.p50_ms} ms, p99 ${result.burst.p99_ms} ms, ${result.burst.changes_per_s} changes/s (entry create included)`);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/cluster.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/cluster.json');
  } finally {
    for (const c of closers.reverse()) await c().catch(() => {});
    pg.destroy();
  }
}
