import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { silentLogger } from '../../common/log.js';
import { lacks } from '../../test/helpers/needs.js';
import { POSTGRES_NEEDS, type PostgresCluster, havePostgres, startPostgres } from '../../test/helpers/postgres.js';
import { startTestCa, type TestCa } from '../../test/helpers/test-ca.js';
import { ChangeFeed } from '../changes.js';
import { parseServerConfig } from '../config.js';
import { PostgresDataStore, parseConnectionString } from '../datastore/postgres/index.js';
import { FederationClient } from '../federation/client.js';
import { ClusterBridge } from './bridge.js';

// Several servers on one PostgreSQL database, each played by its own
// PostgresDataStore (its own pool and LISTEN connection), feed and bridge.

describe('cluster config', () => {
  const base = { trust_domain: 'example.org', data_dir: '/var/lib/anchorage', key_manager: { type: 'memory' } };
  const url = 'postgresql://anchorage@db.example/anchorage';
  const parse = (extra: Record<string, unknown>) => parseServerConfig({ ...base, datastore: { type: 'postgres', connection_string: url, ...extra } }, 'server.yaml', '/etc/anchorage');

  it('takes change_reconcile_interval as a duration, unset by default', () => {
    expect(parse({ change_reconcile_interval: '5s' }).datastore).toMatchObject({ type: 'postgres', change_reconcile_interval: 5 });
    expect(parse({}).datastore).not.toHaveProperty('change_reconcile_interval');
  });

  it.each<[string, unknown, string]>([
    ['zero', '0s', 'datastore.change_reconcile_interval: "0s" must be greater than zero'],
    ['over an hour', '2h', 'datastore.change_reconcile_interval: must be from 1s to 1h'],
    ['not a duration', 'soon', 'datastore.change_reconcile_interval: "soon" is not a duration'],
    ['a number', 30, 'datastore.change_reconcile_interval: Invalid input: expected string, received number'],
  ])('refuses a change_reconcile_interval of %s, naming the key', (_name, value, message) => {
    expect(() => parse({ change_reconcile_interval: value })).toThrow(`config: server.yaml: ${message}`);
  });

  it('refuses change_reconcile_interval on sqlite (there is nothing to reconcile)', () => {
    expect(() => parseServerConfig({ ...base, datastore: { type: 'sqlite', change_reconcile_interval: '5s' } }, 'server.yaml', '/etc/anchorage')).toThrow(
      'config: server.yaml: datastore: unknown key(s): change_reconcile_interval',
    );
  });
});

/** Resolves once `check` holds, polling; fails after `ms` (a bound for a broken build, not a measured time). */
async function eventually(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type Event = ['entries', string[]] | ['evicted', string] | ['bundles'] | ['everything'];

interface Node {
  ds: PostgresDataStore;
  feed: ChangeFeed;
  bridge: ClusterBridge;
  /** Every event on this server's feed, local and relayed, in order. */
  events: Event[];
}

describe.skipIf(lacks(!havePostgres, POSTGRES_NEEDS))('several servers on one PostgreSQL', () => {
  let pg: PostgresCluster;
  const open: Array<{ close(): Promise<void> }> = [];
  beforeAll(async () => {
    pg = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    for (const o of open.reverse()) await o.close().catch(() => {});
    pg?.destroy();
  });

  const store = async (db: string) => {
    const ds = await PostgresDataStore.open({ target: parseConnectionString(pg.url(db)), password: pg.password, maxConnections: 10, connectTimeout: 5, statementTimeout: 30 });
    open.push(ds);
    return ds;
  };

  async function node(db: string, origin: string): Promise<Node> {
    const ds = await store(db);
    const feed = new ChangeFeed();
    const events: Event[] = [];
    feed.on('entries', (ids: string[]) => events.push(['entries', ids]));
    feed.on('evicted', (id: string) => events.push(['evicted', id]));
    feed.on('bundles', () => events.push(['bundles']));
    feed.on('everything', () => events.push(['everything']));
    // The reconcile timer is out of the way (an hour): tests call reconcile() themselves.
    const bridge = new ClusterBridge({ feed, channel: ds.cluster, logger: silentLogger(), origin, reconcileIntervalMs: 3_600_000, reconnect: { initialMs: 50, maxMs: 500 } });
    await bridge.start();
    open.push(bridge);
    return { ds, feed, bridge, events };
  }

  async function pair(): Promise<[Node, Node]> {
    const db = await pg.createDatabase();
    return [await node(db, 'server-1'), await node(db, 'server-2')];
  }

  const entry = (ds: PostgresDataStore, path: string) =>
    ds.createEntry({
      spiffeId: `spiffe://example.org/${path}`,
      parentId: 'spiffe://example.org/anchorage/agent/join_token/a',
      selectors: [{ type: 'unix', value: 'uid:1000' }],
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      dnsNames: [],
      federatesWith: [],
      hint: '',
      admin: false,
      downstream: false,
    });

  const has = (events: Event[], e: Event) => events.some((x) => JSON.stringify(x) === JSON.stringify(e));

  it('an entry change made through one server reaches the other\'s feed with its exact IDs; evictions and bundles too; nothing is echoed', async () => {
    const [one, two] = await pair();
    const created = await entry(one.ds, 'web');
    one.feed.entriesChanged([created.id]);
    const agent = 'spiffe://example.org/anchorage/agent/join_token/a';
    one.feed.agentEvicted(agent);
    one.feed.bundlesChanged();
    // And the other way, which also serves as a barrier: notifications arrive in order.
    two.feed.entriesChanged(['from-two']);
    await eventually('server 1 hears server 2', () => has(one.events, ['entries', ['from-two']]));
    await eventually('server 2 hears server 1', () => two.events.length === 4);
    // Its own change first (emitted at once), then server 1's three. Those were
    // published on three pooled connections at once, so they may arrive in any order.
    expect(two.events[0]).toEqual(['entries', ['from-two']]);
    const key = (e: Event) => JSON.stringify(e);
    expect(two.events.slice(1).map(key).sort()).toEqual(([['entries', [created.id]], ['evicted', agent], ['bundles']] as Event[]).map(key).sort());
    expect(one.events).toEqual([['entries', [created.id]], ['evicted', agent], ['bundles'], ['entries', ['from-two']]]);
    expect(one.bridge.stats).toMatchObject({ published: 3, relayed: 1, widened: 0, malformed: 0, reconnects: 0 });
    expect(two.bridge.stats).toMatchObject({ published: 1, relayed: 3 });
    // Both heard every sequence: the safety net finds nothing missed.
    expect(await one.bridge.reconcile()).toBe(false);
    expect(await two.bridge.reconcile()).toBe(false);
  });

  it('a change whose IDs do not fit in one NOTIFY arrives as "everything changed"', async () => {
    const [one, two] = await pair();
    const ids = Array.from({ length: 1500 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    one.feed.entriesChanged(ids);
    await eventually('server 2 hears it', () => two.events.length === 1);
    expect(two.events).toEqual([['everything']]);
    expect(one.bridge.stats).toMatchObject({ published: 1, widened: 1 });
  });

  it('re-establishes the LISTEN connection after pg_terminate_backend and emits the catch-up, then relays again', async () => {
    const [one, two] = await pair();
    const before = two.bridge.listenerPid!;
    expect(before).toBeGreaterThan(0);
    const admin = await pg.connect('postgres');
    try {
      const killed = await admin.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [before]);
      expect(killed.rows[0]!.ok).toBe(true);
    } finally {
      await admin.end();
    }
    // A change whose notification server 2 cannot have heard: written and not published.
    await entry(one.ds, 'during-the-gap');
    await eventually('server 2 catches up', () => has(two.events, ['everything']));
    expect(two.events).toEqual([['everything']]);
    expect(two.bridge.stats.reconnects).toBe(1);
    const after = two.bridge.listenerPid;
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    const next = await entry(one.ds, 'after');
    one.feed.entriesChanged([next.id]);
    await eventually('server 2 hears the next change', () => two.events.length === 2);
    expect(two.events[1]).toEqual(['entries', [next.id]]);
  });

  it('the reconcile finds the change counter ahead of what was heard and emits "everything changed" once', async () => {
    const [one, two] = await pair();
    one.feed.bundlesChanged();
    await eventually('server 2 hears it', () => two.events.length === 1);
    // A change that was counted but whose notification never came (a lost NOTIFY, as if the publisher died at COMMIT).
    const admin = await pg.connect(await dbOf(one));
    try {
      await admin.query(`UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'cluster.change_sequence'`);
    } finally {
      await admin.end();
    }
    expect(await two.bridge.reconcile()).toBe(true);
    expect(two.events).toEqual([['bundles'], ['everything']]);
    expect(two.bridge.stats.reconciled).toBe(1);
    expect(await two.bridge.reconcile()).toBe(false);
    expect(await one.bridge.reconcile()).toBe(true);
  });

  it('an unreadable notification on the channel makes a full pass', async () => {
    const [one, two] = await pair();
    const admin = await pg.connect(await dbOf(one));
    try {
      await admin.query(`SELECT pg_notify('anchorage_changes', 'not json')`);
    } finally {
      await admin.end();
    }
    await eventually('both hear it', () => one.events.length === 1 && two.events.length === 1);
    expect(two.events).toEqual([['everything']]);
    expect(two.bridge.stats.malformed).toBe(1);
  });

  it('hands each of 500 join tokens to exactly one of two servers consuming all at once', async () => {
    const db = await pg.createDatabase();
    const a = await store(db);
    const b = await store(db);
    const tokens = Array.from({ length: 500 }, (_, i) => `race-${i}-${Math.random().toString(36).slice(2)}`);
    for (const token of tokens) await a.createJoinToken({ token, spiffeId: `spiffe://example.org/node/${token}`, expiresAt: 2_000_000_000 });
    const now = 1_700_000_000;
    // Both servers ask for every token at the same moment (each on its own pool of 10).
    const [fromA, fromB] = await Promise.all([Promise.all(tokens.map((t) => a.consumeJoinToken(t, now))), Promise.all(tokens.map((t) => b.consumeJoinToken(t, now)))]);
    let wonByA = 0;
    tokens.forEach((token, i) => {
      const winners = [fromA[i], fromB[i]].filter((t) => t !== undefined);
      expect(winners).toEqual([{ token, spiffeId: `spiffe://example.org/node/${token}`, expiresAt: 2_000_000_000 }]);
      if (fromA[i] !== undefined) wonByA++;
    });
    // Not a requirement, but a race that one side always wins proves little: report it.
    console.log(`join token race: server A won ${wonByA} of ${tokens.length}`);
    expect(await b.consumeJoinToken(tokens[0]!, now)).toBeUndefined();
  });

  /** The database name of a node's store. */
  async function dbOf(n: Node): Promise<string> {
    return n.ds.where.slice(n.ds.where.lastIndexOf('/') + 1);
  }

  describe('federation fetches', () => {
    const TD = 'peer.test';
    let dir: string;
    let peer: TestCa;
    let server: Server;
    let base: string;
    let webCa: string;
    let hits = 0;
    let document = '';

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'anchorage-cluster-fed-'));
      peer = await startTestCa(TD, dir);
      const b = peer.ca.bundle().clone();
      b.sequence = 1;
      b.refreshHint = 60;
      document = b.marshal();
      // https_web: a private web CA and a server certificate for 127.0.0.1.
      const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
        '-subj', '/CN=Cluster Test Web CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
      o(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'web.key', '-out', 'web.csr', '-subj', '/CN=127.0.0.1']);
      writeFileSync(join(dir, 'web.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
      o(['x509', '-req', '-in', 'web.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'web.pem', '-days', '2', '-extfile', 'web.ext']);
      webCa = readFileSync(join(dir, 'ca.pem'), 'utf8');
      server = createServer({ key: readFileSync(join(dir, 'web.key')), cert: readFileSync(join(dir, 'web.pem')) }, (_req: IncomingMessage, res: ServerResponse) => {
        hits++;
        res.setHeader('content-type', 'application/json');
        res.end(document);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      server?.close();
      await peer?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('two servers on one relationship fetch once per interval between them; the other picks up the outcome and its agents hear of the bundle', async () => {
      const [one, two] = await pair();
      await one.ds.createRelationship({ trustDomain: TD, bundleEndpointUrl: `${base}/bundle`, profile: 'https_web', endpointSpiffeId: '', webCaPem: webCa }, 1000);
      let clock = 1_800_000_000_000;
      const client = (n: Node) => {
        const c = new FederationClient({ datastore: n.ds, feed: n.feed, logger: silentLogger(), bounds: { min: 30, max: 3600, fallback: 300 }, now: () => clock, lease: n.ds.cluster });
        open.push(c);
        return c;
      };
      const c1 = client(one);
      const c2 = client(two);
      hits = 0;
      // Each round, both servers' timers fire at once, several times over (the real timers are 30 s away).
      const round = () => Promise.all([c1.due(TD), c2.due(TD), c1.due(TD), c2.due(TD), c2.due(TD), c1.due(TD)]);
      await round();
      expect(hits).toBe(1);
      // Whoever fetched, both read the one outcome: fetched at the clock's second, next in 60 s (the hint).
      const now = Math.floor(clock / 1000);
      for (const n of [one, two]) expect(await n.ds.getRelationship(TD)).toMatchObject({ lastSuccessAt: now, consecutiveFailures: 0, nextRefreshAt: now + 60 });
      expect((await two.ds.getBundle(TD))?.document).toBe(SpiffeBundle.parse(TrustDomain.parse(TD), document).marshal());
      // The new bundle reaches the agents of the server that did not fetch, through the feed.
      await eventually('both feeds announce the bundle', () => has(one.events, ['bundles']) && has(two.events, ['bundles']));
      // Within the interval: nobody fetches.
      clock += 59_000;
      await round();
      expect(hits).toBe(1);
      // Each new interval: one fetch between them.
      for (let i = 2; i <= 6; i++) {
        clock += 61_000;
        await round();
        expect(hits).toBe(i);
      }
      // A relationship deleted through one server: the other finds it gone and forgets it.
      await one.ds.deleteRelationship(TD);
      clock += 61_000;
      await expect(c2.due(TD)).rejects.toMatchObject({ code: 'not_found' });
      expect(hits).toBe(6);
    });

    it('a relationship created through another server is picked up and fetched here', async () => {
      const [one, two] = await pair();
      // Server 2 starts with no relationships; with a lease it reads the list again every min_interval (1 s here).
      const c2 = new FederationClient({ datastore: two.ds, feed: two.feed, logger: silentLogger(), bounds: { min: 1, max: 3600, fallback: 300 }, lease: two.ds.cluster });
      open.push(c2);
      await c2.start();
      hits = 0;
      await one.ds.createRelationship({ trustDomain: TD, bundleEndpointUrl: `${base}/bundle`, profile: 'https_web', endpointSpiffeId: '', webCaPem: webCa }, 1000);
      await eventually('server 2 fetched it', async () => (await two.ds.getRelationship(TD))!.lastSuccessAt > 0);
      expect(hits).toBe(1);
      expect(has(two.events, ['bundles'])).toBe(true);
    });

    it('a server that claimed a fetch and died holds it only for the lease; then another fetches', async () => {
      const [one, two] = await pair();
      await one.ds.createRelationship({ trustDomain: TD, bundleEndpointUrl: `${base}/bundle`, profile: 'https_web', endpointSpiffeId: '', webCaPem: webCa }, 1000);
      const now = 1_800_000_000;
      // Server 1 claims (as its timer would) and dies before fetching.
      expect(await one.ds.cluster.claimRefresh(TD, now, now + 30)).toEqual({ claimed: true, nextRefreshAt: now + 30 });
      expect(await two.ds.cluster.claimRefresh(TD, now + 29, now + 59)).toEqual({ claimed: false, nextRefreshAt: now + 30 });
      let clock = (now + 29) * 1000;
      const c2 = new FederationClient({ datastore: two.ds, feed: two.feed, logger: silentLogger(), timeoutMs: 5000, now: () => clock, lease: two.ds.cluster });
      open.push(c2);
      hits = 0;
      await c2.due(TD);
      expect(hits).toBe(0);
      clock = (now + 30) * 1000;
      const r = await c2.due(TD);
      expect(hits).toBe(1);
      expect(r.lastSuccessAt).toBe(now + 30);
      expect(await two.ds.cluster.claimRefresh('nobody.test', now, now + 30)).toBeUndefined();
    });
  });
});
