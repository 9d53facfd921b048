import { cpus, tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../common/log.js';
import { openDataStore } from '../ca/datastore/registry.js';
import type { DataStore, NewEntry } from '../ca/datastore/DataStore.js';
import { startPostgres } from '../test/helpers/postgres.js';

const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 2000);
/** Concurrent createEntry callers, as several admin clients at once. */
const IN_FLIGHT = 16;
const BATCH = 500;

/** What the bench's entries leave at the defaults. */
const PLAIN = { x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', admin: false, downstream: false };

function newEntry(i: number, run: string): NewEntry {
  const selectors = [{ type: 'unix', value: `uid:${1000 + (i % 100)}` }];
  return { spiffeId: `spiffe://bench.example/${run}/w${i}`, parentId: 'spiffe://bench.example/anchorage/agent/join_token/bench', selectors, ...PLAIN };
}

interface Figures {
  create_entry_per_s: number;
  create_entries_batch_per_s: number;
  list_entries_ms: number;
}

/** Entry create rate (one per call, IN_FLIGHT at once; and BATCH per createEntries call) and one full list. */
async function measure(ds: DataStore): Promise<Figures> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ENTRIES) await ds.createEntry(newEntry(next++, 'single'));
    }),
  );
  const single = (ENTRIES / (performance.now() - t0)) * 1000;
  const t1 = performance.now();
  for (let i = 0; i < ENTRIES; i += BATCH) {
    const results = await ds.createEntries(Array.from({ length: Math.min(BATCH, ENTRIES - i) }, (_, j) => newEntry(i + j, 'batch')));
    if (results.some((r) => 'error' in r)) throw new Error('bench datastore: a batch entry was refused');
  }
  const batch = (ENTRIES / (performance.now() - t1)) * 1000;
  const t2 = performance.now();
  const all = await ds.listEntries();
  if (all.length !== 2 * ENTRIES) throw new Error(`bench datastore: listed ${all.length} entries, expected ${2 * ENTRIES}`);
  const round = (x: number) => Math.round(x * 10) / 10;
  return { create_entry_per_s: round(single), create_entries_batch_per_s: round(batch), list_entries_ms: round(performance.now() - t2) };
}

/**
 * The entry create rate on SQLite and on PostgreSQL (a local cluster made by
 * initdb, over TCP on 127.0.0.1, fsync on), each opened through the
 * registry as `anchorage server run` opens it.
 */
export async function benchDatastore(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-bench-ds-'));
  const pg = await startPostgres();
  try {
    const sqlite = await openDataStore({ type: 'sqlite', path: join(dir, 'ds.sqlite3') }, { logger: silentLogger() });
    const sqliteFigures = await measure(sqlite).finally(() => sqlite.close());
    const postgres = await openDataStore(
      { type: 'postgres', connection_string: pg.url(await pg.createDatabase()), password_file: pg.passwordFile, max_connections: 10, connect_timeout: 10, statement_timeout: 30 },
      { logger: silentLogger() },
    );
    const pgFigures = await measure(postgres).finally(() => postgres.close());
    for (const [name, f] of [['sqlite', sqliteFigures], ['postgres', pgFigures]] as const) {
      console.log(`${name}: createEntry ${f.create_entry_per_s}/s (${IN_FLIGHT} in flight), createEntries ${f.create_entries_batch_per_s}/s (batches of ${BATCH}), list ${2 * ENTRIES} entries ${f.list_entries_ms} ms`);
    }
    const result = { date: new Date().toISOString(), cores: cpus().length, entries: ENTRIES, in_flight: IN_FLIGHT, batch: BATCH, sqlite: sqliteFigures, postgres: pgFigures };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/datastore.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/datastore.json');
  } finally {
    pg.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
