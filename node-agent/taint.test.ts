import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { captureLogger } from '../test/helpers/log.js';
import { makeIntermediate, makeLeaf, makeRoot, type TestCert } from '../test/helpers/pki.js';
import { WorkloadCache, type HeldSvid } from './cache.js';
import { TaintResponder, issuerHash, jwtKid, type TaintMessage } from './agent/taint.js';
import type { CachedEntry } from './state.js';

// The taint logic of the agent against a real WorkloadCache and real
// certificates: which SVIDs are minted anew, which JWT-SVIDs are dropped,
// when the agent's own SVID is renewed, and the backoff when the server
// still signs with a tainted authority. The host's mintNow/renewNow are the
// agent's mint pipeline and RenewAgent; here they count calls.

const TD = 'taint.test';
const td = TrustDomain.parse(TD);
let root: TestCert;
let otherRoot: TestCert;
let interA: TestCert;
let interB: TestCert;
let hashA: string;
let hashB: string;
/** Leaves for e1..e4 (A, A, B, B) and the agent's own SVID under A. */
const leaves = new Map<string, TestCert>();
let agentLeaf: TestCert;

const sha = (d: Uint8Array) => createHash('sha256').update(d).digest('hex');

function entry(id: string): CachedEntry {
  return { id, spiffeId: `spiffe://${TD}/${id}`, selectors: [`unix:uid:${id.slice(1)}`], x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', revision: 1 };
}

function held(id: string, inter: TestCert, leaf = leaves.get(id)!): HeldSvid {
  return { entryId: id, revision: 1, key: Buffer.from(`key-${id}`), chain: [leaf.der, inter.der], notBefore: 0, notAfter: 4_000_000_000, rotateAt: 3_900_000_000 };
}

/** A JWT with this kid (the signature is not looked at by the cache). */
function jwt(kid: string | undefined, n: number): string {
  const header = Buffer.from(JSON.stringify(kid === undefined ? { alg: 'ES256' } : { alg: 'ES256', kid })).toString('base64url');
  return `${header}.${Buffer.from(JSON.stringify({ n })).toString('base64url')}.c2ln`;
}

interface World {
  cache: WorkloadCache;
  taint: TaintResponder;
  records: Array<Record<string, unknown>>;
  clock: { ms: number };
  calls: { mint: number; renew: number };
  own: { chain: Uint8Array[] | undefined };
  /** Entry IDs JWT-SVIDs were minted for, in order, and the kid each next one gets. */
  jwtMints: string[];
  kidFor: Map<string, string>;
}

function world(): World {
  const { logger, records } = captureLogger();
  const clock = { ms: Date.now() };
  const jwtMints: string[] = [];
  const kidFor = new Map<string, string>();
  const cache = new WorkloadCache(TD, () => Math.floor(clock.ms / 1000), async (entryId) => {
    jwtMints.push(entryId);
    return { token: jwt(kidFor.get(entryId), jwtMints.length), expiresAt: Math.floor(clock.ms / 1000) + 300 };
  });
  cache.setEntries(['e1', 'e2', 'e3', 'e4'].map(entry));
  cache.putSvids([held('e1', interA), held('e2', interA), held('e3', interB), held('e4', interB)]);
  const calls = { mint: 0, renew: 0 };
  const own = { chain: [agentLeaf.der, interA.der] as Uint8Array[] | undefined };
  const taint = new TaintResponder(
    { cache, log: logger, nowMs: () => clock.ms, ownChain: () => own.chain, mintNow: () => calls.mint++, renewNow: () => calls.renew++ },
    { initialMs: 1000, maxMs: 8000, jitter: 0 },
  );
  return { cache, taint, records, clock, calls, own, jwtMints, kidFor };
}

const msg = (x509: string[], jwtKids: string[] = [], has = true): TaintMessage => ({ has_tainted: has, tainted_x509_authorities: x509, tainted_jwt_authorities: jwtKids });
const settle = () => new Promise((r) => setImmediate(r));
const logged = (w: World, text: string) => w.records.filter((r) => r.msg === text);

beforeAll(async () => {
  root = await makeRoot(TD);
  otherRoot = await makeRoot(TD, { subject: 'CN=other root' });
  interA = await makeIntermediate(root, TD, { subject: 'CN=intermediate A' });
  interB = await makeIntermediate(root, TD, { subject: 'CN=intermediate B' });
  hashA = sha(interA.der);
  hashB = sha(interB.der);
  for (const [id, inter] of [['e1', interA], ['e2', interA], ['e3', interB], ['e4', interB]] as const) {
    leaves.set(id, await makeLeaf(inter, `spiffe://${TD}/${id}`));
  }
  agentLeaf = await makeLeaf(interA, `spiffe://${TD}/anchorage/agent/join_token/x`);
});

describe('issuerHash and jwtKid', () => {
  it('hash chain[1] as lowercase hex SHA-256 and read the kid of a header, and say undefined for what has neither', () => {
    expect(issuerHash([agentLeaf.der, interA.der])).toBe(hashA);
    expect(issuerHash([agentLeaf.der])).toBeUndefined();
    expect(jwtKid(jwt('k1', 1))).toBe('k1');
    expect(jwtKid(jwt(undefined, 1))).toBeUndefined();
    for (const bad of ['', 'nodots', '.x.y', '!!!.x.y', `${Buffer.from('[1]').toString('base64url')}.x.y`, `${Buffer.from('{"kid":7}').toString('base64url')}.x.y`, `${Buffer.from('null').toString('base64url')}.x.y`]) {
      expect(jwtKid(bad), bad).toBeUndefined();
    }
  });
});

describe('TaintResponder', () => {
  it('re-mints at once exactly the SVIDs whose intermediate is tainted, renews the own SVID signed by it, and logs one line with the counts', async () => {
    const w = world();
    expect([...w.cache.pending()]).toEqual([]);
    expect(w.taint.onSync(msg([hashA]))).toBe(true);
    expect([...w.cache.pending()].sort()).toEqual(['e1', 'e2']);
    expect(w.calls).toEqual({ mint: 1, renew: 1 });
    await settle();
    const lines = logged(w, 'agent: tainted authorities changed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, taintedX509: 1, taintedJwt: 0, reminting: 2, droppedJwts: 0, agentSvidTainted: true });
    // The old SVIDs are served until their successors arrive.
    expect(Buffer.from(w.cache.x509Identities([{ type: 'unix', value: 'uid:1' }])[0]!.chain[1]!).equals(Buffer.from(interA.der))).toBe(true);
    expect(w.taint.isTainted([agentLeaf.der, interA.der])).toBe(true);
    expect(w.taint.isTainted([agentLeaf.der, interB.der])).toBe(false);
  });

  it('does nothing for a message without has_tainted, nor for the same sets again (a reconnect sends them anew)', async () => {
    const w = world();
    expect(w.taint.onSync(msg([hashB], [], false))).toBe(false);
    expect(w.taint.x509.size).toBe(0);
    expect(w.taint.onSync(msg([hashB.toUpperCase()]))).toBe(true);
    expect([...w.cache.pending()].sort()).toEqual(['e3', 'e4']);
    // The own SVID is under A: not renewed.
    expect(w.calls).toEqual({ mint: 1, renew: 0 });
    w.cache.putSvids([held('e3', interA, leaves.get('e3')!), held('e4', interA, leaves.get('e4')!)]);
    expect(w.taint.onSync(msg([hashB]))).toBe(false);
    expect(w.taint.onSync(msg([hashB], [], false))).toBe(false);
    expect([...w.cache.pending()]).toEqual([]);
    expect(w.calls).toEqual({ mint: 1, renew: 0 });
    await settle();
    expect(logged(w, 'agent: tainted authorities changed')).toHaveLength(1);
    // An empty set is a change too (the taint was lifted): nothing to mint.
    expect(w.taint.onSync(msg([]))).toBe(true);
    expect(w.taint.x509.size).toBe(0);
    expect(w.calls).toEqual({ mint: 1, renew: 0 });
  });

  it('ignores malformed names from the server with one warning, keeping the well-formed ones', async () => {
    const w = world();
    expect(w.taint.onSync(msg(['xyz', hashA.slice(1), hashB], ['', 'k'.repeat(257), 'kid-1']))).toBe(true);
    expect([...w.taint.x509]).toEqual([hashB]);
    expect([...w.taint.jwt]).toEqual(['kid-1']);
    await settle();
    const warn = logged(w, 'agent: the server named tainted authorities in a form the agent does not know; ignoring those');
    expect(warn).toHaveLength(1);
    expect(warn[0]!.count).toBe(4);
  });

  it('drops exactly the cached JWT-SVIDs signed by a tainted kid; the next fetch mints anew, and a token still signed by it is served but not kept', async () => {
    const w = world();
    w.kidFor.set('e1', 'old');
    w.kidFor.set('e2', 'other');
    const fetch = async (id: string, aud: string) => (await w.cache.jwtSvids([{ type: 'unix', value: `uid:${id.slice(1)}` }], [aud]))[0]!.token;
    const t1 = await fetch('e1', 'a');
    const t1b = await fetch('e1', 'b');
    const t2 = await fetch('e2', 'a');
    expect(w.jwtMints).toEqual(['e1', 'e1', 'e2']);
    expect(w.cache.jwtCacheSize).toBe(3);
    w.taint.onSync(msg([], ['old']));
    expect(w.cache.jwtCacheSize).toBe(1);
    await settle();
    expect(logged(w, 'agent: tainted authorities changed')[0]).toMatchObject({ droppedJwts: 2, reminting: 0 });
    expect(w.calls).toEqual({ mint: 0, renew: 0 });
    // The other kid's token is still served from the cache.
    expect(await fetch('e2', 'a')).toBe(t2);
    // The server has not switched yet: the new token has the old kid, is served, and not kept.
    const again = await fetch('e1', 'a');
    expect(again).not.toBe(t1);
    expect(jwtKid(again)).toBe('old');
    expect(w.cache.jwtCacheSize).toBe(1);
    // Switched: the next one is kept.
    w.kidFor.set('e1', 'new');
    const fresh = await fetch('e1', 'b');
    expect(fresh).not.toBe(t1b);
    expect(await fetch('e1', 'b')).toBe(fresh);
    expect(w.jwtMints).toEqual(['e1', 'e1', 'e2', 'e1', 'e1']);
  });

  it('backs off, with one warning per round, when what was minted is still signed by the tainted authority, and mints those again when the retry is due', async () => {
    const w = world();
    w.taint.onSync(msg([hashA]));
    expect(w.calls.mint).toBe(1);
    // The mint came back still under A.
    const round = [held('e1', interA), held('e2', interA)];
    w.cache.putSvids(round);
    w.taint.afterMint(round);
    w.taint.afterMint(round); // a second batch of the same round: no second warning, no longer wait
    expect([...w.cache.pending()]).toEqual([]);
    expect(w.taint.nextWake()).toBe(w.clock.ms + 1000);
    await settle();
    const warns = logged(w, 'agent: the server still signs with a tainted authority; minting those svids again later');
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ svids: 2, retryMs: 1000 });
    // Not yet due: nothing.
    w.clock.ms += 999;
    w.taint.tick();
    expect(w.calls.mint).toBe(1);
    expect([...w.cache.pending()]).toEqual([]);
    w.clock.ms += 1;
    w.taint.tick();
    expect(w.calls.mint).toBe(2);
    expect([...w.cache.pending()].sort()).toEqual(['e1', 'e2']);
    expect(w.taint.nextWake()).toBeUndefined();
    // Still under A: the wait doubles.
    w.taint.afterMint(round);
    expect(w.taint.nextWake()).toBe(w.clock.ms + 2000);
    // Now under B: nothing more to do once the retry finds nothing tainted.
    const good = [held('e1', interB, leaves.get('e1')!), held('e2', interB, leaves.get('e2')!)];
    w.cache.putSvids(good);
    w.taint.afterMint(good);
    w.clock.ms += 2000;
    w.taint.tick();
    expect(w.calls.mint).toBe(2);
    expect([...w.cache.pending()]).toEqual([]);
    // SVIDs of an authority nobody tainted never start a retry.
    const w2 = world();
    w2.taint.afterMint(round);
    expect(w2.taint.nextWake()).toBeUndefined();
  });

  it('asks for another renewal after a backoff when the renewed own SVID is still tainted, doubling', () => {
    const w = world();
    w.taint.onSync(msg([hashA]));
    expect(w.taint.afterRenew([agentLeaf.der, interB.der])).toBeUndefined();
    expect(w.taint.afterRenew([agentLeaf.der, interA.der])).toBe(1000);
    expect(w.taint.afterRenew([agentLeaf.der, interA.der])).toBe(2000);
    // A new taint set starts the backoff again.
    w.taint.onSync(msg([hashA, hashB]));
    expect(w.taint.afterRenew([agentLeaf.der, interA.der])).toBe(1000);
  });

  it('when the bundle changes, re-mints every SVID that no longer chains to it (and renews the own one), and nothing while all still chain', async () => {
    const w = world();
    expect(w.taint.onBundleChanged(td, new X509Bundle(td, [root.der]))).toBe(0);
    expect(w.calls).toEqual({ mint: 0, renew: 0 });
    expect(w.taint.onBundleChanged(td, undefined)).toBe(0);
    // The root these chain to is gone (revoked by a root rotation): all of them, own SVID included.
    expect(w.taint.onBundleChanged(td, new X509Bundle(td, [otherRoot.der]))).toBe(4);
    expect([...w.cache.pending()].sort()).toEqual(['e1', 'e2', 'e3', 'e4']);
    expect(w.calls).toEqual({ mint: 1, renew: 1 });
    await settle();
    const lines = logged(w, 'agent: svids no longer chain to the new bundle; minting anew');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, reminting: 4, agentSvid: true });
    // Intermediates published as trust anchors and A revoked: only A's SVIDs, and the own one (under A).
    const w3 = world();
    expect(w3.taint.onBundleChanged(td, new X509Bundle(td, [interB.der]))).toBe(2);
    expect([...w3.cache.pending()].sort()).toEqual(['e1', 'e2']);
    expect(w3.calls).toEqual({ mint: 1, renew: 1 });
    // Without an own SVID, only the workloads.
    const w2 = world();
    w2.own.chain = undefined;
    expect(w2.taint.onBundleChanged(td, new X509Bundle(td, [otherRoot.der]))).toBe(4);
    expect(w2.calls).toEqual({ mint: 1, renew: 0 });
  });
});
