import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdNameFile, parseIdNames, parseStartTime, parseStatusGroups } from './proc.js';

// A real /proc/<pid>/stat line whose comm contains spaces and a ')'.
const STAT = '4242 (evil) (x y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n';

describe('parseStartTime', () => {
  it('counts fields from the last parenthesis', () => {
    expect(parseStartTime(STAT)).toBe(987654n);
  });
  it('agrees with the kernel for this process', async () => {
    const { readFileSync } = await import('node:fs');
    const mine = parseStartTime(readFileSync('/proc/self/stat', 'utf8'));
    expect(mine).toBeGreaterThan(0n);
    expect(parseStartTime(readFileSync(`/proc/${process.pid}/stat`, 'utf8'))).toBe(mine);
  });
  it('rejects truncated input', () => {
    expect(() => parseStartTime('4242 (x) S 1 2')).toThrow(/starttime/);
    expect(() => parseStartTime('garbage')).toThrow(/comm/);
  });
});

describe('parseStatusGroups', () => {
  it('reads the Groups: line, deduplicated', () => {
    expect(parseStatusGroups('Name:\tx\nUid:\t0\t0\t0\t0\nGroups:\t4 24 4 1000 \nNStgid:\t1\n')).toEqual([4, 24, 1000]);
  });
  it('accepts an empty Groups: line', () => {
    expect(parseStatusGroups('Name:\tx\nGroups:\t\nNStgid:\t1\n')).toEqual([]);
    expect(parseStatusGroups('Groups:')).toEqual([]);
  });
  it('fails on a missing or malformed line', () => {
    expect(() => parseStatusGroups('Name:\tx\n')).toThrow(/no Groups/);
    expect(() => parseStatusGroups('Groups:\t4 x\n')).toThrow(/bad gid/);
  });
  it('reads this process', async () => {
    const { readFileSync } = await import('node:fs');
    const groups = parseStatusGroups(readFileSync('/proc/self/status', 'utf8'));
    // process.getgroups() always adds the egid; the kernel's list does not.
    const egid = process.getegid?.();
    const fromNode = (process.getgroups?.() ?? []).filter((g) => g !== egid || groups.includes(g));
    expect([...groups].sort((a, b) => a - b)).toEqual([...new Set(fromNode)].sort((a, b) => a - b));
  });
});

describe('parseIdNames', () => {
  it('maps ids to names, first entry wins, skips junk', () => {
    const m = parseIdNames('root:x:0:0:root:/root:/bin/sh\n# comment\nbad line\ntoor:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n:x:5:\n');
    expect([...m.entries()]).toEqual([
      [0, 'root'],
      [65534, 'nobody'],
    ]);
  });
});

describe('IdNameFile', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('re-reads an edited file only after the TTL', async () => {
    dir = mkdtempSync(join(tmpdir(), 'anchorage-idnames-'));
    const file = join(dir, 'group');
    writeFileSync(file, 'alpha:x:100:\n');
    let now = 0;
    const names = new IdNameFile(file, 30_000, () => now);
    expect(await names.lookup(100)).toBe('alpha');
    writeFileSync(file, 'beta:x:100:\n');
    now = 29_999;
    expect(await names.lookup(100)).toBe('alpha');
    now = 30_000;
    expect(await names.lookup(100)).toBe('beta');
    expect(await names.lookup(101)).toBeUndefined();
  });

  it('knows no names when the file is missing', async () => {
    const names = new IdNameFile('/nonexistent/passwd', 1000);
    expect(await names.lookup(0)).toBeUndefined();
  });
});
