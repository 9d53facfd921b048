import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import { toPem } from '@anchorage/client/pem';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { startTestCa, type TestCa } from '../../test/helpers/test-ca.js';
import { captureLogger } from '../../test/helpers/log.js';
import { ChangeFeed } from '../changes.js';
import type { FederationRelationship, NewRelationship, StoredBundle } from '../datastore/DataStore.js';
import { SqliteDataStore } from '../datastore/sqlite/index.js';
import { FederationClient, type FederationClientOptions, type RefreshBounds } from './client.js';

const TD = 'peer.test';
const PEER = TrustDomain.parse(TD);
const ENDPOINT_ID = 'spiffe://peer.test/bundle-endpoint';
/** The largest body the clients here accept (FederationClientOptions.maxBytes): the peer's documents are far smaller. */
const MAX_BYTES = 8192;

let dir: string;
/** The peer: its CA issues the endpoint's SVID and its bundle is what the endpoint serves. */
let peer: TestCa;
/** Another CA claiming the same trust domain: its SVID must not be accepted with the peer's bundle. */
let impostor: TestCa;
let other: TestCa;
let webCa: string;
const servers: Server[] = [];
let spiffeBase: string;
let impostorBase: string;
let webBase: string;
let closedPort: number;

/** What each path answers, set per test; every server shares them. */
type Route = (req: IncomingMessage, res: ServerResponse) => void;
const routes = new Map<string, Route>();
/** Requests per path (the TLS handshake succeeded and the request arrived). */
const hits = new Map<string, number>();

const answer = (body: string): Route => (_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(body);
};

/** The peer's bundle document with the given sequence and refresh hint (null: absent). */
function peerDoc(sequence: number | null, hint: number | null, from: TestCa = peer): string {
  const b = from.ca.bundle().clone();
  b.sequence = sequence ?? undefined;
  b.refreshHint = hint ?? undefined;
  return b.marshal();
}

/** The peer's X.509 authorities alone, as an operator bootstraps them (no sequence, no hint). */
function bootstrapDoc(): string {
  return new SpiffeBundle(PEER, { x509Authorities: peer.ca.bundle().x509.authorities() }).marshal();
}

function listen(server: Server): Promise<string> {
  servers.push(server);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`https://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}

async function svidServer(ca: TestCa): Promise<string> {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const svid = await ca.minter.mintX509({ spiffeId: SpiffeId.parse(ENDPOINT_ID), spki: publicKey.export({ type: 'spki', format: 'der' }) });
  return listen(
    createServer(
      { key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: svid.chain.map((d) => toPem('CERTIFICATE', d)).join('') },
      handle,
    ),
  );
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '';
  hits.set(path, (hits.get(path) ?? 0) + 1);
  const route = routes.get(path);
  if (route) return route(req, res);
  res.statusCode = 404;
  res.end();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-fed-client-'));
  const impostorDir = join(dir, 'impostor');
  mkdirSync(impostorDir);
  peer = await startTestCa(TD, dir);
  impostor = await startTestCa(TD, impostorDir);
  other = await startTestCa('other.test', dir);
  spiffeBase = await svidServer(peer);
  impostorBase = await svidServer(impostor);

  // https_web: a private web CA and a server certificate for 127.0.0.1.
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=Client Test Web CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  o(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'web.key', '-out', 'web.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(dir, 'web.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  o(['x509', '-req', '-in', 'web.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'web.pem', '-days', '2', '-extfile', 'web.ext']);
  webCa = readFileSync(join(dir, 'ca.pem'), 'utf8');
  webBase = await listen(createServer({ key: readFileSync(join(dir, 'web.key')), cert: readFileSync(join(dir, 'web.pem')) }, handle));

  // A port nobody listens on.
  const tcp = createTcpServer();
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  closedPort = (tcp.address() as AddressInfo).port;
  await new Promise((r) => tcp.close(r));
});

afterAll(async () => {
  for (const s of servers) s.close();
  await peer?.close();
  await impostor?.close();
  await other?.close();
  rmSync(dir, { recursive: true, force: true });
});

// --- per test: a fresh datastore, feed and clock -----------------------------

let ds: SqliteDataStore;
let feed: ChangeFeed;
let events: number;
let clock: number;
let clients: FederationClient[];
let dbCount = 0;
const nowS = () => Math.floor(clock / 1000);

beforeEach(() => {
  routes.clear();
  hits.clear();
  ds = SqliteDataStore.open(join(dir, `ds-${++dbCount}.sqlite3`));
  feed = new ChangeFeed();
  events = 0;
  feed.on('bundles', () => events++);
  clock = 1_800_000_000_000;
  clients = [];
});

afterEach(async () => {
  for (const c of clients) await c.close();
  await ds.close();
});

function client(bounds: RefreshBounds, over: Partial<FederationClientOptions> = {}): FederationClient {
  const c = new FederationClient({ datastore: ds, feed, logger: silentLogger(), bounds, timeoutMs: 5_000, maxBytes: MAX_BYTES, now: () => clock, ...over });
  clients.push(c);
  return c;
}

function spiffeRel(path: string, over: Partial<NewRelationship> = {}): NewRelationship {
  return { trustDomain: TD, bundleEndpointUrl: `${spiffeBase}${path}`, profile: 'https_spiffe', endpointSpiffeId: ENDPOINT_ID, webCaPem: '', ...over };
}

function webRel(path: string, over: Partial<NewRelationship> = {}): NewRelationship {
  return { trustDomain: TD, bundleEndpointUrl: `${webBase}${path}`, profile: 'https_web', endpointSpiffeId: '', webCaPem: webCa, ...over };
}

/** Stores the bootstrap bundle as `anchorage federation create --bootstrap-bundle` does. */
async function storeBootstrap(): Promise<StoredBundle> {
  const b: StoredBundle = { trustDomain: TD, document: bootstrapDoc(), sequence: 0, refreshHint: 0, updatedAt: 1000 };
  await ds.putBundle(b);
  return b;
}

/** Resolves once `check` holds, polling; fails after `ms`. */
async function eventually(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A route that holds its answer until released; `arrived` resolves when the request is in. */
function heldRoute(body: string): { route: Route; arrived: Promise<void>; release: () => void } {
  let arrivedResolve!: () => void;
  const arrived = new Promise<void>((r) => (arrivedResolve = r));
  let held: ServerResponse | undefined;
  let released = false;
  return {
    arrived,
    route: (_req, res) => {
      held = res;
      arrivedResolve();
      if (released) answer(body)(_req, res);
    },
    release: () => {
      released = true;
      if (held) answer(body)({} as IncomingMessage, held);
    },
  };
}

describe('FederationClient', () => {
  it('https_spiffe: stores the peer bundle once, announces it once, and records the success', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    await storeBootstrap();
    await ds.createRelationship(spiffeRel('/doc'), 100);
    const doc = peerDoc(7, 120);
    routes.set('/doc', answer(doc));

    const r = await c.refresh(TD);
    const stored = await ds.getBundle(TD);
    expect(stored).toEqual({ trustDomain: TD, document: doc, sequence: 7, refreshHint: 120, updatedAt: nowS() });
    expect(events).toBe(1);
    expect(r).toEqual({
      ...spiffeRel('/doc'),
      createdAt: 100,
      updatedAt: 100,
      lastAttemptAt: nowS(),
      lastSuccessAt: nowS(),
      lastError: '',
      lastErrorReason: '',
      lastErrorAt: 0,
      consecutiveFailures: 0,
      nextRefreshAt: nowS() + 120,
    });
    expect(await ds.getRelationship(TD)).toEqual(r);

    // The same document again: nothing stored, nothing announced; the success is recorded.
    clock += 60_000;
    const again = await c.refresh(TD);
    expect(await ds.getBundle(TD)).toEqual(stored);
    expect(events).toBe(1);
    expect(again).toMatchObject({ lastAttemptAt: nowS(), lastSuccessAt: nowS(), lastError: '', consecutiveFailures: 0, nextRefreshAt: nowS() + 120 });
    expect(hits.get('/doc')).toBe(2);
  });

  it('https_web: verifies the endpoint with the given CA and stores what it serves, with no bundle held before', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    await ds.createRelationship(webRel('/doc'), 100);
    const doc = peerDoc(3, null);
    routes.set('/doc', answer(doc));
    const r = await c.refresh(TD);
    expect(await ds.getBundle(TD)).toEqual({ trustDomain: TD, document: doc, sequence: 3, refreshHint: 0, updatedAt: nowS() });
    expect(events).toBe(1);
    // No hint in the document: the fallback interval.
    expect(r).toMatchObject({ lastSuccessAt: nowS(), lastError: '', lastErrorReason: '', consecutiveFailures: 0, nextRefreshAt: nowS() + 300 });
  });

  it('refreshes of one relationship at the same time share one fetch', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    await ds.createRelationship(webRel('/doc'), 100);
    routes.set('/doc', answer(peerDoc(3, null)));
    const [a, b] = await Promise.all([c.refresh(TD), c.refresh(TD)]);
    expect(a).toEqual(b);
    expect(hits.get('/doc')).toBe(1);
    expect(events).toBe(1);
  });

  it('answers not_found for a trust domain without a relationship', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    const err = await c.refresh('nobody.test').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).code).toBe('not_found');
    expect((err as AnchorageError).message).toBe('federation: no federation relationship with nobody.test');
  });

  describe('a failed fetch keeps the last good bundle', () => {
    // Bounds large enough that no retry timer fires while the test runs.
    const bounds: RefreshBounds = { min: 30, max: 3600, fallback: 300 };

    interface FailureCase {
      name: string;
      /** Makes the next fetch fail this way. */
      arrange: () => Promise<void> | void;
      reason: string;
      /** The recorded lastError, exactly (string) or by pattern. */
      message: string | RegExp;
    }

    /**
     * Runs the cases in order against one relationship: each leaves the
     * stored bundle alone, announces nothing, counts one more failure and
     * schedules the retry at min * 2^(failures - 1), capped at `interval`.
     */
    async function runFailures(c: FederationClient, cases: FailureCase[], interval: number): Promise<FederationRelationship> {
      const held = await ds.getBundle(TD);
      const before = await ds.getRelationship(TD);
      let last = before!;
      for (const [i, f] of cases.entries()) {
        clock += 7_000;
        await f.arrange();
        const r = await c.refresh(TD);
        const failures = i + 1;
        expect(await ds.getBundle(TD), f.name).toEqual(held);
        expect(events, f.name).toBe(1);
        expect(r.lastErrorReason, f.name).toBe(f.reason);
        if (typeof f.message === 'string') expect(r.lastError, f.name).toBe(f.message);
        else expect(r.lastError, f.name).toMatch(f.message);
        expect(r.consecutiveFailures, f.name).toBe(failures);
        expect(r.lastAttemptAt, f.name).toBe(nowS());
        expect(r.lastErrorAt, f.name).toBe(nowS());
        expect(r.lastSuccessAt, f.name).toBe(before!.lastSuccessAt);
        expect(r.nextRefreshAt, f.name).toBe(nowS() + Math.min(interval, bounds.min * 2 ** (failures - 1)));
        expect(await ds.getRelationship(TD), f.name).toEqual(r);
        last = r;
      }
      return last;
    }

    it('https_spiffe: every kind of failure, then recovery', async () => {
      const c = client(bounds);
      await storeBootstrap();
      await ds.createRelationship(spiffeRel('/good'), 100);
      // A good first fetch: sequence 10, hint 1000 (the retry cap below).
      routes.set('/good', answer(peerDoc(10, 1000)));
      const first = await c.refresh(TD);
      expect(first.lastSuccessAt).toBe(nowS());
      expect(events).toBe(1);
      expect((await ds.getBundle(TD))?.sequence).toBe(10);

      const setUrl = async (path: string, over: Partial<NewRelationship> = {}) => {
        await ds.updateRelationship(spiffeRel('', { bundleEndpointUrl: path.startsWith('https:') ? path : `${spiffeBase}${path}`, ...over }), 200);
      };
      routes.set('/500', (_req, res) => {
        res.statusCode = 500;
        res.end('oops');
      });
      routes.set('/junk', answer('{"keys": [ not json'));
      routes.set('/other', answer(peerDoc(11, null, other)));
      routes.set('/old', answer(peerDoc(9, 1000)));
      routes.set('/big', answer(' '.repeat(MAX_BYTES + 1)));
      routes.set('/big-chunked', (_req, res) => {
        for (let i = 0; i < 4; i++) res.write(' '.repeat(MAX_BYTES / 2));
        res.end();
      });
      const url = (p: string) => `${spiffeBase}${p}`;
      const last = await runFailures(
        c,
        [
          { name: 'HTTP 500', arrange: () => setUrl('/500'), reason: 'http', message: `federation: ${url('/500')} answered HTTP 500` },
          { name: 'malformed JSON', arrange: () => setUrl('/junk'), reason: 'malformed', message: `federation: ${url('/junk')}: bundle: document is not valid JSON` },
          {
            name: 'another trust domain',
            arrange: () => setUrl('/other'),
            reason: 'wrong_trust_domain',
            message: `federation: ${url('/other')}: an authority names spiffe://other.test, which is not in peer.test`,
          },
          {
            name: 'a lower sequence',
            arrange: () => setUrl('/old'),
            reason: 'sequence_backwards',
            message: `federation: ${url('/old')}: spiffe_sequence 9 is lower than the 10 we hold; keeping ours`,
          },
          {
            name: 'a body over the limit (declared)',
            arrange: () => setUrl('/big'),
            reason: 'too_large',
            message: `federation: ${url('/big')} sent ${MAX_BYTES + 1} bytes, more than the limit of ${MAX_BYTES}`,
          },
          {
            name: 'a body over the limit (chunked)',
            arrange: () => setUrl('/big-chunked'),
            reason: 'too_large',
            message: `federation: ${url('/big-chunked')} sent more than the limit of ${MAX_BYTES} bytes`,
          },
          {
            name: 'an SVID of another CA',
            arrange: () => setUrl(`${impostorBase}/good`),
            reason: 'tls',
            message: new RegExp(`^federation: ${impostorBase.replace(/\./g, '\\.')}/good: \\S`),
          },
          {
            name: 'another endpoint SPIFFE ID',
            arrange: () => setUrl('/good', { endpointSpiffeId: 'spiffe://peer.test/not-the-endpoint' }),
            reason: 'tls',
            message: `federation: ${url('/good')}: the endpoint presented ${ENDPOINT_ID}, expected spiffe://peer.test/not-the-endpoint`,
          },
          {
            name: 'an unreachable port',
            arrange: () => setUrl(`https://127.0.0.1:${closedPort}/`),
            reason: 'unreachable',
            message: new RegExp(`^federation: https://127\\.0\\.0\\.1:${closedPort}/: connect ECONNREFUSED`),
          },
        ],
        1000,
      );
      // Nothing but the good fetch and the cases that got past TLS reached the peer's server.
      expect(hits.get('/good')).toBe(1);
      expect(last.consecutiveFailures).toBe(9);
      const lastErrorAt = last.lastErrorAt;

      // Recovery: the error goes, the count restarts, the new bundle is stored and announced.
      clock += 7_000;
      const newer = peerDoc(12, 600);
      routes.set('/good', answer(newer));
      await setUrl('/good');
      const ok = await c.refresh(TD);
      expect(ok).toMatchObject({
        lastAttemptAt: nowS(),
        lastSuccessAt: nowS(),
        lastError: '',
        lastErrorReason: '',
        lastErrorAt,
        consecutiveFailures: 0,
        nextRefreshAt: nowS() + 600,
      });
      expect(await ds.getBundle(TD)).toEqual({ trustDomain: TD, document: newer, sequence: 12, refreshHint: 600, updatedAt: nowS() });
      expect(events).toBe(2);
    });

    it('https_web: HTTP errors and certificates the CA does not vouch for, then recovery', async () => {
      const c = client(bounds);
      await ds.createRelationship(webRel('/good'), 100);
      routes.set('/good', answer(peerDoc(5, 45)));
      await c.refresh(TD);
      expect(events).toBe(1);
      routes.set('/500', (_req, res) => {
        res.statusCode = 503;
        res.end();
      });
      const setRel = async (over: Partial<NewRelationship>): Promise<void> => {
        await ds.updateRelationship(webRel('/good', over), 200);
      };
      const peerRootPem = peer.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join('');
      const url = `${webBase}/good`;
      // The stored hint (45 s) caps the retries: 30, 45, 45, ...
      await runFailures(
        c,
        [
          { name: 'HTTP 503', arrange: () => setRel({ bundleEndpointUrl: `${webBase}/500` }), reason: 'http', message: `federation: ${webBase}/500 answered HTTP 503` },
          { name: 'system roots', arrange: () => setRel({ webCaPem: '' }), reason: 'tls', message: new RegExp(`^federation: ${url.replace(/\./g, '\\.')}: \\S`) },
          { name: 'another CA', arrange: () => setRel({ webCaPem: peerRootPem }), reason: 'tls', message: new RegExp(`^federation: ${url.replace(/\./g, '\\.')}: \\S`) },
          {
            name: 'an SVID endpoint under https_web',
            arrange: () => setRel({ bundleEndpointUrl: `${spiffeBase}/good`, webCaPem: peerRootPem }),
            reason: 'tls',
            message: /IP: 127\.0\.0\.1 is not in the cert's list|does not match certificate's altnames/,
          },
        ],
        45,
      );
      clock += 7_000;
      await setRel({});
      const ok = await c.refresh(TD);
      expect(ok).toMatchObject({ lastError: '', lastErrorReason: '', consecutiveFailures: 0, lastSuccessAt: nowS(), nextRefreshAt: nowS() + 45 });
      // The same document as before: nothing new to store.
      expect(events).toBe(1);
    });

    it('https_spiffe without any bundle of the peer: no_authorities, and no connection made', async () => {
      const c = client(bounds);
      await ds.createRelationship(spiffeRel('/good'), 100);
      routes.set('/good', answer(peerDoc(1, null)));
      const r = await c.refresh(TD);
      expect(r).toMatchObject({
        lastErrorReason: 'no_authorities',
        lastError: `federation: no X.509 authorities of peer.test to authenticate ${spiffeBase}/good with; set a bootstrap bundle (anchorage federation update --bootstrap-bundle)`,
        consecutiveFailures: 1,
        lastSuccessAt: 0,
        lastAttemptAt: nowS(),
        lastErrorAt: nowS(),
        // No bundle, no hint: the first retry is at the minimum.
        nextRefreshAt: nowS() + 30,
      });
      expect(hits.get('/good')).toBeUndefined();
      expect(await ds.getBundle(TD)).toBeUndefined();
      expect(events).toBe(0);

      // A bundle with JWT keys only authenticates nothing either.
      const jwtOnly = JSON.stringify({ keys: JSON.parse(peerDoc(null, null)).keys.filter((k: { use: string }) => k.use === 'jwt-svid') });
      await ds.putBundle({ trustDomain: TD, document: jwtOnly, sequence: 0, refreshHint: 0, updatedAt: 1 });
      clock += 1000;
      const again = await c.refresh(TD);
      expect(again).toMatchObject({ lastErrorReason: 'no_authorities', consecutiveFailures: 2, nextRefreshAt: nowS() + 60 });
      expect((await ds.getBundle(TD))?.document).toBe(jwtOnly);
      expect(hits.get('/good')).toBeUndefined();
    });
  });

  it("schedules the next fetch at the peer's refresh hint clamped into the bounds, or the fallback without one", async () => {
    const c = client({ min: 60, max: 600, fallback: 120 });
    await storeBootstrap();
    await ds.createRelationship(spiffeRel('/doc'), 100);
    const cases: Array<[number | null, number]> = [
      [5, 60], // below the minimum
      [60, 60],
      [300, 300],
      [600, 600],
      [100_000, 600], // above the maximum
      [null, 120], // none: the fallback
      [0, 120], // zero: as none
    ];
    let sequence = 0;
    for (const [hint, expected] of cases) {
      clock += 1000;
      const doc = peerDoc(++sequence, hint);
      routes.set('/doc', answer(doc));
      const r = await c.refresh(TD);
      expect(r.lastError, `hint ${hint}`).toBe('');
      expect((await ds.getBundle(TD))?.document, `hint ${hint}`).toBe(doc);
      expect(r.nextRefreshAt - nowS(), `hint ${hint}`).toBe(expected);
    }
    expect(events).toBe(cases.length);
  });

  it('fetches on its own once started, at the scheduled time, and picks up a new bundle', async () => {
    await storeBootstrap();
    await ds.createRelationship(spiffeRel('/doc'), 100);
    routes.set('/doc', answer(peerDoc(1, 1)));
    const c = client({ min: 1, max: 1, fallback: 1 }, { now: Date.now });
    await c.start();
    await eventually('the first bundle is stored', async () => (await ds.getBundle(TD))?.sequence === 1);
    const eventsAfterFirst = events;
    expect(eventsAfterFirst).toBe(1);
    // The peer publishes a new bundle; nobody asks the client to refresh.
    routes.set('/doc', answer(peerDoc(2, 1)));
    await eventually('the new bundle is stored', async () => (await ds.getBundle(TD))?.sequence === 2);
    expect(events).toBe(2);
    expect((await ds.getRelationship(TD))?.lastError).toBe('');
  });

  it('forget() during a fetch: nothing is stored or recorded; changed() fetches again', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    const bootstrap = await storeBootstrap();
    await ds.createRelationship(spiffeRel('/slow'), 100);
    const slow = heldRoute(peerDoc(4, null));
    routes.set('/slow', slow.route);
    const before = await ds.getRelationship(TD);

    const pending = c.refresh(TD);
    await slow.arrived;
    c.forget(TD);
    slow.release();
    const r = await pending;
    expect(r).toEqual(before);
    expect(await ds.getBundle(TD)).toEqual(bootstrap);
    expect(events).toBe(0);

    const fresh = await c.changed(TD);
    expect(hits.get('/slow')).toBe(2);
    expect(fresh).toMatchObject({ lastSuccessAt: nowS(), lastError: '', consecutiveFailures: 0 });
    expect((await ds.getBundle(TD))?.sequence).toBe(4);
    expect(events).toBe(1);
  });

  it('changed() during a fetch: what the old settings fetched is dropped, the new settings are fetched', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    await storeBootstrap();
    await ds.createRelationship(spiffeRel('/slow'), 100);
    const slow = heldRoute(peerDoc(4, null));
    routes.set('/slow', slow.route);
    const newDoc = peerDoc(8, 90);
    routes.set('/new', answer(newDoc));

    const pending = c.refresh(TD);
    await slow.arrived;
    await ds.updateRelationship(spiffeRel('/new'), 200);
    const changed = c.changed(TD);
    slow.release();
    await pending;
    const r = await changed;
    expect(hits.get('/new')).toBe(1);
    expect(r).toMatchObject({ bundleEndpointUrl: `${spiffeBase}/new`, lastSuccessAt: nowS(), nextRefreshAt: nowS() + 90 });
    expect(await ds.getBundle(TD)).toEqual({ trustDomain: TD, document: newDoc, sequence: 8, refreshHint: 90, updatedAt: nowS() });
    expect(events).toBe(1);
  });

  it('replaces a bundle whose document has no spiffe_sequence when its content changes', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    const bootstrap = await storeBootstrap();
    await ds.createRelationship(spiffeRel('/doc'), 100);
    const replace = vi.spyOn(ds, 'replaceBundle');

    const one = peerDoc(null, 200);
    routes.set('/doc', answer(one));
    const r1 = await c.refresh(TD);
    expect(r1.lastError).toBe('');
    expect(await ds.getBundle(TD)).toEqual({ trustDomain: TD, document: one, sequence: 0, refreshHint: 200, updatedAt: nowS() });
    expect(replace).toHaveBeenLastCalledWith({ trustDomain: TD, document: one, sequence: 0, refreshHint: 200, updatedAt: nowS() }, bootstrap.sequence);
    expect(events).toBe(1);

    clock += 10_000;
    const two = peerDoc(null, 250);
    routes.set('/doc', answer(two));
    await c.refresh(TD);
    expect(await ds.getBundle(TD)).toEqual({ trustDomain: TD, document: two, sequence: 0, refreshHint: 250, updatedAt: nowS() });
    expect(replace).toHaveBeenCalledTimes(2);
    expect(events).toBe(2);

    // Unchanged: nothing replaced.
    clock += 10_000;
    await c.refresh(TD);
    expect(replace).toHaveBeenCalledTimes(2);
    expect(events).toBe(2);
  });

  it('replaces a bundle whose content changed under the same spiffe_sequence', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    await ds.createRelationship(webRel('/doc'), 100);
    routes.set('/doc', answer(peerDoc(5, 100)));
    await c.refresh(TD);
    const changed = peerDoc(5, 200);
    routes.set('/doc', answer(changed));
    clock += 10_000;
    const r = await c.refresh(TD);
    expect(r.lastError).toBe('');
    expect(await ds.getBundle(TD)).toEqual({ trustDomain: TD, document: changed, sequence: 5, refreshHint: 200, updatedAt: nowS() });
    expect(events).toBe(2);
  });

  it('warns of a change under the same spiffe_sequence only when the keys changed, not for a bootstrap document without a refresh hint', async () => {
    const logs = captureLogger();
    const c = client({ min: 30, max: 3600, fallback: 300 }, { logger: logs.logger });
    // SPIRE's `bundle show -format spiffe`: the peer's keys and sequence, but no spiffe_refresh_hint.
    await ds.putBundle({ trustDomain: TD, document: peerDoc(5, null), sequence: 5, refreshHint: 0, updatedAt: 1000 });
    await ds.createRelationship(spiffeRel('/doc'), 100);
    const served = peerDoc(5, 300);
    routes.set('/doc', answer(served));
    expect((await c.refresh(TD)).lastError).toBe('');
    expect(await ds.getBundle(TD)).toEqual({ trustDomain: TD, document: served, sequence: 5, refreshHint: 300, updatedAt: nowS() });
    const warning = 'federation: the peer changed its bundle without raising spiffe_sequence';
    expect(logs.records.filter((r) => r.msg === warning)).toEqual([]);
    expect(logs.records.filter((r) => r.msg === 'federation: stored a new bundle')).toMatchObject([{ trustDomain: TD, sequence: 5, keysChanged: false }]);

    // Other keys under the same sequence: that is worth a warning.
    clock += 10_000;
    const rotated = peerDoc(5, 300, impostor);
    routes.set('/doc', answer(rotated));
    expect((await c.refresh(TD)).lastError).toBe('');
    expect((await ds.getBundle(TD))?.document).toBe(rotated);
    expect(logs.records.filter((r) => r.msg === warning)).toMatchObject([{ level: 40, trustDomain: TD, sequence: 5 }]);
  });

  it('announces a bundle it stored even when recording the status fails', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    await storeBootstrap();
    await ds.createRelationship(spiffeRel('/doc'), 100);
    const doc = peerDoc(6, null);
    routes.set('/doc', answer(doc));
    vi.spyOn(ds, 'setRelationshipStatus').mockRejectedValueOnce(new AnchorageError('unavailable', 'datastore: set relationship status: database is locked'));
    const err = await c.refresh(TD).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as AnchorageError).message).toBe('datastore: set relationship status: database is locked');
    // The new bundle is stored: the agents must hear of it now, since the next fetch finds nothing new to announce.
    expect((await ds.getBundle(TD))?.document).toBe(doc);
    expect(events).toBe(1);
    await c.refresh(TD);
    expect(events).toBe(1);
  });

  it('gives up on a peer that sends its body slower than the fetch timeout allows', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 }, { timeoutMs: 1_000 });
    await storeBootstrap();
    await ds.createRelationship(spiffeRel('/drip'), 100);
    const timers: NodeJS.Timeout[] = [];
    // One byte every 200 ms: never idle for the timeout, never done.
    routes.set('/drip', (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.write('{');
      const t = setInterval(() => res.write(' '), 200);
      timers.push(t);
      res.on('close', () => clearInterval(t));
    });
    try {
      const outcome = await Promise.race([c.refresh(TD), sleep(10_000).then(() => 'still fetching after 10 s')]);
      expect(outcome).toMatchObject({ lastErrorReason: 'unreachable', consecutiveFailures: 1 });
    } finally {
      for (const t of timers) clearInterval(t);
    }
  });

  it('close() stops the timers: no fetch afterwards', async () => {
    await storeBootstrap();
    await ds.createRelationship(spiffeRel('/doc'), 100);
    routes.set('/doc', answer(peerDoc(1, 1)));
    const c = client({ min: 1, max: 1, fallback: 1 }, { now: Date.now });
    await c.start();
    await eventually('the first fetch happened', async () => (hits.get('/doc') ?? 0) >= 1);
    await c.close();
    const count = hits.get('/doc');
    await sleep(2_500);
    expect(hits.get('/doc')).toBe(count);
  });

  it('close() during a fetch waits for it and stores nothing', async () => {
    const c = client({ min: 30, max: 3600, fallback: 300 });
    const bootstrap = await storeBootstrap();
    await ds.createRelationship(spiffeRel('/slow'), 100);
    const slow = heldRoute(peerDoc(4, null));
    routes.set('/slow', slow.route);
    const pending = c.refresh(TD);
    await slow.arrived;
    let closed = false;
    const closing = c.close().then(() => (closed = true));
    await sleep(100);
    expect(closed).toBe(false);
    slow.release();
    await closing;
    await pending;
    expect(await ds.getBundle(TD)).toEqual(bootstrap);
    expect((await ds.getRelationship(TD))?.lastAttemptAt).toBe(0);
    expect(events).toBe(0);
  });
});
