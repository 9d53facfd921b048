import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toPem } from '@anchorage/client/pem';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { Admin } from '../cli/client.js';
import { silentLogger } from '../common/log.js';
import { parseServerConfig } from '../ca/config.js';
import { startServer, type RunningServer } from '../ca/server.js';
import type { RegistrationEntry } from '../ca/datastore/DataStore.js';
import { SYNC_MESSAGE_LIMIT } from '../ca/agentapi/sync-chunks.js';
import { makeRoot } from '../test/helpers/pki.js';
import { startPostgres, type PostgresCluster } from '../test/helpers/postgres.js';
import type { Expectation, FromAgents, ToAgents } from './scale-agents.js';
import { round } from './stats.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
const PER_AGENT = Number(process.env.BENCH_ENTRIES_PER_AGENT ?? 100);
/** Entries per BatchCreateEntry call (the API takes up to 10,000). */
const BATCH = 5000;
const TD = 'scale.example';
/** How long any one phase may take before the bench gives up on it. */
const PHASE_TIMEOUT_MS = 180_000;

interface Figures {
  agents: number;
  entries: number;
  attest_ms: number;
  /** BatchCreateEntry, BATCH per call, one call at a time, 1,000 agents' streams open. */
  create_entries_per_s: number;
  /** From the first create call to every agent holding all its entries. */
  create_all_synced_ms: number;
  /** From the last create call's answer to every agent holding all its entries. */
  create_last_to_synced_ms: number;
  /** (a) One entry of every agent updated: the writes, then one change announced on the feed as one batch. */
  update_one_per_agent: { write_ms: number; all_agents_ms: number };
  /** (a') The same through the admin API: one UpdateEntry per agent, 16 in flight, from the first call. */
  update_one_per_agent_api_ms: number;
  /** (b) SetFederatedBundle: from the call to every agent holding the bundle. */
  federated_bundle_all_agents_ms: number;
  server_rss_mb: number;
  server_peak_rss_mb: number;
  agents_process_rss_mb: number;
  database_mb: number;
  sync: { messages: number; passes: number; multi_message_passes: number; largest_message_bytes: number; message_limit_bytes: number; stream_errors: number };
}

/** The simulated agents' process (bench/scale-agents.ts) and a way to wait for what it reports. */
function agentsProcess(): { child: ChildProcess; next: (type: FromAgents['type'], phase?: string) => Promise<FromAgents>; send: (m: ToAgents) => void; errors: string[] } {
  const child = fork(join(dirname(fileURLToPath(import.meta.url)), 'scale-agents.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const inbox: FromAgents[] = [];
  const errors: string[] = [];
  let wake: (() => void) | undefined;
  child.on('message', (m: FromAgents) => {
    if (m.type === 'error') {
      errors.push(m.message);
      if (errors.length <= 5) console.error(`bench scale: ${m.message}`);
    } else inbox.push(m);
    wake?.();
  });
  child.on('exit', () => wake?.());
  const next = async (type: FromAgents['type'], phase?: string): Promise<FromAgents> => {
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    for (;;) {
      const at = inbox.findIndex((m) => m.type === type && (phase === undefined || (m as { phase?: string }).phase === phase));
      if (at >= 0) return inbox.splice(at, 1)[0]!;
      if (child.exitCode !== null) throw new Error('bench scale: the agents process exited');
      if (Date.now() > deadline) throw new Error(`bench scale: gave up waiting for ${type} ${phase ?? ''} (${errors.length} agent errors)`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 1000);
      });
    }
  };
  return { child, next, send: (m) => child.send(m), errors };
}

async function run(name: 'sqlite' | 'postgres', pg: PostgresCluster | undefined): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), `anchorage-bench-scale-${name}-`));
  let server: RunningServer | undefined;
  let admin: Admin | undefined;
  let agents: ReturnType<typeof agentsProcess> | undefined;
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 200);
  try {
    const datastore = pg
      ? { type: 'postgres', connection_string: pg.url(await pg.createDatabase()), password_file: pg.passwordFile, max_connections: 20 }
      : { type: 'sqlite' };
    const cfg = parseServerConfig(
      {
        trust_domain: TD,
        data_dir: dir,
        admin_socket: 'admin.sock',
        bind_address: '127.0.0.1:0',
        key_manager: { type: 'memory' },
        ca: { ttl: '24h' },
        agent_api: { max_connections: 4096, max_connections_per_ip: 4096 },
        datastore,
      },
      'bench',
      dir,
    );
    server = await startServer(cfg, { logger: silentLogger() });
    admin = new Admin(cfg.admin_socket);
    const tokens: string[] = [];
    for (let i = 0; i < AGENTS; i++) tokens.push((await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 3600 })).token);
    agents = agentsProcess();
    const rootPem = server.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join('');
    agents.send({ type: 'start', port: server.agentPort, td: TD, rootPem, tokens });
    const ready = (await agents.next('ready')) as Extract<FromAgents, { type: 'ready' }>;
    const expect = async (phase: string, what: Expectation): Promise<number> => {
      agents!.send({ type: 'expect', phase, what });
      return ((await agents!.next('reached', phase)) as Extract<FromAgents, { type: 'reached' }>).atMs;
    };
    // Every stream open and its first (empty) pass received.
    await expect('open', { kind: 'count', n: 0 });
    console.log(`${name}: ${AGENTS} agents attested in ${round(ready.attestMs, 0)} ms, streams open`);

    // Entries: PER_AGENT per agent, parent = that agent, BATCH per call.
    const total = AGENTS * PER_AGENT;
    const waitAll = expect('created', { kind: 'count', n: PER_AGENT });
    const t0 = Date.now();
    for (let at = 0; at < total; at += BATCH) {
      const entries = Array.from({ length: Math.min(BATCH, total - at) }, (_, k) => {
        const i = at + k;
        const agent = ready.agentIds[Math.floor(i / PER_AGENT)]!;
        return {
          spiffe_id: `spiffe://${TD}/ns/team-${i % 50}/sa/workload-${i}`,
          parent_id: agent,
          selectors: [
            { type: 'unix', value: `uid:${1000 + (i % PER_AGENT)}` },
            { type: 'unix', value: 'gid:1000' },
          ],
        };
      });
      const res = await admin.call('BatchCreateEntry', { entries }, 120_000);
      const refused = res.results.filter((r) => r.code !== 0);
      if (refused.length > 0) throw new Error(`bench scale: ${refused.length} entries refused: ${refused[0]!.message}`);
    }
    const createdAt = Date.now();
    const allSynced = await waitAll;
    const createRate = (total / (createdAt - t0)) * 1000;
    console.log(`${name}: ${total} entries created at ${round(createRate, 0)}/s; every agent had all its entries ${allSynced - t0} ms after the first create (${allSynced - createdAt} ms after the last)`);

    // (a) One entry per agent updated, announced as one batch (as a batch update would).
    const byParent = new Map<string, RegistrationEntry>();
    for (const e of await server.datastore.listEntries()) if (!byParent.has(e.parentId)) byParent.set(e.parentId, e);
    if (byParent.size !== AGENTS) throw new Error(`bench scale: ${byParent.size} agents have entries, expected ${AGENTS}`);
    const waitUpdate = expect('update', { kind: 'hint', hint: 'v2' });
    const w0 = Date.now();
    const changed: string[] = [];
    for (const e of byParent.values()) {
      await server.datastore.updateEntry(e.id, { ...e, hint: 'v2' });
      changed.push(e.id);
    }
    const u0 = Date.now();
    server.feed.entriesChanged(changed);
    const updated = (await waitUpdate) - u0;
    console.log(`${name}: one entry of each agent updated (${u0 - w0} ms of writes), announced as one batch: every agent had it ${updated} ms later`);

    // (a') The same through the admin API, one UpdateEntry per agent, 16 in flight.
    const waitApi = expect('update-api', { kind: 'hint', hint: 'v3' });
    const list = [...byParent.values()];
    let nextAt = 0;
    const a0 = Date.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (nextAt < list.length) await admin!.call('UpdateEntry', { id: list[nextAt++]!.id, patch: { hint: 'v3' }, expect_revision: 0 });
      }),
    );
    const apiMs = (await waitApi) - a0;
    console.log(`${name}: the same through ${AGENTS} UpdateEntry calls (16 in flight): every agent had it ${apiMs} ms after the first call`);

    // (b) A change every agent must see: a federated bundle set.
    const partner = await makeRoot('partner.example');
    const doc = new SpiffeBundle(TrustDomain.parse('partner.example'), { x509Authorities: [partner.der] }).marshal();
    const waitFed = expect('federated', { kind: 'federated', trustDomain: 'partner.example' });
    const f0 = Date.now();
    await admin.call('SetFederatedBundle', { trust_domain: 'partner.example', document: doc });
    const fedMs = (await waitFed) - f0;
    console.log(`${name}: federated bundle set: every agent had it ${fedMs} ms later`);

    agents.send({ type: 'stats' });
    const st = (await agents.next('stats')) as Extract<FromAgents, { type: 'stats' }>;
    let dbBytes: number;
    if (pg) {
      const db = /\/([^/?]+)\?/.exec(cfg.datastore.type === 'postgres' ? cfg.datastore.connection_string : '')![1]!;
      const c = await pg.connect(db);
      dbBytes = Number((await c.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size')).rows[0]!.size);
      await c.end();
    } else {
      const file = cfg.datastore.type === 'sqlite' ? cfg.datastore.path : '';
      dbBytes = [file, `${file}-wal`].filter((f) => existsSync(f)).reduce((n, f) => n + statSync(f).size, 0);
    }
    const mb = (b: number) => round(b / 1024 / 1024, 1);
    const rss = process.memoryUsage().rss;
    peak = Math.max(peak, rss);
    const figures: Figures = {
      agents: AGENTS,
      entries: total,
      attest_ms: round(ready.attestMs, 0),
      create_entries_per_s: round(createRate, 0),
      create_all_synced_ms: allSynced - t0,
      create_last_to_synced_ms: allSynced - createdAt,
      update_one_per_agent: { write_ms: u0 - w0, all_agents_ms: updated },
      update_one_per_agent_api_ms: apiMs,
      federated_bundle_all_agents_ms: fedMs,
      server_rss_mb: mb(rss),
      server_peak_rss_mb: mb(peak),
      agents_process_rss_mb: mb(st.rssBytes),
      database_mb: mb(dbBytes),
      sync: {
        messages: st.messages,
        passes: st.passes,
        multi_message_passes: st.multiMessagePasses,
        largest_message_bytes: st.largestMessageBytes,
        message_limit_bytes: SYNC_MESSAGE_LIMIT,
        stream_errors: st.streamErrors,
      },
    };
    console.log(
      `${name}: server RSS ${figures.server_rss_mb} MB (peak ${figures.server_peak_rss_mb} MB), agents' process ${figures.agents_process_rss_mb} MB, database ${figures.database_mb} MB; ` +
        `${st.messages} sync messages, largest ${st.largestMessageBytes} bytes, ${st.streamErrors} stream errors`,
    );
    return figures;
  } finally {
    clearInterval(sampler);
    agents?.child.kill('SIGTERM');
    admin?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `bench scale`: an in-process server (memory key manager: this measures the
 * datastore and the agent API, not signing) with AGENTS simulated agents in a
 * child process (bench/scale-agents.ts), each really attested and syncing
 * over mTLS, each authorized for PER_AGENT entries; on SQLite, then on
 * PostgreSQL (a local cluster made by initdb, TCP on 127.0.0.1, fsync on).
 * The server's RSS is the bench process's (the server and this driver).
 */
export async function benchScale(): Promise<void> {
  const only = process.env.BENCH_SCALE_DB;
  const result: Record<string, unknown> = { date: new Date().toISOString(), cores: cpus().length, agents: AGENTS, entries_per_agent: PER_AGENT, batch: BATCH };
  if (only !== 'postgres') result.sqlite = await run('sqlite', undefined);
  if (only !== 'sqlite') {
    const pg = await startPostgres();
    try {
      result.postgres = await run('postgres', pg);
    } finally {
      pg.destroy();
    }
  }
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/scale.json', JSON.stringify(result, null, 2) + '\n');
  console.log('wrote bench/results/scale.json');
}
