import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lacks } from '../test/helpers/needs.js';
import { tempDir } from '../test/helpers/process.js';
import { readPidFile, runCommand } from './reload.js';

const isRoot = process.getuid?.() === 0;
let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = tempDir('anchorage-helper-reload-');
});
afterAll(() => tmp.cleanup());

function pidFile(name: string, text: string, mode = 0o644): string {
  const path = join(tmp.dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('readPidFile', () => {
  it('reads a pid with surrounding whitespace', () => {
    expect(readPidFile(pidFile('ok.pid', ' 4242\n'))).toBe(4242);
  });

  it('refuses what is not one positive process id', () => {
    for (const [name, text] of [['zero', '0\n'], ['negative', '-1\n'], ['two', '12 13\n'], ['word', 'nginx\n'], ['empty', ''], ['huge', '99999999999\n']] as const) {
      const path = pidFile(`${name}.pid`, text);
      expect(refusal(() => readPidFile(path))).toBe(`helper: pid_file_name ${path} does not hold a process id: ${JSON.stringify(text)}`);
    }
    const long = pidFile('long.pid', `${' '.repeat(100)}1\n`);
    expect(refusal(() => readPidFile(long))).toMatch(/^helper: pid_file_name .* does not hold a process id: /);
  });

  it('refuses a missing file, a directory, and one that group or others can write', () => {
    const missing = join(tmp.dir, 'missing.pid');
    expect(refusal(() => readPidFile(missing))).toBe(`helper: cannot read pid_file_name ${missing}: ENOENT`);
    const dir = join(tmp.dir, 'dir.pid');
    mkdirSync(dir);
    expect(refusal(() => readPidFile(dir))).toBe(`helper: pid_file_name ${dir} is not a regular file`);
    const writable = pidFile('writable.pid', '4242\n', 0o666);
    expect(refusal(() => readPidFile(writable))).toBe(`helper: pid_file_name ${writable} is writable by group or others`);
  });

  it.skipIf(lacks(!isRoot, 'root, to chown a file to another uid'))('refuses a pid file owned by another uid (it would choose whom we signal)', () => {
    const path = pidFile('foreign.pid', '4242\n');
    chownSync(path, 12345, 12345);
    expect(refusal(() => readPidFile(path))).toBe(`helper: pid_file_name ${path} is owned by uid 12345; only root or uid 0 may own it`);
  });
});

describe('runCommand', () => {
  it('resolves on status 0 and passes the arguments as they are, without a shell', async () => {
    const out = join(tmp.dir, 'args.out');
    await runCommand('/bin/sh', ['-c', 'printf "%s|" "$@" > "$0"', out, 'a b', '$HOME', ';', '*'], 5000);
    expect(readFileSync(out, 'utf8')).toBe('a b|$HOME|;|*|');
  });

  it('rejects with the status and what the command printed, bounded and escaped', async () => {
    await expect(runCommand('/bin/sh', ['-c', 'echo "first line"; echo "\x1b[31mred" >&2; exit 7'], 5000)).rejects.toThrow(
      'helper: reload command "/bin/sh" exited with status 7: first line | \\x1b[31mred',
    );
    const big = await runCommand('/bin/sh', ['-c', 'head -c 100000 /dev/zero | tr "\\0" x; exit 1'], 5000).catch((e: Error) => e.message);
    expect(big).toBe(`helper: reload command "/bin/sh" exited with status 1: ${'x'.repeat(4096)}`);
    await expect(runCommand('/bin/sh', ['-c', 'kill -TERM $$'], 5000)).rejects.toThrow('helper: reload command "/bin/sh" was killed by SIGTERM');
  });
});
