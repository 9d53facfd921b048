import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import { parseServerConfig } from '../config.js';
import { DATASTORE_TYPES, openDataStore, type DataStoreConfig } from './registry.js';
import { SqliteDataStore } from './sqlite/index.js';

const dir = mkdtempSync(join(tmpdir(), 'anchorage-dsreg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const minimal = { trust_domain: 'example.org', data_dir: '/var/lib/anchorage', key_manager: { type: 'memory' } };

describe('datastore registry', () => {
  it('registers exactly the types the config accepts, and the config lists them for an unknown one', () => {
    expect(DATASTORE_TYPES).toEqual(['sqlite', 'postgres']);
    expect(() => parseServerConfig({ ...minimal, datastore: { type: 'mysql' } }, 'server.yaml', '/etc')).toThrow(
      new AnchorageError(
        'invalid_argument',
        `config: server.yaml: datastore.type: Invalid discriminator value. Expected ${DATASTORE_TYPES.map((t) => `'${t}'`).join(' | ')}`,
      ),
    );
    // The default is still SQLite under the data dir.
    expect(parseServerConfig(minimal, 'server.yaml', '/etc').datastore).toEqual({
      type: 'sqlite',
      path: '/var/lib/anchorage/datastore.sqlite3',
    });
  });

  it('opens sqlite at the configured path', async () => {
    const path = join(dir, 'state', 'ds.sqlite3');
    const ds = await openDataStore({ type: 'sqlite', path }, { logger: silentLogger() });
    expect(ds).toBeInstanceOf(SqliteDataStore);
    await ds.setMeta('k', 'v');
    await ds.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const again = await openDataStore({ type: 'sqlite', path }, { logger: silentLogger() });
    expect(await again.getMeta('k')).toBe('v');
    await again.close();
  });

  it.each<[string, unknown, string]>([
    ['an unknown type', { type: 'mysql', path: '/x' }, '"mysql"'],
    ['a type from the prototype chain', { type: 'hasOwnProperty' }, '"hasOwnProperty"'],
    ['no type', { path: '/x' }, 'undefined'],
  ])('refuses %s with invalid_argument, listing the known types', async (_name, cfg, shown) => {
    const err = await openDataStore(cfg as DataStoreConfig, { logger: silentLogger() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).code).toBe('invalid_argument');
    expect((err as AnchorageError).message).toBe(`datastore: datastore.type: unknown datastore type ${shown}; known types: sqlite, postgres`);
  });
});
