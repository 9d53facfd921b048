import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AnchorageError } from '../../common/errors.js';
import type { AttestedAgent, JournalEntry, NewEntry, NewRelationship, RelationshipStatus, StoredBundle } from './DataStore.js';
import { canMount, mountSmallFs, type SmallFs } from '../../test/helpers/tmpfs.js';
import { MIGRATIONS, SCHEMA_VERSION, SQLITE_PRAGMAS, SqliteDataStore } from './sqlite/index.js';

let dir: string;
let open: SqliteDataStore[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-ds-'));
  open = [];
});

afterEach(async () => {
  for (const ds of open) await ds.close();
  rmSync(dir, { recursive: true, force: true });
});

function openStore(path = join(dir, 'state', 'anchorage.db'), now = () => 1_700_000_000): SqliteDataStore {
  const ds = SqliteDataStore.open(path, { now });
  open.push(ds);
  return ds;
}

function entry(over: Partial<NewEntry> = {}): NewEntry {
  return {
    spiffeId: 'spiffe://example.org/web',
    parentId: 'spiffe://example.org/spire/agent/join_token/abc',
    selectors: [
      { type: 'unix', value: 'uid:1000' },
      { type: 'docker', value: 'label:app:web' },
    ],
    x509SvidTtl: 3600,
    jwtSvidTtl: 300,
    dnsNames: ['web.example.org', 'web'],
    federatesWith: ['partner.example'],
    hint: 'frontend',
    admin: false,
    downstream: true,
    ...over,
  };
}

function agent(over: Partial<AttestedAgent> = {}): AttestedAgent {
  return {
    spiffeId: 'spiffe://example.org/spire/agent/join_token/abc',
    attestationType: 'join_token',
    certSerial: '0a1b2c',
    certNotAfter: 1_700_003_600,
    selectors: [{ type: 'join_token', value: 'abc' }],
    evicted: false,
    createdAt: 1_700_000_000,
    updatedAt: 1_700_000_000,
    ...over,
  };
}

function bundle(sequence: number, over: Partial<StoredBundle> = {}): StoredBundle {
  return {
    trustDomain: 'example.org',
    document: JSON.stringify({ keys: [], spiffe_sequence: sequence }),
    sequence,
    refreshHint: 300,
    updatedAt: 1_700_000_000 + sequence,
    ...over,
  };
}

function journal(over: Partial<JournalEntry> = {}): JournalEntry {
  return {
    id: 'x509-1',
    kind: 'x509',
    status: 'preparing',
    keyId: 'anchorage-x509-1',
    notBefore: 1_700_000_000,
    notAfter: 1_700_086_400,
    createdAt: 1_700_000_000,
    ...over,
  };
}

/** Resolves to the AnchorageError a promise (or a throwing call) fails with. */
async function failure(p: Promise<unknown> | (() => unknown)): Promise<AnchorageError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return err as AnchorageError;
  }
  throw new Error('expected a failure');
}

describe('SqliteDataStore.open', () => {
  it('creates a missing directory 0700 and the database files 0600', async () => {
    const path = join(dir, 'a', 'b', 'anchorage.db');
    const ds = openStore(path);
    await ds.setMeta('k', 'v'); // make sure -wal has been written
    expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    for (const suffix of ['-wal', '-shm']) {
      expect(existsSync(path + suffix)).toBe(true);
      expect(statSync(path + suffix).mode & 0o777).toBe(0o600);
    }
  });

  it('leaves an existing directory alone but tightens a too-open database file', async () => {
    const sub = join(dir, 'existing');
    mkdirSync(sub, { mode: 0o755 });
    const path = join(sub, 'anchorage.db');
    writeFileSync(path, '', { mode: 0o644 });
    openStore(path);
    expect(statSync(sub).mode & 0o777).toBe(0o755);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('uses WAL and records the schema version once', async () => {
    const path = join(dir, 'anchorage.db');
    const ds = openStore(path);
    await ds.close();
    openStore(path); // a second open must not re-apply migrations

    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      const versions = raw.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all();
      expect(versions).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
    } finally {
      raw.close();
    }
    expect(SQLITE_PRAGMAS).toContain('synchronous = FULL');
    expect(SQLITE_PRAGMAS).toContain('foreign_keys = ON');
  });

  it('refuses a database written by a newer schema', async () => {
    const path = join(dir, 'anchorage.db');
    await openStore(path).close();
    const raw = new Database(path);
    raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)').run(SCHEMA_VERSION + 1);
    raw.close();

    const err = await failure(() => SqliteDataStore.open(path));
    expect(err.code).toBe('failed_precondition');
    expect(err.message).toMatch(/^datastore: /);
    expect(err.message).toContain(path);
    expect(err.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
  });

  it('refuses a file that is not a SQLite database, naming the path', async () => {
    const path = join(dir, 'garbage.db');
    writeFileSync(path, randomBytes(8192), { mode: 0o600 });
    const err = await failure(() => SqliteDataStore.open(path));
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/^datastore: /);
    expect(err.message).toContain(path);
  });

  it('refuses a text file with a plausible name', async () => {
    const path = join(dir, 'notes.db');
    writeFileSync(path, 'hello, this is not a database\n'.repeat(200), { mode: 0o600 });
    const err = await failure(() => SqliteDataStore.open(path));
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain(path);
  });

  it('refuses a directory at the path', async () => {
    const path = join(dir, 'adir');
    mkdirSync(path);
    const err = await failure(() => SqliteDataStore.open(path));
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain(path);
  });

  it('finds everything again after a reopen', async () => {
    const path = join(dir, 'anchorage.db');
    const ds = openStore(path);
    const e = await ds.createEntry(entry());
    await ds.createJoinToken({ token: 't1', spiffeId: 'spiffe://example.org/node', expiresAt: 2_000_000_000 });
    await ds.putAgent(agent());
    await ds.putBundle(bundle(7));
    const j = journal({ certDer: new Uint8Array([0x30, 0x82, 1, 2]), publicKeySpki: new Uint8Array([9, 8]), kid: 'k1' });
    await ds.putJournal(j);
    await ds.setMeta('trust_domain', 'example.org');
    await ds.close();

    const again = openStore(path);
    expect(await again.getEntry(e.id)).toEqual(e);
    expect(await again.listAgents()).toEqual([agent()]);
    expect(await again.getBundle('example.org')).toEqual(bundle(7));
    expect(await again.listJournal()).toEqual([j]);
    expect(await again.getMeta('trust_domain')).toBe('example.org');
    expect(await again.consumeJoinToken('t1', 1_700_000_000)).toEqual({
      token: 't1',
      spiffeId: 'spiffe://example.org/node',
      expiresAt: 2_000_000_000,
    });
  });

  it('close is idempotent and later calls fail clearly', async () => {
    const ds = openStore();
    await ds.close();
    await ds.close();
    for (const call of [
      () => ds.getEntry('x'),
      () => ds.createEntry(entry()),
      () => ds.putBundle(bundle(1)),
      () => ds.setMeta('k', 'v'),
      () => ds.listJournal(),
    ]) {
      const err = await failure(call());
      expect(err.code).toBe('failed_precondition');
      expect(err.message).toMatch(/^datastore: .*closed/);
    }
  });
});

describe('registration entries', () => {
  it('creates with a fresh id, revision 1, the clock time and normalised selectors', async () => {
    const ds = openStore(undefined, () => 1_234);
    const e = await ds.createEntry(entry());
    expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(e.revision).toBe(1);
    expect(e.createdAt).toBe(1_234);
    expect(e.selectors).toEqual([
      { type: 'docker', value: 'label:app:web' },
      { type: 'unix', value: 'uid:1000' },
    ]);
    expect(e).toMatchObject({ ...entry(), selectors: e.selectors });
    expect(await ds.getEntry(e.id)).toEqual(e);

    const other = await ds.createEntry(entry({ spiffeId: 'spiffe://example.org/api' }));
    expect(other.id).not.toBe(e.id);
  });

  it('round-trips every field, including booleans, empty lists and colons in values', async () => {
    const ds = openStore();
    const fields = entry({
      selectors: [{ type: 'k8s', value: 'pod-label:app:web:v1' }],
      dnsNames: [],
      federatesWith: [],
      hint: '',
      admin: true,
      downstream: false,
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
    });
    const e = await ds.createEntry(fields);
    expect(await ds.getEntry(e.id)).toEqual({ ...fields, id: e.id, revision: 1, createdAt: 1_700_000_000 });
  });

  it('returns undefined for an unknown id', async () => {
    expect(await openStore().getEntry('00000000-0000-4000-8000-000000000000')).toBeUndefined();
  });

  it('detects duplicates regardless of selector order or repetition', async () => {
    const ds = openStore();
    await ds.createEntry(entry());
    const reordered = entry({
      selectors: [
        { type: 'unix', value: 'uid:1000' },
        { type: 'docker', value: 'label:app:web' },
        { type: 'unix', value: 'uid:1000' },
      ].reverse(),
    });
    const err = await failure(ds.createEntry(reordered));
    expect(err.code).toBe('already_exists');
    expect(err.message).toMatch(/^datastore: /);
    expect(err.message).toContain('spiffe://example.org/web');
    expect(await ds.listEntries()).toHaveLength(1);
  });

  it('stores a repeated selector once', async () => {
    const ds = openStore();
    const e = await ds.createEntry(
      entry({ selectors: [{ type: 'unix', value: 'uid:1' }, { type: 'unix', value: 'uid:1' }] }),
    );
    expect(e.selectors).toEqual([{ type: 'unix', value: 'uid:1' }]);
  });

  it('allows entries differing in spiffe id, parent or selector set', async () => {
    const ds = openStore();
    await ds.createEntry(entry());
    await ds.createEntry(entry({ spiffeId: 'spiffe://example.org/other' }));
    await ds.createEntry(entry({ parentId: 'spiffe://example.org/other-agent' }));
    await ds.createEntry(entry({ selectors: [{ type: 'unix', value: 'uid:1000' }] })); // a subset
    await ds.createEntry(entry({ selectors: [] }));
    // Selector type and value are kept apart: "a:b"+"c" is not "a"+"b:c".
    await ds.createEntry(entry({ selectors: [{ type: 'a:b', value: 'c' }] }));
    await ds.createEntry(entry({ selectors: [{ type: 'a', value: 'b:c' }] }));
    expect(await ds.listEntries()).toHaveLength(7);
  });

  it('lists with and without filters', async () => {
    const ds = openStore();
    const p1 = 'spiffe://example.org/agent/1';
    const p2 = 'spiffe://example.org/agent/2';
    const a = await ds.createEntry(entry({ parentId: p1, spiffeId: 'spiffe://example.org/a' }));
    const b = await ds.createEntry(entry({ parentId: p1, spiffeId: 'spiffe://example.org/b' }));
    const c = await ds.createEntry(entry({ parentId: p2, spiffeId: 'spiffe://example.org/a' }));

    const ids = (xs: { id: string }[]): string[] => xs.map((x) => x.id).sort();
    expect(ids(await ds.listEntries())).toEqual(ids([a, b, c]));
    expect(ids(await ds.listEntries({}))).toEqual(ids([a, b, c]));
    expect(ids(await ds.listEntries({ parentId: p1 }))).toEqual(ids([a, b]));
    expect(ids(await ds.listEntries({ spiffeId: 'spiffe://example.org/a' }))).toEqual(ids([a, c]));
    expect(ids(await ds.listEntries({ parentId: p2, spiffeId: 'spiffe://example.org/a' }))).toEqual([c.id]);
    expect(await ds.listEntries({ parentId: 'spiffe://example.org/none' })).toEqual([]);
  });

  it('updates mutable fields, bumps the revision and keeps id and createdAt', async () => {
    let clock = 100;
    const ds = openStore(undefined, () => clock);
    const e = await ds.createEntry(entry());
    clock = 200;
    const changed = entry({ hint: 'changed', dnsNames: ['x.example.org'], admin: true, x509SvidTtl: 60 });
    const u = await ds.updateEntry(e.id, changed);
    expect(u).toMatchObject({ id: e.id, revision: 2, createdAt: 100, hint: 'changed', admin: true, x509SvidTtl: 60 });
    expect(u.dnsNames).toEqual(['x.example.org']);
    expect(await ds.getEntry(e.id)).toEqual(u);

    const u2 = await ds.updateEntry(e.id, changed, 2);
    expect(u2.revision).toBe(3);
  });

  it('refuses an update at the wrong revision and leaves the entry alone', async () => {
    const ds = openStore();
    const e = await ds.createEntry(entry());
    const err = await failure(ds.updateEntry(e.id, entry({ hint: 'nope' }), 5));
    expect(err.code).toBe('failed_precondition');
    expect(err.message).toMatch(/^datastore: .*revision 1/);
    expect(await ds.getEntry(e.id)).toEqual(e);
    // 0 is a revision to compare, not "no expectation".
    expect((await failure(ds.updateEntry(e.id, entry(), 0))).code).toBe('failed_precondition');
  });

  it('reports not_found when updating or deleting an absent entry', async () => {
    const ds = openStore();
    expect((await failure(ds.updateEntry('missing', entry()))).code).toBe('not_found');
    expect((await failure(ds.deleteEntry('missing'))).code).toBe('not_found');
  });

  it('refuses an update that collides with another entry', async () => {
    const ds = openStore();
    const a = await ds.createEntry(entry());
    const b = await ds.createEntry(entry({ spiffeId: 'spiffe://example.org/b' }));
    const err = await failure(ds.updateEntry(b.id, entry({ selectors: [...entry().selectors].reverse() })));
    expect(err.code).toBe('already_exists');
    expect(err.message).toContain('spiffe://example.org/web');
    expect(await ds.getEntry(b.id)).toEqual(b);
    // Updating an entry to its own key is not a collision.
    expect((await ds.updateEntry(a.id, entry())).revision).toBe(2);
  });

  it('deletes and returns the entry', async () => {
    const ds = openStore();
    const e = await ds.createEntry(entry());
    expect(await ds.deleteEntry(e.id)).toEqual(e);
    expect(await ds.getEntry(e.id)).toBeUndefined();
    expect((await failure(ds.deleteEntry(e.id))).code).toBe('not_found');
    // The key is free again.
    await ds.createEntry(entry());
  });
});

describe('join tokens', () => {
  it('consumes a token exactly once', async () => {
    const ds = openStore();
    await ds.createJoinToken({ token: 'abc', expiresAt: 1_000 });
    const got = await ds.consumeJoinToken('abc', 999);
    expect(got).toEqual({ token: 'abc', expiresAt: 1_000 });
    expect(got && 'spiffeId' in got).toBe(false);
    expect(await ds.consumeJoinToken('abc', 999)).toBeUndefined();
  });

  it('keeps the optional spiffe id', async () => {
    const ds = openStore();
    await ds.createJoinToken({ token: 'abc', spiffeId: 'spiffe://example.org/node-1', expiresAt: 1_000 });
    expect(await ds.consumeJoinToken('abc', 0)).toEqual({
      token: 'abc',
      spiffeId: 'spiffe://example.org/node-1',
      expiresAt: 1_000,
    });
  });

  it('returns undefined for an unknown token', async () => {
    expect(await openStore().consumeJoinToken('nope', 0)).toBeUndefined();
  });

  it('removes an expired token instead of returning it', async () => {
    const ds = openStore();
    await ds.createJoinToken({ token: 'late', expiresAt: 1_000 });
    await ds.createJoinToken({ token: 'edge', expiresAt: 1_000 });
    expect(await ds.consumeJoinToken('late', 1_001)).toBeUndefined();
    // It is gone: even a caller with an earlier clock cannot use it now.
    expect(await ds.consumeJoinToken('late', 0)).toBeUndefined();
    // "now before expiry" is strict.
    expect(await ds.consumeJoinToken('edge', 1_000)).toBeUndefined();
    expect(await ds.pruneJoinTokens(0)).toBe(0);
  });

  it('refuses a duplicate token without echoing it', async () => {
    const ds = openStore();
    await ds.createJoinToken({ token: 's3cret', expiresAt: 1_000 });
    const err = await failure(ds.createJoinToken({ token: 's3cret', expiresAt: 2_000 }));
    expect(err.code).toBe('already_exists');
    expect(err.message).not.toContain('s3cret');
  });

  it('prunes expired tokens and counts them', async () => {
    const ds = openStore();
    for (const [token, expiresAt] of [
      ['a', 10],
      ['b', 20],
      ['c', 30],
      ['d', 40],
    ] as const) {
      await ds.createJoinToken({ token, expiresAt });
    }
    expect(await ds.pruneJoinTokens(5)).toBe(0);
    expect(await ds.pruneJoinTokens(25)).toBe(2);
    expect(await ds.pruneJoinTokens(25)).toBe(0);
    expect(await ds.consumeJoinToken('a', 0)).toBeUndefined();
    expect(await ds.consumeJoinToken('c', 25)).toEqual({ token: 'c', expiresAt: 30 });
  });

  it('gives a token to exactly one of many parallel consumers, across connections', async () => {
    const path = join(dir, 'anchorage.db');
    const one = openStore(path);
    const two = openStore(path);
    await one.createJoinToken({ token: 'race', expiresAt: 1_000 });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? one : two).consumeJoinToken('race', 1)),
    );
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
  });
});

describe('agents', () => {
  it('puts, replaces, lists and deletes', async () => {
    const ds = openStore();
    expect(await ds.getAgent(agent().spiffeId)).toBeUndefined();
    await ds.putAgent(agent());
    expect(await ds.getAgent(agent().spiffeId)).toEqual(agent());

    const renewed = agent({ certSerial: 'ff', certNotAfter: 1_800_000_000, evicted: true, updatedAt: 1_700_000_500 });
    await ds.putAgent(renewed);
    expect(await ds.getAgent(agent().spiffeId)).toEqual(renewed);

    const second = agent({ spiffeId: 'spiffe://example.org/spire/agent/x509pop/zz', attestationType: 'x509pop' });
    await ds.putAgent(second);
    expect(await ds.listAgents()).toEqual([renewed, second]);

    await ds.deleteAgent(renewed.spiffeId);
    await ds.deleteAgent(renewed.spiffeId); // absent: no error
    expect(await ds.listAgents()).toEqual([second]);
  });
});

describe('bundles', () => {
  it('stores the first bundle at any sequence and then only increases', async () => {
    const ds = openStore();
    expect(await ds.getBundle('example.org')).toBeUndefined();
    await ds.putBundle(bundle(5));
    expect(await ds.getBundle('example.org')).toEqual(bundle(5));

    for (const seq of [5, 4, 0]) {
      const err = await failure(ds.putBundle(bundle(seq, { document: 'stale' })));
      expect(err.code).toBe('failed_precondition');
      expect(err.message).toMatch(/^datastore: .*example\.org/);
    }
    expect(await ds.getBundle('example.org')).toEqual(bundle(5));

    await ds.putBundle(bundle(6));
    expect(await ds.getBundle('example.org')).toEqual(bundle(6));
  });

  it('keeps sequences per trust domain, lists and deletes', async () => {
    const ds = openStore();
    await ds.putBundle(bundle(10));
    await ds.putBundle(bundle(1, { trustDomain: 'partner.example' }));
    expect((await ds.listBundles()).map((b) => b.trustDomain)).toEqual(['example.org', 'partner.example']);

    await ds.deleteBundle('example.org');
    await ds.deleteBundle('example.org');
    expect(await ds.getBundle('example.org')).toBeUndefined();
    // Once deleted, nothing is stored, so any sequence is accepted again.
    await ds.putBundle(bundle(1));
    expect((await ds.getBundle('example.org'))?.sequence).toBe(1);
  });

  it('holds sequences beyond 32 bits', async () => {
    const ds = openStore();
    await ds.putBundle(bundle(2 ** 40));
    expect((await failure(ds.putBundle(bundle(2 ** 40 - 1)))).code).toBe('failed_precondition');
    await ds.putBundle(bundle(2 ** 40 + 1));
    expect((await ds.getBundle('example.org'))?.sequence).toBe(2 ** 40 + 1);
  });

  it('never lets two parallel writers of the same sequence both succeed', async () => {
    const path = join(dir, 'anchorage.db');
    const one = openStore(path);
    const two = openStore(path);
    await one.putBundle(bundle(1));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? one : two).putBundle(bundle(2, { document: `w${i}` }))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });
});

describe('CA journal', () => {
  it('round-trips blobs as Uint8Array and leaves absent fields undefined', async () => {
    const ds = openStore();
    const bare = journal();
    await ds.putJournal(bare);
    const [got] = await ds.listJournal();
    expect(got).toEqual(bare);
    expect(got && ('certDer' in got || 'publicKeySpki' in got || 'kid' in got)).toBe(false);

    const der = new Uint8Array(randomBytes(700));
    // A view into a larger buffer: only the viewed bytes must be stored.
    const backing = new Uint8Array([0xde, 0xad, 1, 2, 3, 0xbe, 0xef]);
    const spki = backing.subarray(2, 5);
    await ds.putJournal(journal({ status: 'active', certDer: der, publicKeySpki: spki, kid: 'kid-1' }));
    const [full] = await ds.listJournal();
    expect(full?.certDer).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(full!.certDer!).equals(Buffer.from(der))).toBe(true);
    expect(Array.from(full!.publicKeySpki!)).toEqual([1, 2, 3]);
    expect(full).toMatchObject({ status: 'active', kid: 'kid-1' });
  });

  it('inserts or replaces by id, keeps other rows and deletes', async () => {
    const ds = openStore();
    await ds.putJournal(journal({ id: 'root-1', kind: 'root', status: 'active', createdAt: 1 }));
    await ds.putJournal(journal({ id: 'jwt-1', kind: 'jwt', kid: 'k1', createdAt: 2 }));
    await ds.putJournal(journal({ id: 'jwt-1', kind: 'jwt', status: 'old', createdAt: 2 })); // kid dropped
    const rows = await ds.listJournal();
    expect(rows.map((r) => [r.id, r.status])).toEqual([
      ['root-1', 'active'],
      ['jwt-1', 'old'],
    ]);
    expect(rows[1]?.kid).toBeUndefined();

    await ds.deleteJournal('jwt-1');
    await ds.deleteJournal('jwt-1');
    expect((await ds.listJournal()).map((r) => r.id)).toEqual(['root-1']);
  });

  it('rejects a kind or status outside the documented sets', async () => {
    const ds = openStore();
    const err = await failure(ds.putJournal(journal({ kind: 'bogus' as never })));
    expect(err.code).toBe('internal');
    expect(err.message).toMatch(/^datastore: put journal: /);
  });
});

describe('meta', () => {
  it('gets, sets and overwrites', async () => {
    const ds = openStore();
    expect(await ds.getMeta('trust_domain')).toBeUndefined();
    await ds.setMeta('trust_domain', 'example.org');
    await ds.setMeta('trust_domain', 'example.com');
    expect(await ds.getMeta('trust_domain')).toBe('example.com');
    await ds.setMeta('empty', '');
    expect(await ds.getMeta('empty')).toBe('');
  });
});

describe('parallel use', () => {
  it('stays consistent under many concurrent calls', async () => {
    const ds = openStore();
    const n = 200;
    const created = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        // every id appears twice, in different selector orders
        ds.createEntry(
          entry({
            spiffeId: `spiffe://example.org/w/${i % (n / 2)}`,
            selectors: i < n / 2 ? entry().selectors : [...entry().selectors].reverse(),
          }),
        ),
      ),
    );
    const ok = created.filter((r) => r.status === 'fulfilled');
    const dup = created.filter(
      (r) => r.status === 'rejected' && (r.reason as AnchorageError).code === 'already_exists',
    );
    expect(ok).toHaveLength(n / 2);
    expect(dup).toHaveLength(n / 2);
    const entries = await ds.listEntries();
    expect(entries).toHaveLength(n / 2);

    // Many updates with the same expected revision: exactly one wins.
    const target = entries[0]!;
    const updates = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => ds.updateEntry(target.id, entry({ ...target, hint: `h${i}` }), 1)),
    );
    expect(updates.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await ds.getEntry(target.id))?.revision).toBe(2);

    // Unconditional updates all apply, one revision each.
    await Promise.all(Array.from({ length: 30 }, () => ds.updateEntry(target.id, entry({ ...target }))));
    expect((await ds.getEntry(target.id))?.revision).toBe(32);

    // Mixed traffic on all tables.
    await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => ds.setMeta(`k${i}`, `v${i}`)),
      ...Array.from({ length: 50 }, (_, i) => ds.putJournal(journal({ id: `j${i}`, createdAt: i }))),
      ...Array.from({ length: 50 }, (_, i) => ds.createJoinToken({ token: `t${i}`, expiresAt: 10 + i })),
      ...entries.slice(1, 51).map((e) => ds.deleteEntry(e.id)),
    ]);
    expect(await ds.listJournal()).toHaveLength(50);
    expect(await ds.getMeta('k49')).toBe('v49');
    expect(await ds.pruneJoinTokens(35)).toBe(26);
    expect(await ds.listEntries()).toHaveLength(n / 2 - 50);
  });
});

describe('durability', () => {
  // The child runs the real module: a tiny loader transpiles the .ts sources
  // with the project's TypeScript, so the test exercises exactly the pragmas
  // and statements the server uses.
  const here = fileURLToPath(new URL('.', import.meta.url));
  const tsUrl = pathToFileURL(createRequire(import.meta.url).resolve('typescript')).href;
  const loader = `
    import ts from ${JSON.stringify(tsUrl)};
    import { existsSync, readFileSync } from 'node:fs';
    import { fileURLToPath } from 'node:url';
    export async function resolve(specifier, context, next) {
      if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.startsWith('file:')) {
        const js = new URL(specifier, context.parentURL);
        const tsFile = new URL(js.href.slice(0, -3) + '.ts');
        if (!existsSync(fileURLToPath(js)) && existsSync(fileURLToPath(tsFile))) {
          return { url: tsFile.href, shortCircuit: true };
        }
      }
      return next(specifier, context);
    }
    export async function load(url, context, next) {
      if (!url.endsWith('.ts')) return next(url, context);
      const out = ts.transpileModule(readFileSync(fileURLToPath(url), 'utf8'), {
        fileName: fileURLToPath(url),
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
      });
      return { format: 'module', source: out.outputText, shortCircuit: true };
    }`;
  const child = `
    import { register } from 'node:module';
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(loader)}));
    const { SqliteDataStore } = await import(${JSON.stringify(pathToFileURL(join(here, 'sqlite', 'index.ts')).href)});
    const ds = SqliteDataStore.open(process.argv[1]);
    const e = await ds.createEntry({
      spiffeId: 'spiffe://example.org/durable', parentId: 'spiffe://example.org/agent', selectors: [{ type: 'unix', value: 'uid:7' }],
      x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', admin: false, downstream: false,
    });
    await ds.putJournal({ id: 'root-1', kind: 'root', status: 'preparing', keyId: 'anchorage-root-1',
      publicKeySpki: new Uint8Array([1, 2, 3]), notBefore: 1, notAfter: 2, createdAt: 3 });
    process.stdout.write(JSON.stringify({ entryId: e.id }) + '\\n');
    setInterval(() => {}, 60_000); // stay alive with the connection open until killed
  `;

  it('keeps writes that returned before the process was killed with SIGKILL', async () => {
    const path = join(dir, 'state', 'anchorage.db');
    const proc = spawn(process.execPath, ['--input-type=module', '-e', child, path], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((res) => proc.on('exit', (_code, signal) => res(signal)));

    const line = await new Promise<string>((res, rej) => {
      let out = '';
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) {
          proc.kill('SIGKILL'); // immediately: no close(), no checkpoint
          res(out.slice(0, nl));
        }
      });
      proc.on('exit', (code) => rej(new Error(`child exited early (${code}): ${stderr}`)));
    });
    expect(await exited).toBe('SIGKILL');
    const { entryId } = JSON.parse(line) as { entryId: string };

    // The writes live only in the WAL until a checkpoint; reopening must replay it.
    expect(existsSync(`${path}-wal`)).toBe(true);
    const ds = openStore(path);
    expect((await ds.getEntry(entryId))?.spiffeId).toBe('spiffe://example.org/durable');
    const [row] = await ds.listJournal();
    expect(row?.keyId).toBe('anchorage-root-1');
    expect(Array.from(row?.publicKeySpki ?? [])).toEqual([1, 2, 3]);
  });
});

describe('federation relationships', () => {
  function rel(over: Partial<NewRelationship> = {}): NewRelationship {
    return {
      trustDomain: 'peer.test',
      bundleEndpointUrl: 'https://peer.test:8443/',
      profile: 'https_spiffe',
      endpointSpiffeId: 'spiffe://peer.test/bundle-endpoint',
      webCaPem: '',
      ...over,
    };
  }

  const noStatus: RelationshipStatus = {
    lastAttemptAt: 0,
    lastSuccessAt: 0,
    lastError: '',
    lastErrorReason: '',
    lastErrorAt: 0,
    consecutiveFailures: 0,
    nextRefreshAt: 0,
  };

  const failed: RelationshipStatus = {
    lastAttemptAt: 1_700_000_100,
    lastSuccessAt: 1_700_000_050,
    lastError: 'federation: https://peer.test:8443/ answered HTTP 500',
    lastErrorReason: 'http',
    lastErrorAt: 1_700_000_101,
    consecutiveFailures: 3,
    nextRefreshAt: 1_700_000_221,
  };

  it('creates, gets, lists (by trust domain), updates and deletes', async () => {
    const ds = openStore();
    const created = await ds.createRelationship(rel(), 1_700_000_000);
    expect(created).toEqual({ ...rel(), ...noStatus, createdAt: 1_700_000_000, updatedAt: 1_700_000_000 });
    expect(await ds.getRelationship('peer.test')).toEqual(created);
    expect(await ds.getRelationship('missing.test')).toBeUndefined();

    const web = rel({ trustDomain: 'alpha.test', bundleEndpointUrl: 'https://alpha.example/', profile: 'https_web', endpointSpiffeId: '', webCaPem: 'PEM\n' });
    await ds.createRelationship(web, 1_700_000_001);
    expect((await ds.listRelationships()).map((r) => r.trustDomain)).toEqual(['alpha.test', 'peer.test']);
    expect((await ds.listRelationships())[0]).toEqual({ ...web, ...noStatus, createdAt: 1_700_000_001, updatedAt: 1_700_000_001 });

    const changed = rel({ bundleEndpointUrl: 'https://peer.test:9443/bundle', profile: 'https_web', endpointSpiffeId: '', webCaPem: 'CA\n' });
    const updated = await ds.updateRelationship(changed, 1_700_000_500);
    expect(updated).toEqual({ ...changed, ...noStatus, createdAt: 1_700_000_000, updatedAt: 1_700_000_500 });
    expect(await ds.getRelationship('peer.test')).toEqual(updated);

    expect(await ds.deleteRelationship('peer.test')).toEqual(updated);
    expect(await ds.getRelationship('peer.test')).toBeUndefined();
    expect((await ds.listRelationships()).map((r) => r.trustDomain)).toEqual(['alpha.test']);
  });

  it('refuses a second relationship with the same trust domain, keeping the first', async () => {
    const ds = openStore();
    const first = await ds.createRelationship(rel(), 1_700_000_000);
    const err = await failure(ds.createRelationship(rel({ bundleEndpointUrl: 'https://evil.example/' }), 1_700_000_001));
    expect(err.code).toBe('already_exists');
    expect(err.message).toBe('datastore: a federation relationship with peer.test already exists');
    expect(await ds.listRelationships()).toEqual([first]);
  });

  it('answers not_found for updating or deleting a missing one, and false for its status', async () => {
    const ds = openStore();
    const up = await failure(ds.updateRelationship(rel({ trustDomain: 'missing.test' }), 1));
    expect(up.code).toBe('not_found');
    expect(up.message).toBe('datastore: no federation relationship with missing.test');
    const del = await failure(ds.deleteRelationship('missing.test'));
    expect(del.code).toBe('not_found');
    expect(del.message).toBe('datastore: no federation relationship with missing.test');
    expect(await ds.setRelationshipStatus('missing.test', failed)).toBe(false);
    expect(await ds.listRelationships()).toEqual([]);
  });

  it('refuses an unknown profile in the table itself', async () => {
    const ds = openStore();
    const err = await failure(ds.createRelationship(rel({ profile: 'http' as NewRelationship['profile'] }), 1));
    expect(err.code).toBe('internal');
    expect(err.message).toMatch(/^datastore: create relationship: CHECK constraint failed/);
    expect(await ds.listRelationships()).toEqual([]);
  });

  it('records the status, keeps it across an update and a reopen', async () => {
    const path = join(dir, 'anchorage.db');
    const ds = openStore(path);
    await ds.createRelationship(rel(), 1_700_000_000);
    await ds.createRelationship(rel({ trustDomain: 'other.test', endpointSpiffeId: 'spiffe://other.test/be' }), 1_700_000_000);
    expect(await ds.setRelationshipStatus('peer.test', failed)).toBe(true);
    expect(await ds.getRelationship('peer.test')).toEqual({ ...rel(), ...failed, createdAt: 1_700_000_000, updatedAt: 1_700_000_000 });
    // Only that relationship.
    expect(await ds.getRelationship('other.test')).toMatchObject(noStatus);

    // An operator's update replaces the configuration, not what the client saw.
    const moved = rel({ bundleEndpointUrl: 'https://peer.test:9443/' });
    expect(await ds.updateRelationship(moved, 1_700_000_200)).toEqual({ ...moved, ...failed, createdAt: 1_700_000_000, updatedAt: 1_700_000_200 });
    await ds.close();

    const again = openStore(path);
    expect(await again.getRelationship('peer.test')).toEqual({ ...moved, ...failed, createdAt: 1_700_000_000, updatedAt: 1_700_000_200 });
    const recovered: RelationshipStatus = { ...failed, lastError: '', lastErrorReason: '', consecutiveFailures: 0, lastSuccessAt: 1_700_000_300 };
    expect(await again.setRelationshipStatus('peer.test', recovered)).toBe(true);
    expect(await again.getRelationship('peer.test')).toMatchObject(recovered);
  });

  it('keeps bundles and relationships apart: deleting one leaves the other', async () => {
    const ds = openStore();
    await ds.createRelationship(rel(), 1);
    await ds.putBundle(bundle(3, { trustDomain: 'peer.test' }));
    await ds.deleteRelationship('peer.test');
    expect(await ds.getBundle('peer.test')).toEqual(bundle(3, { trustDomain: 'peer.test' }));
  });

  it('replaceBundle replaces only at the expected sequence', async () => {
    const ds = openStore();
    // Nothing stored: nothing to replace.
    const none = await failure(ds.replaceBundle(bundle(0, { document: '{"keys":[1]}' }), 0));
    expect(none.code).toBe('failed_precondition');
    expect(none.message).toBe('datastore: bundle of example.org is no longer at sequence 0');
    expect(await ds.getBundle('example.org')).toBeUndefined();

    await ds.putBundle(bundle(0, { document: 'first' }));
    await ds.replaceBundle(bundle(0, { document: 'second', refreshHint: 60 }), 0);
    expect(await ds.getBundle('example.org')).toEqual(bundle(0, { document: 'second', refreshHint: 60 }));

    // Someone raised the sequence meanwhile: the replacement is refused, the newer bundle stays.
    await ds.putBundle(bundle(4, { document: 'fourth' }));
    const raced = await failure(ds.replaceBundle(bundle(0, { document: 'third' }), 0));
    expect(raced.code).toBe('failed_precondition');
    expect(raced.message).toBe('datastore: bundle of example.org is no longer at sequence 0');
    expect(await ds.getBundle('example.org')).toEqual(bundle(4, { document: 'fourth' }));

    // At the sequence held, it replaces (a document changed without raising its sequence).
    await ds.replaceBundle(bundle(4, { document: 'fourth, again' }), 4);
    expect(await ds.getBundle('example.org')).toEqual(bundle(4, { document: 'fourth, again' }));
  });

  it('migrates a database at schema version 1 to 2, keeping its bundles', async () => {
    const path = join(dir, 'v1.db');
    const raw = new Database(path);
    raw.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    raw.exec(MIGRATIONS[0]!);
    raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (1, 1600000000)').run();
    raw
      .prepare('INSERT INTO bundles (trust_domain, document, sequence, refresh_hint, updated_at) VALUES (?, ?, ?, ?, ?)')
      .run('peer.test', '{"keys":[],"spiffe_sequence":9}', 9, 120, 1_650_000_000);
    raw.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('trust_domain', 'example.org');
    const tables = (): string[] => raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
    expect(tables()).not.toContain('federation_relationships');
    raw.close();

    const ds = openStore(path);
    expect(await ds.getBundle('peer.test')).toEqual({
      trustDomain: 'peer.test',
      document: '{"keys":[],"spiffe_sequence":9}',
      sequence: 9,
      refreshHint: 120,
      updatedAt: 1_650_000_000,
    });
    expect(await ds.getMeta('trust_domain')).toBe('example.org');
    expect(await ds.listRelationships()).toEqual([]);
    await ds.createRelationship(rel(), 1_700_000_000);
    expect((await ds.getRelationship('peer.test'))?.bundleEndpointUrl).toBe('https://peer.test:8443/');
    await ds.close();

    const check = new Database(path, { readonly: true });
    try {
      const versions = check.prepare('SELECT version, applied_at FROM schema_migrations ORDER BY version').all() as Array<{ version: number; applied_at: number }>;
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(2);
      expect(versions.map((v) => v.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      // Version 1 was not applied again.
      expect(versions[0]!.applied_at).toBe(1_600_000_000);
    } finally {
      check.close();
    }
  });
});

describe('a full disk (a real tmpfs filled up, then drained)', () => {
  // Issue 10: writes went through `.get()` in autocommit mode, which loses the
  // commit error, so on a full disk callers were told "created" or "deleted"
  // while nothing was saved. Every write path must fail with `unavailable`
  // instead, leave the store exactly as it was, and work again once there is room.
  let fs: SmallFs | undefined;
  afterEach(() => {
    fs?.unmount();
    fs = undefined;
  });

  const rel: NewRelationship = {
    trustDomain: 'peer.test',
    bundleEndpointUrl: 'https://peer.test:8443/',
    profile: 'https_spiffe',
    endpointSpiffeId: 'spiffe://peer.test/bundle-endpoint',
    webCaPem: '',
  };
  const status: RelationshipStatus = {
    lastAttemptAt: 1_700_000_100,
    lastSuccessAt: 0,
    lastError: 'federation: down',
    lastErrorReason: 'http',
    lastErrorAt: 1_700_000_100,
    consecutiveFailures: 1,
    nextRefreshAt: 1_700_000_200,
  };

  /** Everything a store holds, for before/after comparison. */
  async function snapshot(ds: SqliteDataStore): Promise<unknown> {
    return {
      entries: await ds.listEntries(),
      agents: await ds.listAgents(),
      bundles: await ds.listBundles(),
      relationships: await ds.listRelationships(),
      journal: (await ds.listJournal()).map((j) => ({ ...j, certDer: j.certDer && Array.from(j.certDer) })),
      meta: await ds.getMeta('m'),
    };
  }

  it.skipIf(!canMount)('fails every write path with unavailable, saves nothing, and writes again after draining', async () => {
    fs = mountSmallFs(2 * 1024 * 1024);
    const path = join(fs.dir, 'anchorage.db');
    const seed = SqliteDataStore.open(path, { now: () => 1_700_000_000 });
    const kept = await seed.createEntry(entry());
    await seed.createJoinToken({ token: 'tok-1', expiresAt: 1_700_000_500 });
    await seed.createJoinToken({ token: 'tok-old', expiresAt: 1_600_000_000 });
    await seed.putAgent(agent());
    await seed.putBundle(bundle(1));
    await seed.putBundle(bundle(0, { trustDomain: 'nosequence.test' }));
    await seed.createRelationship(rel, 1_700_000_000);
    await seed.putJournal(journal());
    await seed.setMeta('m', 'v1');
    const before = await snapshot(seed);
    // Closing checkpoints and removes the WAL, so after the reopen every write
    // has to grow a file: on a full disk none can reuse old WAL space.
    await seed.close();
    const ds = openStore(path);
    fs.fill();

    const writes: [op: string, call: () => Promise<unknown>][] = [
      ['create entry', () => ds.createEntry(entry({ spiffeId: 'spiffe://example.org/new' }))],
      ['update entry', () => ds.updateEntry(kept.id, entry({ hint: 'changed' }))],
      ['delete entry', () => ds.deleteEntry(kept.id)],
      ['create join token', () => ds.createJoinToken({ token: 'tok-2', expiresAt: 1_700_000_500 })],
      ['consume join token', () => ds.consumeJoinToken('tok-1', 1_700_000_000)],
      ['prune join tokens', () => ds.pruneJoinTokens(1_700_000_000)],
      ['put agent', () => ds.putAgent(agent({ evicted: true }))],
      ['delete agent', () => ds.deleteAgent(agent().spiffeId)],
      ['put bundle', () => ds.putBundle(bundle(2))],
      ['replace bundle', () => ds.replaceBundle(bundle(0, { trustDomain: 'nosequence.test', document: '{}' }), 0)],
      ['delete bundle', () => ds.deleteBundle('example.org')],
      ['create relationship', () => ds.createRelationship({ ...rel, trustDomain: 'other.test' }, 1_700_000_000)],
      ['update relationship', () => ds.updateRelationship({ ...rel, bundleEndpointUrl: 'https://x.test/' }, 1_700_000_001)],
      ['set relationship status', () => ds.setRelationshipStatus('peer.test', status)],
      ['delete relationship', () => ds.deleteRelationship('peer.test')],
      ['put journal', () => ds.putJournal(journal({ status: 'active' }))],
      ['delete journal', () => ds.deleteJournal('x509-1')],
      ['set meta', () => ds.setMeta('m', 'v2')],
    ];
    for (const [op, call] of writes) {
      const err = await failure(call());
      expect({ op, code: err.code, message: err.message }).toEqual({
        op,
        code: 'unavailable',
        message: `datastore: ${op}: write failed, nothing was saved: database or disk is full`,
      });
    }
    // Reads still answer on the same connection, and show nothing changed.
    expect(await snapshot(ds)).toEqual(before);
    fs.drain();
    await ds.close();
    const reopened = openStore(path);
    expect(await snapshot(reopened)).toEqual(before);
    await reopened.close();

    // Space is back: the connection that saw the failures writes again (no
    // transaction left half open), and the writes survive a reopen.
    const again = openStore(path);
    fs.fill();
    await failure(again.setMeta('m', 'full'));
    fs.drain();
    const created = await again.createEntry(entry({ spiffeId: 'spiffe://example.org/new' }));
    expect(await again.consumeJoinToken('tok-1', 1_700_000_000)).toEqual({ token: 'tok-1', expiresAt: 1_700_000_500 });
    await again.deleteEntry(kept.id);
    await again.setMeta('m', 'v2');
    await again.close();
    const last = openStore(path);
    expect((await last.listEntries()).map((e) => e.id)).toEqual([created.id]);
    expect(await last.consumeJoinToken('tok-1', 1_700_000_000)).toBeUndefined();
    expect(await last.getMeta('m')).toBe('v2');
  });

  it.skipIf(!canMount)('refuses to open (and migrate) on a full disk with unavailable, and opens once drained', async () => {
    fs = mountSmallFs(1024 * 1024);
    const path = join(fs.dir, 'anchorage.db');
    fs.fill();
    const err = await failure(() => SqliteDataStore.open(path));
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(new RegExp(`^datastore: cannot (create|open) ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    fs.drain();
    const ds = openStore(path);
    await ds.setMeta('m', 'v');
    await ds.close();
    const again = openStore(path);
    expect(await again.getMeta('m')).toBe('v');
  });

  it.skipIf(!canMount)('never confirms an entry that is not there after a reopen, as the disk fills', async () => {
    fs = mountSmallFs(1024 * 1024);
    const path = join(fs.dir, 'anchorage.db');
    const ds = openStore(path);
    // Leave some room so that the first writes succeed and later ones fail.
    fs.fill();
    fs.drain();
    const { writeFileSync: write } = await import('node:fs');
    write(join(fs.dir, 'filler'), Buffer.alloc(1024 * 1024 - 200 * 1024));
    const confirmed: string[] = [];
    const refused: string[] = [];
    for (let i = 0; i < 150; i++) {
      const spiffeId = `spiffe://example.org/w${i}`;
      try {
        confirmed.push((await ds.createEntry(entry({ spiffeId, hint: 'h'.repeat(4000) }))).spiffeId);
      } catch (err) {
        expect(err).toBeInstanceOf(AnchorageError);
        expect((err as AnchorageError).code).toBe('unavailable');
        refused.push(spiffeId);
      }
    }
    fs.drain();
    await ds.close();
    const stored = (await openStore(path).listEntries()).map((e) => e.spiffeId).sort();
    expect(stored).toEqual([...confirmed].sort());
    // Both outcomes happened, or the test proved nothing.
    expect(confirmed.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
  });
});
