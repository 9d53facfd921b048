import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tempDir, writeFile } from '../helpers/process.js';
import { POSTGRES_NEEDS, type PostgresCluster, havePostgres, startPostgres } from '../helpers/postgres.js';
import { softHsmAvailable } from '../helpers/softhsm.js';
import { startTrustDomain, waitForSvid, type RealTrustDomain } from '../helpers/trust-domain.js';
import { lacks } from '../helpers/needs.js';

// `anchorage server run` on SoftHSM2 with `datastore: {type: postgres}`:
// the server keeps its state in a real PostgreSQL (initdb'd by the test),
// attests an agent with a join token and the agent serves an X509-SVID.

const TD = 'pg.test';
const WEB = `spiffe://${TD}/web`;

describe('server.yaml with a postgres datastore, refused at load', () => {
  it('exits with the key named and the inline password not repeated, before connecting', () => {
    const tmp = tempDir('anchorage-pg-badcfg-');
    try {
      const config = writeFile(
        join(tmp.dir, 'server.yaml'),
        `trust_domain: ${TD}\ndata_dir: ${join(tmp.dir, 'data')}\nkey_manager: {type: memory}\n` +
          'datastore:\n  type: postgres\n  connection_string: postgresql://anchorage:Inline-Secret-9@127.0.0.1:1/anchorage?sslmode=disable\n',
      );
      const r = cli(['server', 'run', '-c', config]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`config: ${config}: datastore.connection_string: must not contain a password: give it with password_env or password_file`);
      expect(r.stderr + r.stdout).not.toContain('Inline-Secret-9');
    } finally {
      tmp.cleanup();
    }
  });
});

describe.skipIf(lacks(!softHsmAvailable(), 'softhsm2') || lacks(!havePostgres, POSTGRES_NEEDS))('server on a PostgreSQL datastore', () => {
  let pg: PostgresCluster;
  let db: string;
  let tmp: { dir: string; cleanup: () => void };
  let td: RealTrustDomain;

  beforeAll(async () => {
    pg = await startPostgres();
    db = await pg.createDatabase();
    tmp = tempDir('anchorage-pg-server-');
    chmodSync(tmp.dir, 0o755);
    td = await startTrustDomain(tmp.dir, {
      trustDomain: TD,
      entries: [{ spiffeId: WEB, selectors: [`unix:uid:${process.getuid!()}`] }],
      serverYaml: `datastore:\n  type: postgres\n  connection_string: ${pg.url(db)}\n  password_file: ${pg.passwordFile}\n  max_connections: 4\n`,
    });
  }, 180_000);

  afterAll(async () => {
    await td?.close();
    tmp?.cleanup();
    pg?.destroy();
  });

  it('serves the agent from state kept in PostgreSQL, and no SQLite file', async () => {
    const svid = await waitForSvid(td.workloadSocket, WEB, 30_000);
    expect(svid.svids[0]!.spiffe_id).toBe(WEB);
    const c = await pg.connect(db);
    try {
      const entries = await c.query<{ id: string; spiffe_id: string; parent_id: string }>('SELECT id, spiffe_id, parent_id FROM entries');
      expect(entries.rows).toEqual([{ id: td.entryIds[0], spiffe_id: WEB, parent_id: td.agentId }]);
      const agents = await c.query<{ spiffe_id: string; attestation_type: string }>('SELECT spiffe_id, attestation_type FROM agents');
      expect(agents.rows).toEqual([{ spiffe_id: td.agentId, attestation_type: 'join_token' }]);
      const meta = await c.query<{ value: string }>("SELECT value FROM meta WHERE key = 'trust_domain'");
      expect(meta.rows).toEqual([{ value: TD }]);
      const own = await c.query<{ n: string }>('SELECT count(*) AS n FROM bundles WHERE trust_domain = $1', [TD]);
      expect(own.rows[0]!.n).toBe('1');
      // The join token was consumed: gone from the table.
      expect((await c.query('SELECT 1 FROM join_tokens')).rowCount).toBe(0);
    } finally {
      await c.end();
    }
    expect(existsSync(join(tmp.dir, 'server', 'datastore.sqlite3'))).toBe(false);
    expect(td.serverLog()).toContain('datastore: PostgreSQL schema is current');
    expect(td.serverLog()).not.toContain(pg.password);
  });

  it('keeps serving across a PostgreSQL restart: the admin API answers UNAVAILABLE or succeeds, and a new entry reaches the agent', async () => {
    pg.restart();
    const API = `spiffe://${TD}/api`;
    // The first calls may meet the pool's cut connections; each is refused
    // with UNAVAILABLE (nothing saved) rather than half-done.
    let created: { id: string } | undefined;
    const refusals: number[] = [];
    for (let attempt = 0; attempt < 20 && created === undefined; attempt++) {
      try {
        created = await td.admin.call('CreateEntry', {
          entry: { spiffe_id: API, parent_id: td.agentId, selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }, { type: 'unix', value: 'gid:0' }] },
        });
      } catch (err) {
        refusals.push((err as { code: number }).code);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    expect(refusals.every((code) => code === 14)).toBe(true); // grpc UNAVAILABLE
    expect(created).toBeDefined();
    const c = await pg.connect(db);
    try {
      const { rows } = await c.query<{ spiffe_id: string }>('SELECT spiffe_id FROM entries ORDER BY spiffe_id');
      // Exactly the two confirmed entries: none lost, none duplicated by the retries.
      expect(rows.map((r) => r.spiffe_id)).toEqual([API, WEB]);
    } finally {
      await c.end();
    }
    const svid = await waitForSvid(td.workloadSocket, API, 30_000);
    expect(svid.svids.map((s) => s.spiffe_id)).toContain(API);
  });
});
