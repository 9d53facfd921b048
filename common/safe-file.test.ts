import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createExclusive, removeTempFiles, writeFileAtomic, writeFileAtomicAsync } from './safe-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-safe-file-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('safe-file', () => {
  it('createExclusive refuses a path that is a link (even a dangling one) and leaves the target alone', () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'theirs');
    symlinkSync(target, join(dir, 'link'));
    symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling'));
    expect(() => createExclusive(join(dir, 'link'))).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(() => createExclusive(join(dir, 'dangling'))).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(readFileSync(target, 'utf8')).toBe('theirs');
    expect(readdirSync(dir).sort()).toEqual(['dangling', 'link', 'target']);
  });

  it('writeFileAtomic replaces the file, or on failure leaves it and no temp file', () => {
    writeFileAtomic(dir, 'state.json', (fd) => writeSync(fd, 'one'));
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe('one');
    expect(() =>
      writeFileAtomic(dir, 'state.json', (fd) => {
        writeSync(fd, 'half of tw');
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe('one');
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('writeFileAtomicAsync replaces the file (mode 0600), replaces a link instead of writing through it, and on failure leaves no temp file', async () => {
    const target = join(dir, 'theirs');
    writeFileSync(target, 'theirs');
    symlinkSync(target, join(dir, 'head.json'));
    await writeFileAtomicAsync(dir, 'head.json', 'one');
    expect(lstatSync(join(dir, 'head.json')).isSymbolicLink()).toBe(false);
    expect(lstatSync(join(dir, 'head.json')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'head.json'), 'utf8')).toBe('one');
    expect(readFileSync(target, 'utf8')).toBe('theirs');
    await expect(writeFileAtomicAsync(dir, 'head.json', 42 as unknown as string)).rejects.toThrow();
    expect(readFileSync(join(dir, 'head.json'), 'utf8')).toBe('one');
    expect(readdirSync(dir).sort()).toEqual(['head.json', 'theirs']);
    await expect(writeFileAtomicAsync(join(dir, 'missing'), 'head.json', 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('removeTempFiles removes only the temp files of that name', () => {
    for (const n of ['state.json.123.tmp', '.state.json.00ff.tmp', 'other.json.1.tmp', 'state.json']) writeFileSync(join(dir, n), 'x');
    expect(removeTempFiles(dir, 'state.json', 'test').sort()).toEqual(['.state.json.00ff.tmp', 'state.json.123.tmp']);
    expect(readdirSync(dir).sort()).toEqual(['other.json.1.tmp', 'state.json']);
  });
});
