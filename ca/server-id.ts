// The id under which a server owns its intermediates and JWT keys when
// several servers share one PostgreSQL (ca/manager.ts serverId). A lone
// server on SQLite has none (''). Unless server.yaml names one, it is made
// at the first start and kept in data_dir, so a restart owns the same keys.
import { randomBytes } from 'node:crypto';
import { existsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AnchorageError } from '@anchorage/client/errors';
import { readConfigFile, writeFileAtomic } from '../common/safe-file.js';

export const SERVER_ID_FILE = 'server-id';
const PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function resolveServerId(opts: { configured?: string; shared: boolean; dataDir: string }): string {
  if (opts.configured !== undefined) return opts.configured;
  if (!opts.shared) return '';
  const file = join(opts.dataDir, SERVER_ID_FILE);
  if (existsSync(file)) {
    // Ours, mode 0600, no link: another user must not choose which keys we sign with.
    const id = readConfigFile(file, 'server', { maxBytes: 256, secret: true }).toString('utf8').trim();
    if (!PATTERN.test(id)) throw new AnchorageError('failed_precondition', `server: ${file} does not hold a server id (1–63 of a-z, 0-9, -); fix or remove it`);
    return id;
  }
  const id = `server-${randomBytes(6).toString('hex')}`;
  writeFileAtomic(opts.dataDir, SERVER_ID_FILE, (fd) => writeSync(fd, `${id}\n`));
  return id;
}
