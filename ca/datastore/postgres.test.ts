import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { parseServerConfig } from '../config.js';
import { bundle, entry, rejection } from '../../test/contract/datastore.js';
import { captureLogger } from '../../test/helpers/log.js';
import { lacks } from '../../test/helpers/needs.js';
import { POSTGRES_NEEDS, type PostgresCluster, havePostgres, startPostgres } from '../../test/helpers/postgres.js';
import { openDataStore, type DataStoreConfig } from './registry.js';
import { MIGRATIONS, PostgresDataStore, SCHEMA_VERSION, parseConnectionString } from './postgres/index.js';

// The behaviour every DataStore shares is checked by the contract suite
// (test/contract/datastore.ts, run from postgres/contract.test.ts). This
// file keeps what only PostgreSQL has: the connection settings and the
// password, a server that goes away and comes back, several store
// instances (as several servers) on one database, and the migration lock.

const minimal = { trust_domain: 'example.org', data_dir: '/var/lib/anchorage', key_manager: { type: 'memory' } };
const configError = (datastore: unknown): string => {
  try {
    parseServerConfig({ ...minimal, datastore }, 'server.yaml', '/etc/anchorage');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the config to be refused');
};

describe('postgres datastore config', () => {
  const url = 'postgresql://anchorage@db.example:5433/anchorage?sslmode=verify-full';

  it('takes a connection string with defaults applied and password_file made absolute', () => {
    const cfg = parseServerConfig({ ...minimal, datastore: { type: 'postgres', connection_string: url, password_file: 'db.pw' } }, 'server.yaml', '/etc/anchorage');
    expect(cfg.datastore).toEqual({
      type: 'postgres',
      connection_string: url,
      password_file: '/etc/anchorage/db.pw',
      max_connections: 10,
      connect_timeout: 10,
      statement_timeout: 30,
    });
    expect(parseConnectionString(url)).toEqual({
      user: 'anchorage',
      host: 'db.example',
      port: 5433,
      database: 'anchorage',
      sslmode: 'verify-full',
      applicationName: 'anchorage',
    });
    // A Unix socket: TLS off unless asked for.
    expect(parseConnectionString('postgres://anchorage@/state?host=/run/postgresql')).toEqual({
      user: 'anchorage',
      host: '/run/postgresql',
      port: 5432,
      database: 'state',
      sslmode: 'disable',
      applicationName: 'anchorage',
    });
    // TCP without sslmode: verified TLS.
    expect(parseConnectionString('postgresql://a@db/x').sslmode).toBe('verify-full');
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a string that is not a URL', { connection_string: 'host=db user=a' }, 'datastore.connection_string: is not a URL; expected postgresql://user@host:port/database'],
    ['another scheme', { connection_string: 'mysql://a@db/x' }, 'datastore.connection_string: must start with postgresql:// (found mysql://)'],
    ['no user', { connection_string: 'postgresql://db/x' }, 'datastore.connection_string: must name the user (postgresql://user@host/database)'],
    ['no database', { connection_string: 'postgresql://a@db:5432' }, 'datastore.connection_string: must name one database (postgresql://user@host/database)'],
    ['an unknown parameter', { connection_string: 'postgresql://a@db/x?sslcert=/c.pem' }, 'datastore.connection_string: unknown parameter "sslcert"; known: sslmode, sslrootcert, host, port, application_name'],
    ['a port twice', { connection_string: 'postgresql://a@db:5432/x?port=5433' }, 'datastore.connection_string: port= must be a port number (1-65535), given only when the URL has none'],
    ['a plaintext fallback sslmode', { connection_string: 'postgresql://a@db/x?sslmode=prefer' }, 'datastore.connection_string: sslmode must be one of disable, require, verify-ca, verify-full (found "prefer")'],
    ['a relative socket dir', { connection_string: 'postgresql://a@/x?host=run' }, 'datastore.connection_string: host= must be the absolute directory of a Unix socket'],
    ['a parameter twice', { connection_string: 'postgresql://a@db/x?sslmode=disable&sslmode=require' }, 'datastore.connection_string: parameter sslmode is given twice'],
    ['no connection string', {}, 'datastore.connection_string: Invalid input: expected string, received undefined'],
    ['both password sources', { connection_string: url, password_env: 'PW', password_file: '/pw' }, 'datastore: give at most one of password_env or password_file'],
    ['a bad variable name', { connection_string: url, password_env: 'DB-PW' }, 'datastore.password_env: must be an environment variable name'],
    ['an unknown key', { connection_string: url, pool_size: 3 }, 'datastore: unknown key(s): pool_size'],
    ['too many connections', { connection_string: url, max_connections: 1000 }, 'datastore.max_connections: Too big: expected number to be <=100'],
    ['a bad timeout', { connection_string: url, statement_timeout: 'long' }, 'datastore.statement_timeout: "long" is not a duration'],
  ])('refuses %s, naming the key', (_name, fields, expected) => {
    expect(configError({ type: 'postgres', ...fields })).toContain(`config: server.yaml: ${expected}`);
  });

  it('refuses a password in the connection string without repeating it', () => {
    const message = configError({ type: 'postgres', connection_string: 'postgresql://anchorage:hunter2secret@db/x' });
    expect(message).toBe('config: server.yaml: datastore.connection_string: must not contain a password: give it with password_env or password_file');
    expect(message).not.toContain('hunter2secret');
  });

  describe('the password source, read at open', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'anchorage-pg-cfg-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const open = (extra: Record<string, unknown>) =>
      openDataStore(
        { type: 'postgres', connection_string: 'postgresql://a@127.0.0.1:1/x?sslmode=disable', max_connections: 1, connect_timeout: 1, statement_timeout: 1, ...extra } as DataStoreConfig,
        { logger: captureLogger().logger },
      );

    it('refuses an unset variable', async () => {
      delete process.env.ANCHORAGE_TEST_NO_SUCH_PW;
      const err = await rejection(open({ password_env: 'ANCHORAGE_TEST_NO_SUCH_PW' }), 'failed_precondition');
      expect(err.message).toBe('config: datastore.password_env: environment variable ANCHORAGE_TEST_NO_SUCH_PW is not set');
    });

    it('refuses a missing file', async () => {
      const file = join(dir, 'missing.pw');
      const err = await rejection(open({ password_file: file }), 'failed_precondition');
      expect(err.message).toBe(`config: datastore.password_file: cannot read ${file}: ENOENT`);
    });

    it('refuses a file others may read, without reading it', async () => {
      const file = join(dir, 'open.pw');
      writeFileSync(file, 'sekrit-in-file\n');
      chmodSync(file, 0o644);
      const err = await rejection(open({ password_file: file }), 'failed_precondition');
      expect(err.message).toBe(`config: datastore.password_file: ${file} is readable by group or others (mode 644); chmod 600 it`);
    });

    it('refuses an empty file', async () => {
      const file = join(dir, 'empty.pw');
      writeFileSync(file, '\n', { mode: 0o600 });
      const err = await rejection(open({ password_file: file }), 'failed_precondition');
      expect(err.message).toBe(`config: datastore.password_file: ${file} is empty`);
    });
  });
});

describe.skipIf(lacks(!havePostgres, POSTGRES_NEEDS))('postgres datastore against a real server', () => {
  let pg: PostgresCluster;
  beforeAll(async () => {
    pg = await startPostgres();
  }, 120_000);
  afterAll(() => pg?.destroy());

  const options = (database: string, over: Partial<Parameters<typeof PostgresDataStore.open>[0]> = {}) => ({
    target: parseConnectionString(pg.url(database)),
    password: pg.password,
    maxConnections: 4,
    connectTimeout: 5,
    statementTimeout: 30,
    ...over,
  });

  it('opens through the registry with password_file and password_env, logging no password', async () => {
    const db = await pg.createDatabase();
    const { logger, records } = captureLogger();
    const base = { type: 'postgres', connection_string: pg.url(db), max_connections: 2, connect_timeout: 5, statement_timeout: 30 } as const;
    const byFile = await openDataStore({ ...base, password_file: pg.passwordFile }, { logger });
    await byFile.setMeta('trust_domain', 'example.org');
    await byFile.close();
    process.env.ANCHORAGE_TEST_PG_PW = pg.password;
    try {
      const byEnv = await openDataStore({ ...base, password_env: 'ANCHORAGE_TEST_PG_PW' }, { logger });
      expect(await byEnv.getMeta('trust_domain')).toBe('example.org');
      await byEnv.close();
    } finally {
      delete process.env.ANCHORAGE_TEST_PG_PW;
    }
    expect(records.map((r) => r.msg)).toContain('datastore: PostgreSQL schema is current');
    expect(JSON.stringify(records)).not.toContain(pg.password);
  });

  it('connects through the Unix socket form of the connection string', async () => {
    const db = await pg.createDatabase();
    const ds = await PostgresDataStore.open(options(db, { target: parseConnectionString(`postgresql://anchorage@/${db}?host=${pg.socketDir}&port=${pg.port}`) }));
    try {
      expect(ds.where).toBe(`postgres anchorage@[socket ${pg.socketDir}]:${pg.port}/${db}`);
      await ds.setMeta('k', 'v');
      expect(await ds.getMeta('k')).toBe('v');
    } finally {
      await ds.close();
    }
  });

  it('refuses a wrong password with unavailable, naming the target and not the password', async () => {
    const db = await pg.createDatabase();
    const err = await rejection(PostgresDataStore.open(options(db, { password: 'not-the-password-42' })), 'unavailable');
    expect(err.message).toBe(`datastore: cannot open postgres anchorage@127.0.0.1:${pg.port}/${db}: password authentication failed for user "anchorage"`);
    expect(err.message).not.toContain('not-the-password-42');
  });

  it('refuses a database that does not exist with unavailable', async () => {
    const err = await rejection(PostgresDataStore.open(options('no_such_db')), 'unavailable');
    expect(err.message).toBe(`datastore: cannot open postgres anchorage@127.0.0.1:${pg.port}/no_such_db: database "no_such_db" does not exist`);
  });

  it('records the schema version once when several servers open a fresh database at once', async () => {
    const db = await pg.createDatabase();
    // Without the advisory lock, concurrent CREATE TABLEs fail with a
    // duplicate pg_type row and the version would be recorded twice.
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresDataStore.open(options(db))));
    const c = await pg.connect(db);
    try {
      const { rows } = await c.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
      expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    } finally {
      await c.end();
      for (const s of stores) await s.close();
    }
  });

  it('refuses a database written by a newer build, and changes nothing in it', async () => {
    const db = await pg.createDatabase();
    await (await PostgresDataStore.open(options(db))).close();
    const c = await pg.connect(db);
    try {
      await c.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)', [SCHEMA_VERSION + 1]);
      const err = await rejection(PostgresDataStore.open(options(db)), 'failed_precondition');
      expect(err.message).toBe(
        `datastore: postgres anchorage@127.0.0.1:${pg.port}/${db} has schema version ${SCHEMA_VERSION + 1} but this build knows only up to ${SCHEMA_VERSION}; upgrade anchorage or restore a matching backup`,
      );
      const { rows } = await c.query<{ n: string }>('SELECT count(*) AS n FROM schema_migrations');
      expect(rows[0]!.n).toBe(String(SCHEMA_VERSION + 1));
    } finally {
      await c.end();
    }
  });

  it('hands each join token to exactly one of two stores consuming concurrently', async () => {
    const db = await pg.createDatabase();
    const a = await PostgresDataStore.open(options(db));
    const b = await PostgresDataStore.open(options(db));
    try {
      const tokens = Array.from({ length: 40 }, (_, i) => `token-${i}`);
      for (const token of tokens) await a.createJoinToken({ token, expiresAt: 2_000_000_000 });
      const now = 1_700_000_000;
      const [fromA, fromB] = await Promise.all([
        Promise.all(tokens.map((t) => a.consumeJoinToken(t, now))),
        Promise.all(tokens.map((t) => b.consumeJoinToken(t, now))),
      ]);
      tokens.forEach((token, i) => {
        const winners = [fromA[i], fromB[i]].filter((t) => t !== undefined);
        expect(winners).toEqual([{ token, expiresAt: 2_000_000_000 }]);
      });
      expect(await a.consumeJoinToken('token-0', now)).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('raises a bundle sequence only upwards when two stores write at once', async () => {
    const db = await pg.createDatabase();
    const a = await PostgresDataStore.open(options(db));
    const b = await PostgresDataStore.open(options(db));
    try {
      const seqs = Array.from({ length: 30 }, (_, i) => i + 1);
      const results = await Promise.all(seqs.map((s) => Promise.allSettled([a.putBundle(bundle(s)), b.putBundle(bundle(s))])));
      // Each sequence is stored by at most one of the two; every refusal is failed_precondition.
      for (const pair of results) {
        expect(pair.filter((r) => r.status === 'fulfilled').length).toBeLessThanOrEqual(1);
        for (const r of pair) if (r.status === 'rejected') expect((r.reason as AnchorageError).code).toBe('failed_precondition');
      }
      expect((await b.getBundle('example.org'))?.sequence).toBe(30);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('holds at most max_connections and cancels a statement past statement_timeout', async () => {
    const db = await pg.createDatabase();
    const ds = await PostgresDataStore.open(options(db, { maxConnections: 2, statementTimeout: 1 }));
    const admin = await pg.connect(db);
    try {
      const created = await ds.createEntry(entry());
      await Promise.all(Array.from({ length: 30 }, (_, i) => ds.createEntry(entry({ spiffeId: `spiffe://example.org/w${i}` }))));
      const { rows } = await admin.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'anchorage'");
      expect(Number(rows[0]!.n)).toBeLessThanOrEqual(2);
      // Another session holds the entry's row lock: the update waits, and
      // PostgreSQL cancels it after statement_timeout.
      await admin.query('BEGIN');
      await admin.query('SELECT * FROM entries WHERE id = $1 FOR UPDATE', [created.id]);
      const err = await rejection(ds.updateEntry(created.id, entry({ hint: 'changed' })), 'unavailable');
      expect(err.message).toBe('datastore: update entry: write failed, nothing was saved: canceling statement due to statement timeout');
      await admin.query('ROLLBACK');
      expect((await ds.getEntry(created.id))?.hint).toBe('frontend');
    } finally {
      await admin.end();
      await ds.close();
    }
  });

  it('fails with unavailable while PostgreSQL is down and works again once it is back, nothing confirmed lost', async () => {
    const db = await pg.createDatabase();
    const ds = await PostgresDataStore.open(options(db));
    try {
      const before = await Promise.all(Array.from({ length: 10 }, (_, i) => ds.createEntry(entry({ spiffeId: `spiffe://example.org/before-${i}` }))));
      pg.stop();
      try {
        const write = await rejection(ds.createEntry(entry({ spiffeId: 'spiffe://example.org/during' })), 'unavailable');
        expect(write.message).toMatch(/^datastore: create entry: write failed, nothing was saved: /);
        await rejection(ds.listEntries(), 'unavailable');
        await rejection(ds.consumeJoinToken('t', 1), 'unavailable');
      } finally {
        pg.start();
      }
      const after = await ds.createEntry(entry({ spiffeId: 'spiffe://example.org/after' }));
      const ids = (await ds.listEntries()).map((e) => e.id).sort();
      expect(ids).toEqual([...before.map((e) => e.id), after.id].sort());
      // pg_ctl restart with the pool's connections open: each call either
      // fails with unavailable on a cut connection or succeeds; none is lost once confirmed.
      pg.restart();
      const confirmed: string[] = [];
      for (let i = 0; i < 10; i++) {
        try {
          confirmed.push((await ds.createEntry(entry({ spiffeId: `spiffe://example.org/restart-${i}` }))).id);
        } catch (err) {
          expect((err as AnchorageError).code).toBe('unavailable');
        }
      }
      expect(confirmed.length).toBeGreaterThan(0);
      const all = new Set((await ds.listEntries()).map((e) => e.id));
      for (const id of [...ids, ...confirmed]) expect(all.has(id)).toBe(true);
    } finally {
      await ds.close();
    }
  });
});

describe.skipIf(lacks(!havePostgres, POSTGRES_NEEDS))('postgres datastore over TLS', () => {
  let pg: PostgresCluster;
  beforeAll(async () => {
    pg = await startPostgres({ tls: true });
  }, 120_000);
  afterAll(() => pg?.destroy());

  const open = async (query: string) => {
    const db = await pg.createDatabase();
    const target = parseConnectionString(`postgresql://anchorage@127.0.0.1:${pg.port}/${db}?${query}`);
    return { db, ds: PostgresDataStore.open({ target, password: pg.password, maxConnections: 2, connectTimeout: 5, statementTimeout: 30 }) };
  };

  it('verify-full with the CA of the server connects encrypted', async () => {
    const { db, ds: opening } = await open(`sslmode=verify-full&sslrootcert=${pg.caFile!}&application_name=tls-check`);
    const ds = await opening;
    const admin = await pg.connect(db);
    try {
      await ds.setMeta('k', 'v');
      const { rows } = await admin.query<{ ssl: boolean }>(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'tls-check'",
      );
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.ssl)).toBe(true);
    } finally {
      await admin.end();
      await ds.close();
    }
  });

  it('verify-full against the system roots refuses the unknown CA with unavailable', async () => {
    const { db, ds } = await open('sslmode=verify-full');
    const err = await rejection(ds, 'unavailable');
    expect(err.message).toBe(`datastore: cannot open postgres anchorage@127.0.0.1:${pg.port}/${db}: unable to verify the first certificate`);
  });

  it('refuses an sslrootcert that cannot be read with failed_precondition', async () => {
    const { db, ds } = await open('sslmode=verify-full&sslrootcert=/nonexistent/ca.pem');
    const err = await rejection(ds, 'failed_precondition');
    expect(err.message).toBe(`datastore: postgres anchorage@127.0.0.1:${pg.port}/${db}: cannot read sslrootcert /nonexistent/ca.pem: ENOENT`);
  });
});
