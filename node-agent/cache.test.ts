import { describe, expect, it } from 'vitest';
import { AnchorageError } from '../common/errors.js';
import { SpiffeId } from '../spiffe/id.js';
import { WorkloadCache, rotationTime, type HeldSvid } from './cache.js';
import type { CachedEntry } from './state.js';

// The cache only files and matches what the agent already checked; the
// certificate bytes here are opaque markers (real SVIDs are covered by agent.test.ts).

const TD = 'cache.test';

function entry(id: string, spiffePath: string, selectors: string[], revision = 1): CachedEntry {
  return { id, spiffeId: `spiffe://${TD}${spiffePath}`, selectors, x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: id, revision };
}

function svid(entryId: string, revision: number, notAfter: number, rotateAt = notAfter - 10): HeldSvid {
  return { entryId, revision, key: Buffer.from(`key-${entryId}-${revision}`), chain: [Buffer.from(`leaf-${entryId}-${revision}`), Buffer.from('intermediate')], notBefore: 0, notAfter, rotateAt };
}

const sel = (...keys: string[]) => keys.map((k) => ({ type: k.slice(0, k.indexOf(':')), value: k.slice(k.indexOf(':') + 1) }));

function cache(now: { t: number }, minted: string[] = []) {
  return new WorkloadCache(TD, () => now.t, async (entryId, audience) => {
    minted.push(`${entryId}:${audience.join(',')}`);
    return { token: `token-${minted.length}`, expiresAt: now.t + 100 };
  });
}

describe('WorkloadCache', () => {
  it('serves an entry only to callers holding all its selectors, default first by SPIFFE ID', () => {
    const now = { t: 1000 };
    const c = cache(now);
    c.setEntries([entry('e1', '/web', ['unix:uid:0', 'unix:gid:0']), entry('e2', '/api', ['unix:uid:0']), entry('e3', '/db', ['unix:uid:7'])]);
    c.putSvids([svid('e1', 1, 2000), svid('e2', 1, 2000), svid('e3', 1, 2000)]);
    expect(c.x509Identities(sel('unix:uid:0')).map((i) => i.spiffeId.toString())).toEqual([`spiffe://${TD}/api`]);
    expect(c.x509Identities(sel('unix:gid:0', 'unix:uid:0', 'unix:path:/bin/x')).map((i) => i.spiffeId.toString())).toEqual([
      `spiffe://${TD}/api`,
      `spiffe://${TD}/web`,
    ]);
    expect(c.x509Identities(sel('unix:gid:0'))).toEqual([]);
    expect(c.x509Identities([])).toEqual([]);
  });

  it('keeps serving the old SVID of a changed entry until the new one arrives, and reports what needs minting', () => {
    const now = { t: 1000 };
    const c = cache(now);
    c.setEntries([entry('e1', '/web', ['unix:uid:0'])]);
    c.putSvids([svid('e1', 1, 2000)]);
    const { changed, needSvid } = c.setEntries([entry('e1', '/web', ['unix:uid:0'], 2)]);
    expect(changed).toBe(true);
    expect(needSvid).toEqual(['e1']);
    expect(Buffer.from(c.x509Identities(sel('unix:uid:0'))[0]!.chain[0]!).toString()).toBe('leaf-e1-1');
    c.putSvids([svid('e1', 2, 2000)]);
    expect(Buffer.from(c.x509Identities(sel('unix:uid:0'))[0]!.chain[0]!).toString()).toBe('leaf-e1-2');
    expect(c.due()).toEqual([]);
    // The same state again changes nothing.
    expect(c.setEntries([entry('e1', '/web', ['unix:uid:0'], 2)])).toEqual({ changed: false, needSvid: [] });
    // SVIDs for entries that are gone are not taken.
    c.putSvids([svid('gone', 1, 2000)]);
    expect(c.svids().map((s) => s.entryId)).toEqual(['e1']);
  });

  it('drops expired SVIDs and tells listeners; rotation and expiry set the next deadline', () => {
    const now = { t: 1000 };
    const c = cache(now);
    c.setEntries([entry('e1', '/web', ['unix:uid:0']), entry('e2', '/api', ['unix:uid:0'])]);
    c.putSvids([svid('e1', 1, 1100, 1050), svid('e2', 1, 1300, 1200)]);
    expect(c.nextDeadline()).toBe(1050);
    now.t = 1060;
    expect(c.due()).toEqual(['e1']);
    let changes = 0;
    const off = c.onChange(() => changes++);
    now.t = 1100;
    expect(c.expire()).toBe(true);
    expect(changes).toBe(1);
    expect(c.x509Identities(sel('unix:uid:0')).map((i) => i.spiffeId.toString())).toEqual([`spiffe://${TD}/api`]);
    expect(c.expire()).toBe(false);
    off();
    c.setEntries([]);
    expect(changes).toBe(1);
  });

  it('caches JWT-SVIDs per entry and audience set until half-life, shares concurrent requests, and forgets them with the entry', async () => {
    const now = { t: 1000 };
    const minted: string[] = [];
    const c = cache(now, minted);
    c.setEntries([entry('e1', '/web', ['unix:uid:0'])]);
    const [a, b] = await Promise.all([c.jwtSvids(sel('unix:uid:0'), ['x', 'y']), c.jwtSvids(sel('unix:uid:0'), ['y', 'x'])]);
    expect(a![0]!.token).toBe(b![0]!.token);
    expect(minted).toEqual(['e1:x,y']);
    now.t = 1049;
    expect((await c.jwtSvids(sel('unix:uid:0'), ['x', 'y']))[0]!.token).toBe(a![0]!.token);
    now.t = 1050;
    expect((await c.jwtSvids(sel('unix:uid:0'), ['x', 'y']))[0]!.token).not.toBe(a![0]!.token);
    expect(c.jwtCacheSize).toBe(1);
    c.setEntries([]);
    expect(c.jwtCacheSize).toBe(0);
    expect(await c.jwtSvids(sel('unix:uid:0'), ['x'])).toEqual([]);
    const err = await c.jwtSvids(sel('unix:uid:0'), ['x'], SpiffeId.parse(`spiffe://${TD}/web`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).code).toBe('permission_denied');
  });

  it('puts rotation at half-life ±10 %', () => {
    expect(rotationTime(0, 100, () => 0)).toBe(45);
    expect(rotationTime(0, 100, () => 0.5)).toBe(50);
    expect(rotationTime(0, 100, () => 0.999)).toBe(54);
  });
});
