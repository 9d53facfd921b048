import { describe, expect, it } from 'vitest';
import { DerCache } from './der-cache.js';

describe('DerCache', () => {
  it('finds a value by equal bytes, whatever buffer they are a view of, and keeps its own copy of the key', () => {
    const c = new DerCache<string>(4);
    const a = Buffer.from('..intermediate-a..');
    c.set(a.subarray(2, 16), 'A');
    a.fill(0);
    expect(c.get(Buffer.from('intermediate-a'))).toBe('A');
    expect(c.get(new Uint8Array(Buffer.from('xxintermediate-a').subarray(2)))).toBe('A');
    expect(c.get(Buffer.from('intermediate-b'))).toBeUndefined();
    expect(c.get(Buffer.from('intermediate-'))).toBeUndefined();
    expect(c.get(new Uint8Array(0))).toBeUndefined();
    expect(c.keys().map(String)).toEqual(['intermediate-a']);
  });

  it('replaces the value of a key set again, starts over when full, and empties on clear', () => {
    const c = new DerCache<number>(2);
    c.set(Buffer.from('a'), 1);
    c.set(Buffer.from('a'), 2);
    expect(c.size).toBe(1);
    expect(c.get(Buffer.from('a'))).toBe(2);
    c.set(Buffer.from('b'), 3);
    expect(c.size).toBe(2);
    c.set(Buffer.from('c'), 4);
    expect(c.keys().map(String)).toEqual(['c']);
    expect(c.get(Buffer.from('a'))).toBeUndefined();
    c.clear();
    expect(c.size).toBe(0);
    expect(c.get(Buffer.from('c'))).toBeUndefined();
  });
});
