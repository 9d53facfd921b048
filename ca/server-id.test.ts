import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveServerId, SERVER_ID_FILE } from './server-id.js';

// The server id: configured, none for a lone SQLite server, or made once and kept in data_dir.

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-server-id-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('resolveServerId', () => {
  it('takes the configured id, and none for a server that shares no datastore', () => {
    expect(resolveServerId({ configured: 'east-1', shared: true, dataDir: dir })).toBe('east-1');
    expect(resolveServerId({ shared: false, dataDir: dir })).toBe('');
  });

  it('makes one at the first start (mode 0600) and finds the same one again', () => {
    const id = resolveServerId({ shared: true, dataDir: dir });
    expect(id).toMatch(/^server-[0-9a-f]{12}$/);
    const file = join(dir, SERVER_ID_FILE);
    expect(readFileSync(file, 'utf8')).toBe(`${id}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(resolveServerId({ shared: true, dataDir: dir })).toBe(id);
  });

  it('refuses a file that holds no id, one others can read, and a symbolic link', () => {
    const file = join(dir, SERVER_ID_FILE);
    writeFileSync(file, 'Not An Id!\n', { mode: 0o600 });
    expect(() => resolveServerId({ shared: true, dataDir: dir })).toThrow(`server: ${file} does not hold a server id`);
    writeFileSync(file, 'server-1\n');
    chmodSync(file, 0o644);
    expect(() => resolveServerId({ shared: true, dataDir: dir })).toThrow('is readable by group or others');
    rmSync(file);
    writeFileSync(join(dir, 'elsewhere'), 'server-1\n', { mode: 0o600 });
    symlinkSync(join(dir, 'elsewhere'), file);
    expect(() => resolveServerId({ shared: true, dataDir: dir })).toThrow('is a symbolic link');
  });
});
