import { describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { SpiffeId } from '@anchorage/client/spiffe/id';
import { DEFAULT_JWT_CACHE_MAX_BYTES, JWT_CACHE_ENTRY_OVERHEAD, JWT_INFLIGHT_MAX_BYTES, jwtCacheEntryBytes, WorkloadCache, rotationTime, type HeldSvid } from './cache.js';
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

  it('holds the key and the leaf as copies in one buffer of their own, not views of what they were decoded from', () => {
    const now = { t: 1000 };
    const c = cache(now);
    c.setEntries([entry('e1', '/web', ['unix:uid:0'])]);
    // As decoded: views of a larger response, and of a shared slab.
    const response = Buffer.from('....leaf-e1....intermediate....');
    const slab = Buffer.from('xxkey-e1xx');
    c.putSvids([{ entryId: 'e1', revision: 1, key: slab.subarray(2, 8), chain: [response.subarray(4, 11), response.subarray(15, 27)], notBefore: 0, notAfter: 2000, rotateAt: 1500 }]);
    response.fill(0);
    slab.fill(0);
    const [id] = c.x509Identities(sel('unix:uid:0'));
    expect(Buffer.from(id!.privateKey).toString()).toBe('key-e1');
    expect(id!.chain.map((d) => Buffer.from(d).toString())).toEqual(['leaf-e1', 'intermediate']);
    expect(id!.privateKey.buffer).toBe(id!.chain[0]!.buffer);
    expect(id!.privateKey.buffer.byteLength).toBe('key-e1'.length + 'leaf-e1'.length);
  });

  it('keeps serving the old SVID of a changed entry until the new one arrives, and reports what needs minting', () => {
    const now = { t: 1000 };
    const c = cache(now);
    c.setEntries([entry('e1', '/web', ['unix:uid:0'])]);
    c.putSvids([svid('e1', 1, 2000)]);
    const { changed, pending } = c.setEntries([entry('e1', '/web', ['unix:uid:0'], 2)]);
    expect(changed).toBe(true);
    expect(pending).toBe(1);
    expect([...c.pending()]).toEqual(['e1']);
    expect(Buffer.from(c.x509Identities(sel('unix:uid:0'))[0]!.chain[0]!).toString()).toBe('leaf-e1-1');
    c.putSvids([svid('e1', 2, 2000)]);
    expect(Buffer.from(c.x509Identities(sel('unix:uid:0'))[0]!.chain[0]!).toString()).toBe('leaf-e1-2');
    expect(c.due()).toEqual([]);
    expect([...c.pending()]).toEqual([]);
    // The same state again changes nothing.
    expect(c.setEntries([entry('e1', '/web', ['unix:uid:0'], 2)])).toEqual({ changed: false, pending: 0 });
    // SVIDs for entries that are gone are not taken.
    c.putSvids([svid('gone', 1, 2000)]);
    expect(c.svids().map((s) => s.entryId)).toEqual(['e1']);
  });

  it('applies changes by themselves and keeps the set of entries waiting for an SVID as entries and SVIDs change', () => {
    const now = { t: 1000 };
    const c = cache(now);
    c.setEntries([entry('e1', '/web', ['unix:uid:0']), entry('e2', '/api', ['unix:uid:0'])]);
    expect([...c.pending()]).toEqual(['e1', 'e2']);
    c.putSvids([svid('e1', 1, 2000), svid('e2', 1, 2000)]);
    expect([...c.pending()]).toEqual([]);
    // A change message: e3 new, e1 changed, e2 removed; nothing else is touched.
    expect(c.applyChanges([entry('e3', '/db', ['unix:uid:7']), entry('e1', '/web', ['unix:uid:0'], 2)], ['e2'])).toEqual({ changed: true, pending: 2 });
    expect(c.size).toBe(2);
    expect([...c.pending()].sort()).toEqual(['e1', 'e3']);
    expect(c.x509Identities(sel('unix:uid:0')).map((i) => i.spiffeId.toString())).toEqual([`spiffe://${TD}/web`]);
    // An SVID minted for the old revision is served but leaves the entry waiting.
    c.putSvids([svid('e1', 1, 2100)]);
    expect([...c.pending()].sort()).toEqual(['e1', 'e3']);
    c.putSvids([svid('e1', 2, 2100), svid('e3', 1, 2100)]);
    expect([...c.pending()]).toEqual([]);
    expect(c.applyChanges([], ['gone'])).toEqual({ changed: false, pending: 0 });
  });

  it('marks rotations due at the timer, and then counts only their expiry as a deadline', () => {
    const now = { t: 1000 };
    const c = cache(now);
    c.setEntries([entry('e1', '/web', ['unix:uid:0']), entry('e2', '/api', ['unix:uid:0'])]);
    c.putSvids([svid('e1', 1, 1100, 1050), svid('e2', 1, 1300, 1200)]);
    expect(c.nextDeadline()).toBe(1050);
    now.t = 1060;
    expect(c.markDue()).toBe(1);
    expect([...c.pending()]).toEqual(['e1']);
    // e1 waits for its replacement: its expiry (1100) is next, not its past rotation time.
    expect(c.nextDeadline()).toBe(1100);
    c.putSvids([svid('e1', 1, 1400, 1350)]);
    expect(c.nextDeadline()).toBe(1100);
    now.t = 1100;
    c.expire();
    expect(c.nextDeadline()).toBe(1200);
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

  describe('JWT-SVID cache bound in bytes', () => {
    /** Tokens of a chosen length, so every entry's charge is known exactly. */
    function sized(now: { t: number }, tokenLen: number, minted: string[] = []) {
      return new WorkloadCache(TD, () => now.t, async (entryId, audience) => {
        minted.push(`${entryId}:${audience.join(',')}`);
        return { token: `t${minted.length}`.padEnd(tokenLen, '.'), expiresAt: now.t + 100 };
      });
    }
    const uid0 = sel('unix:uid:0');

    it('charges key and token at two bytes per code unit plus a fixed overhead', () => {
      expect(jwtCacheEntryBytes('e1\na', 'tok')).toBe(2 * (4 + 3) + JWT_CACHE_ENTRY_OVERHEAD);
      expect(jwtCacheEntryBytes('', '')).toBe(JWT_CACHE_ENTRY_OVERHEAD);
      expect(DEFAULT_JWT_CACHE_MAX_BYTES).toBe(64 * 1024 * 1024);
    });

    it('counts the bytes of what it holds, exactly, and gives them back when an entry goes', async () => {
      const now = { t: 1000 };
      const c = sized(now, 100);
      c.setEntries([entry('e1', '/web', ['unix:uid:0']), entry('e2', '/api', ['unix:uid:7'])]);
      await c.jwtSvids(uid0, ['b', 'a']);
      // Key "e1\na\nb" (sorted audience) is 6 code units; token 100.
      expect(c.jwtCacheBytes).toBe(2 * (6 + 100) + JWT_CACHE_ENTRY_OVERHEAD);
      await c.jwtSvids(sel('unix:uid:7'), ['aud']);
      expect(c.jwtCacheBytes).toBe(2 * (6 + 100) + 2 * (6 + 100) + 2 * JWT_CACHE_ENTRY_OVERHEAD);
      // A refresh replaces the token: charged once, not twice.
      now.t = 1050;
      await c.jwtSvids(uid0, ['a', 'b']);
      expect(c.jwtCacheSize).toBe(2);
      expect(c.jwtCacheBytes).toBe(2 * (2 * (6 + 100) + JWT_CACHE_ENTRY_OVERHEAD));
      c.setEntries([entry('e2', '/api', ['unix:uid:7'])]);
      expect(c.jwtCacheBytes).toBe(2 * (6 + 100) + JWT_CACHE_ENTRY_OVERHEAD);
      c.setEntries([]);
      expect(c.jwtCacheBytes).toBe(0);
      expect(c.jwtCacheSize).toBe(0);
    });

    it('evicts the least recently used tokens to stay within the bound', async () => {
      const now = { t: 1000 };
      const minted: string[] = [];
      const c = sized(now, 200, minted);
      const one = jwtCacheEntryBytes('e1\na0', ''.padEnd(200));
      c.configureJwtCache({ maxBytes: 3 * one });
      c.setEntries([entry('e1', '/web', ['unix:uid:0'])]);
      for (const a of ['a0', 'a1', 'a2']) await c.jwtSvids(uid0, [a]);
      expect(c.jwtCacheBytes).toBe(3 * one);
      // a0 used again: a1 is now the least recently used.
      await c.jwtSvids(uid0, ['a0']);
      expect(minted).toHaveLength(3);
      await c.jwtSvids(uid0, ['a3']);
      expect(c.jwtCacheSize).toBe(3);
      expect(c.jwtCacheBytes).toBe(3 * one);
      await c.jwtSvids(uid0, ['a0']);
      await c.jwtSvids(uid0, ['a2']);
      expect(minted).toHaveLength(4); // a0 and a2 still cached
      await c.jwtSvids(uid0, ['a1']);
      expect(minted).toEqual(['e1:a0', 'e1:a1', 'e1:a2', 'e1:a3', 'e1:a1']);
      expect(c.jwtCacheBytes).toBe(3 * one);
    });

    it('never holds more than its bound, whatever the mix of sizes, and keeps nothing larger than the bound', async () => {
      const now = { t: 1000 };
      const c = sized(now, 10);
      const max = 5000;
      c.configureJwtCache({ maxBytes: max });
      c.setEntries([entry('e1', '/web', ['unix:uid:0'])]);
      for (let i = 0; i < 200; i++) {
        await c.jwtSvids(uid0, [`aud-${i}`.padEnd((i * 37) % 900, 'x')]);
        expect(c.jwtCacheBytes).toBeLessThanOrEqual(max);
      }
      expect(c.jwtCacheSize).toBeGreaterThan(1);
      // Served, but not kept: it would not fit alone.
      const [big] = await c.jwtSvids(uid0, ['y'.repeat(max)]);
      expect(big!.token.startsWith('t')).toBe(true);
      expect(c.jwtCacheBytes).toBeLessThanOrEqual(max);
      // Lowering the bound evicts at once; 0 keeps nothing.
      c.configureJwtCache({ maxBytes: 0 });
      expect(c.jwtCacheBytes).toBe(0);
      await c.jwtSvids(uid0, ['z']);
      expect(c.jwtCacheSize).toBe(0);
    });

    it('refuses, with unavailable, requests past the in-flight byte bound, and takes them again once the server answered', async () => {
      const now = { t: 1000 };
      const release: (() => void)[] = [];
      const c = new WorkloadCache(TD, () => now.t, (_entryId, audience) => new Promise((resolve) => release.push(() => resolve({ token: `t-${audience[0]}`, expiresAt: now.t + 100 }))));
      c.setEntries([entry('e1', '/web', ['unix:uid:0'])]);
      // Maximal requests: 8 KiB of audience each.
      const aud = (i: number) => [`${i}`.padEnd(8192, 'a')];
      const fits = Math.floor(JWT_INFLIGHT_MAX_BYTES / jwtCacheEntryBytes(`e1\n${aud(0)[0]}`, ''));
      const waiting = Array.from({ length: fits }, (_, i) => c.jwtSvids(uid0, aud(i)));
      const err = await c.jwtSvids(uid0, aud(fits)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AnchorageError);
      expect((err as AnchorageError).code).toBe('unavailable');
      expect((err as AnchorageError).message).toBe('agent: too many jwt-svid requests are waiting for the server; retry later');
      // The same request as one already waiting shares it: no new charge.
      const shared = c.jwtSvids(uid0, aud(0));
      expect(release).toHaveLength(fits);
      for (const r of release.splice(0)) r();
      await Promise.all([...waiting, shared]);
      // Room again: the refused request now goes to the server.
      const again = c.jwtSvids(uid0, aud(fits));
      expect(release).toHaveLength(1);
      release[0]!();
      expect((await again)[0]!.token).toBe(`t-${aud(fits)[0]}`);
    });

    it('refuses a bound that is not a non-negative integer', () => {
      const c = sized({ t: 0 }, 1);
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => c.configureJwtCache({ maxBytes: bad })).toThrow('agent: the jwt-svid cache bound must be a non-negative integer number of bytes');
      }
    });
  });

  it('puts rotation at half-life ±10 %', () => {
    expect(rotationTime(0, 100, () => 0)).toBe(45);
    expect(rotationTime(0, 100, () => 0.5)).toBe(50);
    expect(rotationTime(0, 100, () => 0.999)).toBe(54);
  });
});
