// The shared test suite every DataStore implementation runs (as SPIRE's
// sqltest): what ca/datastore/DataStore.ts promises, and what today's
// callers rely on beyond its words (list orders, normalised selectors, the
// error codes and messages the admin API passes on). An implementation calls
// dataStoreContract() from a test file beside it, e.g.
// ca/datastore/sqlite/contract.test.ts. What only one implementation can
// show (file modes, migrations, a full disk, SIGKILL durability, several
// connections to one file) stays in that implementation's own tests.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AnchorageError, type ErrorCode } from '@anchorage/client/errors';
import type {
  AttestedAgent,
  DataStore,
  JournalEntry,
  NewEntry,
  NewRelationship,
  RelationshipStatus,
  StoredBundle,
} from '../../ca/datastore/DataStore.js';

/** What a contract run gets from one implementation: a fresh, empty store, and how to dispose of it. */
export interface OpenedDataStore {
  store: DataStore;
  /** Closes the store (it may already be closed) and removes its storage. */
  close(): Promise<void>;
}

// --- fixtures (exported so implementation tests can build the same records) --

export function entry(over: Partial<NewEntry> = {}): NewEntry {
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

export function agent(over: Partial<AttestedAgent> = {}): AttestedAgent {
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

export function bundle(sequence: number, over: Partial<StoredBundle> = {}): StoredBundle {
  return {
    trustDomain: 'example.org',
    document: JSON.stringify({ keys: [], spiffe_sequence: sequence }),
    sequence,
    refreshHint: 300,
    updatedAt: 1_700_000_000 + sequence,
    ...over,
  };
}

export function journal(over: Partial<JournalEntry> = {}): JournalEntry {
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

export function relationship(over: Partial<NewRelationship> = {}): NewRelationship {
  return {
    trustDomain: 'peer.test',
    bundleEndpointUrl: 'https://peer.test:8443/',
    profile: 'https_spiffe',
    endpointSpiffeId: 'spiffe://peer.test/bundle-endpoint',
    webCaPem: '',
    ...over,
  };
}

/** The status of a relationship the federation client has not tried yet. */
export const NO_STATUS: RelationshipStatus = {
  lastAttemptAt: 0,
  lastSuccessAt: 0,
  lastError: '',
  lastErrorReason: '',
  lastErrorAt: 0,
  consecutiveFailures: 0,
  nextRefreshAt: 0,
};

export const FAILED_STATUS: RelationshipStatus = {
  lastAttemptAt: 1_700_000_100,
  lastSuccessAt: 1_700_000_050,
  lastError: 'federation: https://peer.test:8443/ answered HTTP 500',
  lastErrorReason: 'http',
  lastErrorAt: 1_700_000_101,
  consecutiveFailures: 3,
  nextRefreshAt: 1_700_000_221,
};

/** The AnchorageError a promise rejects with, after checking its code. */
export async function rejection(p: Promise<unknown>, code: ErrorCode): Promise<AnchorageError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(AnchorageError);
  expect((err as AnchorageError).code).toBe(code);
  return err as AnchorageError;
}

const ids = (xs: { id: string }[]): string[] => xs.map((x) => x.id);
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/**
 * Registers the DataStore contract for one implementation. `open` is called
 * once per test for a fresh, empty store; the suite closes what it opened.
 */
export function dataStoreContract(name: string, open: () => Promise<OpenedDataStore>): void {
  describe(`DataStore contract: ${name}`, () => {
    let opened: OpenedDataStore[] = [];
    afterEach(async () => {
      for (const o of opened.reverse()) await o.close();
      opened = [];
    });
    const fresh = async (): Promise<DataStore> => {
      const o = await open();
      opened.push(o);
      return o.store;
    };

    describe('registration entries', () => {
      it('creates with a fresh id, revision 1 and the current time, and gets it back', async () => {
        const ds = await fresh();
        const before = nowSeconds();
        const e = await ds.createEntry(entry());
        const after = nowSeconds();
        expect(typeof e.id).toBe('string');
        expect(e.id.length).toBeGreaterThan(0);
        expect(e.revision).toBe(1);
        expect(Number.isInteger(e.createdAt)).toBe(true);
        expect(e.createdAt).toBeGreaterThanOrEqual(before);
        expect(e.createdAt).toBeLessThanOrEqual(after);
        expect(await ds.getEntry(e.id)).toEqual(e);
        const other = await ds.createEntry(entry({ spiffeId: 'spiffe://example.org/api' }));
        expect(other.id).not.toBe(e.id);
      });

      it('creates many in one call, one result per entry in order: duplicates (also within the call) are refused alone', async () => {
        const ds = await fresh();
        const existing = await ds.createEntry(entry({ spiffeId: 'spiffe://example.org/old' }));
        const results = await ds.createEntries([
          entry({ spiffeId: 'spiffe://example.org/a' }),
          entry({ spiffeId: 'spiffe://example.org/old' }),
          entry({ spiffeId: 'spiffe://example.org/b' }),
          entry({ spiffeId: 'spiffe://example.org/a' }),
        ]);
        expect(results.map((r) => ('entry' in r ? r.entry.spiffeId : r.error.code))).toEqual([
          'spiffe://example.org/a',
          'already_exists',
          'spiffe://example.org/b',
          'already_exists',
        ]);
        const created = results.flatMap((r) => ('entry' in r ? [r.entry] : []));
        for (const e of created) expect(await ds.getEntry(e.id)).toEqual(e);
        expect((await ds.listEntries()).map((e) => e.spiffeId).sort()).toEqual([
          'spiffe://example.org/a',
          'spiffe://example.org/b',
          existing.spiffeId,
        ]);
        expect(await ds.createEntries([])).toEqual([]);
      });

      it('returns selectors sorted by type then value, each once', async () => {
        const ds = await fresh();
        const e = await ds.createEntry(
          entry({
            selectors: [
              { type: 'unix', value: 'uid:1000' },
              { type: 'docker', value: 'label:app:web' },
              { type: 'unix', value: 'gid:10' },
              { type: 'unix', value: 'uid:1000' },
            ],
          }),
        );
        const sorted = [
          { type: 'docker', value: 'label:app:web' },
          { type: 'unix', value: 'gid:10' },
          { type: 'unix', value: 'uid:1000' },
        ];
        expect(e.selectors).toEqual(sorted);
        expect((await ds.getEntry(e.id))?.selectors).toEqual(sorted);
      });

      it('round-trips every field, including booleans, empty lists, zero TTLs and colons in values', async () => {
        const ds = await fresh();
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
        expect(e).toEqual({ ...fields, id: e.id, revision: 1, createdAt: e.createdAt });
        expect(await ds.getEntry(e.id)).toEqual(e);
        // Lists keep their order: a DNS name list's first element is the certificate's CN.
        const ordered = await ds.createEntry(entry({ spiffeId: 'spiffe://example.org/o', dnsNames: ['z.example', 'a.example'] }));
        expect((await ds.getEntry(ordered.id))?.dnsNames).toEqual(['z.example', 'a.example']);
      });

      it('returns undefined for an unknown id', async () => {
        const ds = await fresh();
        expect(await ds.getEntry('00000000-0000-4000-8000-000000000000')).toBeUndefined();
      });

      it('refuses a duplicate (same spiffe id, parent and selector set, in any order) with already_exists', async () => {
        const ds = await fresh();
        await ds.createEntry(entry());
        const reordered = entry({ selectors: [...entry().selectors, entry().selectors[0]!].reverse() });
        const err = await rejection(ds.createEntry(reordered), 'already_exists');
        expect(err.message).toMatch(/^datastore: /);
        expect(err.message).toContain('spiffe://example.org/web');
        expect(await ds.listEntries()).toHaveLength(1);
      });

      it('allows entries that differ in spiffe id, parent or selector set', async () => {
        const ds = await fresh();
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

      it('lists with and without filters, ordered by spiffe id then parent id', async () => {
        const ds = await fresh();
        const p1 = 'spiffe://example.org/agent/1';
        const p2 = 'spiffe://example.org/agent/2';
        const b = await ds.createEntry(entry({ parentId: p1, spiffeId: 'spiffe://example.org/b' }));
        const c = await ds.createEntry(entry({ parentId: p2, spiffeId: 'spiffe://example.org/a' }));
        const a = await ds.createEntry(entry({ parentId: p1, spiffeId: 'spiffe://example.org/a' }));

        expect(ids(await ds.listEntries())).toEqual(ids([a, c, b]));
        expect(ids(await ds.listEntries({}))).toEqual(ids([a, c, b]));
        expect(ids(await ds.listEntries({ parentId: p1 }))).toEqual(ids([a, b]));
        expect(ids(await ds.listEntries({ spiffeId: 'spiffe://example.org/a' }))).toEqual(ids([a, c]));
        expect(ids(await ds.listEntries({ parentId: p2, spiffeId: 'spiffe://example.org/a' }))).toEqual([c.id]);
        expect(await ds.listEntries({ parentId: 'spiffe://example.org/none' })).toEqual([]);
        expect(await ds.listEntries({ spiffeId: 'spiffe://example.org/none' })).toEqual([]);
        expect((await ds.listEntries({ parentId: p1 }))[0]).toEqual(a);
      });

      it('updates the mutable fields, raises the revision by one and keeps id and createdAt', async () => {
        const ds = await fresh();
        const e = await ds.createEntry(entry());
        const changed = entry({ hint: 'changed', dnsNames: ['x.example.org'], admin: true, x509SvidTtl: 60, selectors: [{ type: 'unix', value: 'uid:1' }] });
        const u = await ds.updateEntry(e.id, changed);
        expect(u).toEqual({ ...changed, id: e.id, revision: 2, createdAt: e.createdAt });
        expect(await ds.getEntry(e.id)).toEqual(u);
        // The list filters see the new values.
        expect(ids(await ds.listEntries({ parentId: changed.parentId }))).toEqual([e.id]);

        const u2 = await ds.updateEntry(e.id, changed, 2);
        expect(u2.revision).toBe(3);
      });

      it('refuses an update at another revision with failed_precondition and leaves the entry alone', async () => {
        const ds = await fresh();
        const e = await ds.createEntry(entry());
        const err = await rejection(ds.updateEntry(e.id, entry({ hint: 'nope' }), 5), 'failed_precondition');
        expect(err.message).toMatch(/^datastore: .*revision 1/);
        expect(await ds.getEntry(e.id)).toEqual(e);
        // 0 is a revision to compare, not "no expectation".
        await rejection(ds.updateEntry(e.id, entry(), 0), 'failed_precondition');
        expect(await ds.getEntry(e.id)).toEqual(e);
      });

      it('answers not_found for updating or deleting an absent entry', async () => {
        const ds = await fresh();
        const up = await rejection(ds.updateEntry('missing', entry()), 'not_found');
        expect(up.message).toBe('datastore: entry missing not found');
        await rejection(ds.updateEntry('missing', entry(), 1), 'not_found');
        const del = await rejection(ds.deleteEntry('missing'), 'not_found');
        expect(del.message).toBe('datastore: entry missing not found');
        expect(await ds.listEntries()).toEqual([]);
      });

      it('refuses an update that collides with another entry with already_exists', async () => {
        const ds = await fresh();
        const a = await ds.createEntry(entry());
        const b = await ds.createEntry(entry({ spiffeId: 'spiffe://example.org/b' }));
        const err = await rejection(ds.updateEntry(b.id, entry({ selectors: [...entry().selectors].reverse() })), 'already_exists');
        expect(err.message).toContain('spiffe://example.org/web');
        expect(await ds.getEntry(b.id)).toEqual(b);
        // Updating an entry to its own key is not a collision.
        expect((await ds.updateEntry(a.id, entry())).revision).toBe(2);
      });

      it('deletes and returns the entry, after which its key is free', async () => {
        const ds = await fresh();
        const e = await ds.createEntry(entry());
        expect(await ds.deleteEntry(e.id)).toEqual(e);
        expect(await ds.getEntry(e.id)).toBeUndefined();
        await rejection(ds.deleteEntry(e.id), 'not_found');
        const again = await ds.createEntry(entry());
        expect(again.id).not.toBe(e.id);
      });

      it('stays consistent under many concurrent calls', async () => {
        const ds = await fresh();
        const n = 200;
        const created = await Promise.allSettled(
          Array.from({ length: n }, (_, i) =>
            // every id twice, in different selector orders
            ds.createEntry(
              entry({
                spiffeId: `spiffe://example.org/w/${i % (n / 2)}`,
                selectors: i < n / 2 ? entry().selectors : [...entry().selectors].reverse(),
              }),
            ),
          ),
        );
        expect(created.filter((r) => r.status === 'fulfilled')).toHaveLength(n / 2);
        expect(
          created.filter((r) => r.status === 'rejected' && r.reason instanceof AnchorageError && r.reason.code === 'already_exists'),
        ).toHaveLength(n / 2);
        const entries = await ds.listEntries();
        expect(entries).toHaveLength(n / 2);

        // Many updates at the same expected revision: exactly one wins.
        const target = entries[0]!;
        const updates = await Promise.allSettled(
          Array.from({ length: 30 }, (_, i) => ds.updateEntry(target.id, entry({ ...target, hint: `h${i}` }), 1)),
        );
        expect(updates.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        expect(
          updates.filter((r) => r.status === 'rejected' && r.reason instanceof AnchorageError && r.reason.code === 'failed_precondition'),
        ).toHaveLength(29);
        expect((await ds.getEntry(target.id))?.revision).toBe(2);

        // Unconditional updates all apply, one revision each.
        await Promise.all(Array.from({ length: 30 }, () => ds.updateEntry(target.id, entry({ ...target }))));
        expect((await ds.getEntry(target.id))?.revision).toBe(32);

        // Mixed traffic on every record family.
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

    describe('join tokens', () => {
      it('consumes a token exactly once', async () => {
        const ds = await fresh();
        await ds.createJoinToken({ token: 'abc', expiresAt: 1_000 });
        const got = await ds.consumeJoinToken('abc', 999);
        expect(got).toEqual({ token: 'abc', expiresAt: 1_000 });
        expect(got && 'spiffeId' in got).toBe(false);
        expect(await ds.consumeJoinToken('abc', 999)).toBeUndefined();
      });

      it('keeps the optional spiffe id', async () => {
        const ds = await fresh();
        await ds.createJoinToken({ token: 'abc', spiffeId: 'spiffe://example.org/node-1', expiresAt: 1_000 });
        expect(await ds.consumeJoinToken('abc', 0)).toEqual({ token: 'abc', spiffeId: 'spiffe://example.org/node-1', expiresAt: 1_000 });
      });

      it('returns undefined for an unknown token', async () => {
        const ds = await fresh();
        expect(await ds.consumeJoinToken('nope', 0)).toBeUndefined();
      });

      it('removes an expired token instead of returning it; "before expiry" is strict', async () => {
        const ds = await fresh();
        await ds.createJoinToken({ token: 'late', expiresAt: 1_000 });
        await ds.createJoinToken({ token: 'edge', expiresAt: 1_000 });
        expect(await ds.consumeJoinToken('late', 1_001)).toBeUndefined();
        // It is gone: even a caller with an earlier clock cannot use it now.
        expect(await ds.consumeJoinToken('late', 0)).toBeUndefined();
        expect(await ds.consumeJoinToken('edge', 1_000)).toBeUndefined();
        expect(await ds.consumeJoinToken('edge', 0)).toBeUndefined();
        expect(await ds.pruneJoinTokens(0)).toBe(0);
      });

      it('refuses a duplicate token with already_exists, without echoing it', async () => {
        const ds = await fresh();
        await ds.createJoinToken({ token: 's3cret', expiresAt: 1_000 });
        const err = await rejection(ds.createJoinToken({ token: 's3cret', expiresAt: 2_000 }), 'already_exists');
        expect(err.message).toBe('datastore: join token already exists');
        // The first one is untouched.
        expect(await ds.consumeJoinToken('s3cret', 1_500)).toBeUndefined();
      });

      it('prunes expired tokens and counts them', async () => {
        const ds = await fresh();
        for (const [token, expiresAt] of [['a', 10], ['b', 20], ['c', 30], ['d', 40]] as const) {
          await ds.createJoinToken({ token, expiresAt });
        }
        expect(await ds.pruneJoinTokens(5)).toBe(0);
        expect(await ds.pruneJoinTokens(25)).toBe(2);
        expect(await ds.pruneJoinTokens(25)).toBe(0);
        expect(await ds.consumeJoinToken('a', 0)).toBeUndefined();
        expect(await ds.consumeJoinToken('c', 25)).toEqual({ token: 'c', expiresAt: 30 });
      });

      it('gives a token to exactly one of many parallel consumers', async () => {
        const ds = await fresh();
        await ds.createJoinToken({ token: 'race', expiresAt: 1_000 });
        const results = await Promise.all(Array.from({ length: 50 }, () => ds.consumeJoinToken('race', 1)));
        expect(results.filter((r) => r !== undefined)).toEqual([{ token: 'race', expiresAt: 1_000 }]);
      });
    });

    describe('attested agents', () => {
      it('puts, replaces, gets, lists by spiffe id and deletes (deleting an absent one is no error)', async () => {
        const ds = await fresh();
        expect(await ds.getAgent(agent().spiffeId)).toBeUndefined();
        expect(await ds.listAgents()).toEqual([]);
        await ds.putAgent(agent());
        expect(await ds.getAgent(agent().spiffeId)).toEqual(agent());

        const renewed = agent({ certSerial: 'ff', certNotAfter: 1_800_000_000, evicted: true, updatedAt: 1_700_000_500, selectors: [] });
        await ds.putAgent(renewed);
        expect(await ds.getAgent(agent().spiffeId)).toEqual(renewed);

        const second = agent({ spiffeId: 'spiffe://example.org/spire/agent/x509pop/zz', attestationType: 'x509pop' });
        const first = agent({ spiffeId: 'spiffe://example.org/spire/agent/aaa' });
        await ds.putAgent(second);
        await ds.putAgent(first);
        expect(await ds.listAgents()).toEqual([first, renewed, second]);

        await ds.deleteAgent(renewed.spiffeId);
        await ds.deleteAgent(renewed.spiffeId);
        expect(await ds.listAgents()).toEqual([first, second]);
      });

      it("records an agent's report apart from its record: a put keeps it, a report keeps the record", async () => {
        const ds = await fresh();
        const report = { seenAt: 1_700_000_900, bundleSequence: 7, clockSkewMs: -1250 };
        expect(await ds.reportAgentState(agent().spiffeId, report)).toBe(false);
        expect(await ds.getAgent(agent().spiffeId)).toBeUndefined();
        await ds.putAgent(agent());
        expect((await ds.getAgent(agent().spiffeId))!.report).toBeUndefined();
        expect(await ds.reportAgentState(agent().spiffeId, report)).toBe(true);
        expect(await ds.getAgent(agent().spiffeId)).toEqual({ ...agent(), report });
        const renewed = agent({ certSerial: 'ff', updatedAt: 1_700_000_950 });
        await ds.putAgent(renewed);
        expect(await ds.listAgents()).toEqual([{ ...renewed, report }]);
        const later = { seenAt: 1_700_001_000, bundleSequence: 8, clockSkewMs: 30 };
        expect(await ds.reportAgentState(agent().spiffeId, later)).toBe(true);
        expect(await ds.getAgent(agent().spiffeId)).toEqual({ ...renewed, report: later });
      });

      it('bans and unbans agent IDs, whether or not they have a record, each once', async () => {
        const ds = await fresh();
        const id = 'spiffe://example.org/anchorage/agent/tpm/ab';
        expect(await ds.listBannedAgents()).toEqual([]);
        expect(await ds.banAgent(id, 1_700_000_000)).toBe(true);
        expect(await ds.banAgent(id, 1_700_000_001)).toBe(false);
        expect(await ds.isAgentBanned(id)).toBe(true);
        expect(await ds.isAgentBanned(`${id}c`)).toBe(false);
        expect(await ds.banAgent('spiffe://example.org/anchorage/agent/a', 1)).toBe(true);
        expect(await ds.listBannedAgents()).toEqual(['spiffe://example.org/anchorage/agent/a', id]);
        await ds.putAgent(agent({ spiffeId: id }));
        await ds.deleteAgent(id);
        expect(await ds.listBannedAgents()).toContain(id);
        expect(await ds.unbanAgent(id)).toBe(true);
        expect(await ds.unbanAgent(id)).toBe(false);
        expect(await ds.isAgentBanned(id)).toBe(false);
        expect(await ds.listBannedAgents()).toEqual(['spiffe://example.org/anchorage/agent/a']);
      });
    });

    describe('bundles', () => {
      it('stores the first bundle at any sequence, then refuses any sequence not greater with failed_precondition', async () => {
        const ds = await fresh();
        expect(await ds.getBundle('example.org')).toBeUndefined();
        await ds.putBundle(bundle(5));
        expect(await ds.getBundle('example.org')).toEqual(bundle(5));
        for (const seq of [5, 4, 0]) {
          const err = await rejection(ds.putBundle(bundle(seq, { document: 'stale' })), 'failed_precondition');
          expect(err.message).toMatch(/^datastore: .*example\.org/);
        }
        expect(await ds.getBundle('example.org')).toEqual(bundle(5));
        await ds.putBundle(bundle(6));
        expect(await ds.getBundle('example.org')).toEqual(bundle(6));
      });

      it('keeps sequences per trust domain, lists by trust domain and deletes', async () => {
        const ds = await fresh();
        await ds.putBundle(bundle(10, { trustDomain: 'partner.example' }));
        await ds.putBundle(bundle(1));
        expect(await ds.listBundles()).toEqual([bundle(1), bundle(10, { trustDomain: 'partner.example' })]);
        await ds.deleteBundle('example.org');
        await ds.deleteBundle('example.org'); // absent: no error
        expect(await ds.getBundle('example.org')).toBeUndefined();
        // Once deleted, nothing is stored, so any sequence is accepted again.
        await ds.putBundle(bundle(0));
        expect((await ds.getBundle('example.org'))?.sequence).toBe(0);
      });

      it('holds sequences beyond 32 bits', async () => {
        const ds = await fresh();
        await ds.putBundle(bundle(2 ** 40));
        await rejection(ds.putBundle(bundle(2 ** 40 - 1)), 'failed_precondition');
        await ds.putBundle(bundle(2 ** 40 + 1));
        expect((await ds.getBundle('example.org'))?.sequence).toBe(2 ** 40 + 1);
      });

      it('never lets two parallel writers of the same sequence both succeed', async () => {
        const ds = await fresh();
        await ds.putBundle(bundle(1));
        const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => ds.putBundle(bundle(2, { document: `w${i}` }))));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        expect((await ds.getBundle('example.org'))?.sequence).toBe(2);
      });

      it('replaceBundle replaces only at the expected sequence', async () => {
        const ds = await fresh();
        // Nothing stored: nothing to replace.
        const none = await rejection(ds.replaceBundle(bundle(0, { document: '{"keys":[1]}' }), 0), 'failed_precondition');
        expect(none.message).toBe('datastore: bundle of example.org is no longer at sequence 0');
        expect(await ds.getBundle('example.org')).toBeUndefined();

        await ds.putBundle(bundle(0, { document: 'first' }));
        await ds.replaceBundle(bundle(0, { document: 'second', refreshHint: 60 }), 0);
        expect(await ds.getBundle('example.org')).toEqual(bundle(0, { document: 'second', refreshHint: 60 }));

        // Someone raised the sequence meanwhile: the replacement is refused, the newer bundle stays.
        await ds.putBundle(bundle(4, { document: 'fourth' }));
        const raced = await rejection(ds.replaceBundle(bundle(0, { document: 'third' }), 0), 'failed_precondition');
        expect(raced.message).toBe('datastore: bundle of example.org is no longer at sequence 0');
        expect(await ds.getBundle('example.org')).toEqual(bundle(4, { document: 'fourth' }));

        // At the sequence held, it replaces (a document changed without raising its sequence).
        await ds.replaceBundle(bundle(4, { document: 'fourth, again' }), 4);
        expect(await ds.getBundle('example.org')).toEqual(bundle(4, { document: 'fourth, again' }));
      });
    });

    describe('CA journal', () => {
      it('round-trips blobs as Uint8Array (only the viewed bytes) and leaves absent fields undefined', async () => {
        const ds = await fresh();
        const bare = journal();
        await ds.putJournal(bare);
        const [got] = await ds.listJournal();
        expect(got).toEqual(bare);
        expect(got && ('certDer' in got || 'publicKeySpki' in got || 'kid' in got)).toBe(false);

        const der = new Uint8Array(randomBytes(700));
        const backing = new Uint8Array([0xde, 0xad, 1, 2, 3, 0xbe, 0xef]);
        const spki = backing.subarray(2, 5);
        await ds.putJournal(journal({ status: 'active', certDer: der, publicKeySpki: spki, kid: 'kid-1' }));
        const [full] = await ds.listJournal();
        expect(full?.certDer).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(full!.certDer!).equals(Buffer.from(der))).toBe(true);
        expect(full?.publicKeySpki).toBeInstanceOf(Uint8Array);
        expect(Array.from(full!.publicKeySpki!)).toEqual([1, 2, 3]);
        expect(full).toMatchObject({ status: 'active', kid: 'kid-1' });
      });

      it('inserts or replaces by id, lists by creation time then id, and deletes', async () => {
        const ds = await fresh();
        await ds.putJournal(journal({ id: 'jwt-1', kind: 'jwt', kid: 'k1', createdAt: 2 }));
        await ds.putJournal(journal({ id: 'x509-2', createdAt: 1 }));
        await ds.putJournal(journal({ id: 'root-1', kind: 'root', status: 'active', createdAt: 1 }));
        await ds.putJournal(journal({ id: 'jwt-1', kind: 'jwt', status: 'old', createdAt: 2 })); // kid dropped
        const rows = await ds.listJournal();
        expect(rows.map((r) => [r.id, r.status])).toEqual([
          ['root-1', 'active'],
          ['x509-2', 'preparing'],
          ['jwt-1', 'old'],
        ]);
        expect(rows[2]?.kid).toBeUndefined();
        await ds.deleteJournal('jwt-1');
        await ds.deleteJournal('jwt-1'); // absent: no error
        expect((await ds.listJournal()).map((r) => r.id)).toEqual(['root-1', 'x509-2']);
      });
    });

    describe('federation relationships', () => {
      it('creates, gets, lists by trust domain, updates and deletes', async () => {
        const ds = await fresh();
        const created = await ds.createRelationship(relationship(), 1_700_000_000);
        expect(created).toEqual({ ...relationship(), ...NO_STATUS, createdAt: 1_700_000_000, updatedAt: 1_700_000_000 });
        expect(await ds.getRelationship('peer.test')).toEqual(created);
        expect(await ds.getRelationship('missing.test')).toBeUndefined();

        const web = relationship({ trustDomain: 'alpha.test', bundleEndpointUrl: 'https://alpha.example/', profile: 'https_web', endpointSpiffeId: '', webCaPem: 'PEM\n' });
        await ds.createRelationship(web, 1_700_000_001);
        expect(await ds.listRelationships()).toEqual([
          { ...web, ...NO_STATUS, createdAt: 1_700_000_001, updatedAt: 1_700_000_001 },
          created,
        ]);

        const changed = relationship({ bundleEndpointUrl: 'https://peer.test:9443/bundle', profile: 'https_web', endpointSpiffeId: '', webCaPem: 'CA\n' });
        const updated = await ds.updateRelationship(changed, 1_700_000_500);
        expect(updated).toEqual({ ...changed, ...NO_STATUS, createdAt: 1_700_000_000, updatedAt: 1_700_000_500 });
        expect(await ds.getRelationship('peer.test')).toEqual(updated);

        expect(await ds.deleteRelationship('peer.test')).toEqual(updated);
        expect(await ds.getRelationship('peer.test')).toBeUndefined();
        expect((await ds.listRelationships()).map((r) => r.trustDomain)).toEqual(['alpha.test']);
      });

      it('refuses a second relationship with the same trust domain with already_exists, keeping the first', async () => {
        const ds = await fresh();
        const first = await ds.createRelationship(relationship(), 1_700_000_000);
        const err = await rejection(ds.createRelationship(relationship({ bundleEndpointUrl: 'https://evil.example/' }), 1_700_000_001), 'already_exists');
        expect(err.message).toBe('datastore: a federation relationship with peer.test already exists');
        expect(await ds.listRelationships()).toEqual([first]);
      });

      it('answers not_found for updating or deleting a missing one, and false for its status', async () => {
        const ds = await fresh();
        const up = await rejection(ds.updateRelationship(relationship({ trustDomain: 'missing.test' }), 1), 'not_found');
        expect(up.message).toBe('datastore: no federation relationship with missing.test');
        const del = await rejection(ds.deleteRelationship('missing.test'), 'not_found');
        expect(del.message).toBe('datastore: no federation relationship with missing.test');
        expect(await ds.setRelationshipStatus('missing.test', FAILED_STATUS)).toBe(false);
        expect(await ds.listRelationships()).toEqual([]);
      });

      it('records the status of one relationship and keeps it across an operator update', async () => {
        const ds = await fresh();
        await ds.createRelationship(relationship(), 1_700_000_000);
        await ds.createRelationship(relationship({ trustDomain: 'other.test', endpointSpiffeId: 'spiffe://other.test/be' }), 1_700_000_000);
        expect(await ds.setRelationshipStatus('peer.test', FAILED_STATUS)).toBe(true);
        expect(await ds.getRelationship('peer.test')).toEqual({ ...relationship(), ...FAILED_STATUS, createdAt: 1_700_000_000, updatedAt: 1_700_000_000 });
        expect(await ds.getRelationship('other.test')).toMatchObject(NO_STATUS);

        // An operator's update replaces the configuration, not what the client saw.
        const moved = relationship({ bundleEndpointUrl: 'https://peer.test:9443/' });
        expect(await ds.updateRelationship(moved, 1_700_000_200)).toEqual({ ...moved, ...FAILED_STATUS, createdAt: 1_700_000_000, updatedAt: 1_700_000_200 });
        const recovered: RelationshipStatus = { ...FAILED_STATUS, lastError: '', lastErrorReason: '', consecutiveFailures: 0, lastSuccessAt: 1_700_000_300 };
        expect(await ds.setRelationshipStatus('peer.test', recovered)).toBe(true);
        expect(await ds.getRelationship('peer.test')).toEqual({ ...moved, ...recovered, createdAt: 1_700_000_000, updatedAt: 1_700_000_200 });
      });

      it('keeps bundles and relationships apart: deleting one leaves the other', async () => {
        const ds = await fresh();
        await ds.createRelationship(relationship(), 1);
        await ds.putBundle(bundle(3, { trustDomain: 'peer.test' }));
        await ds.deleteRelationship('peer.test');
        expect(await ds.getBundle('peer.test')).toEqual(bundle(3, { trustDomain: 'peer.test' }));
        await ds.createRelationship(relationship(), 2);
        await ds.deleteBundle('peer.test');
        expect((await ds.getRelationship('peer.test'))?.createdAt).toBe(2);
      });
    });

    describe('server metadata', () => {
      it('gets, sets and overwrites, keeping keys apart and the empty string distinct from absent', async () => {
        const ds = await fresh();
        expect(await ds.getMeta('trust_domain')).toBeUndefined();
        await ds.setMeta('trust_domain', 'example.org');
        await ds.setMeta('trust_domain', 'example.com');
        await ds.setMeta('other', 'x');
        expect(await ds.getMeta('trust_domain')).toBe('example.com');
        expect(await ds.getMeta('other')).toBe('x');
        await ds.setMeta('empty', '');
        expect(await ds.getMeta('empty')).toBe('');
      });
    });

    describe('close', () => {
      it('is idempotent, and every later call fails with failed_precondition', async () => {
        const ds = await fresh();
        await ds.close();
        await ds.close();
        for (const call of [
          () => ds.getEntry('x'),
          () => ds.listEntries(),
          () => ds.createEntry(entry()),
          () => ds.consumeJoinToken('t', 0),
          () => ds.putAgent(agent()),
          () => ds.putBundle(bundle(1)),
          () => ds.listRelationships(),
          () => ds.listJournal(),
          () => ds.setMeta('k', 'v'),
        ]) {
          const err = await rejection(call(), 'failed_precondition');
          expect(err.message).toMatch(/^datastore: .*closed/);
        }
      });
    });
  });
}
