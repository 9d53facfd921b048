import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import { useSoftHsmToken } from '../../test/helpers/softhsm.js';
import { parseServerConfig, type KeyManagerConfig } from '../config.js';
import { DiskKeyManager } from './disk.js';
import { MemoryKeyManager } from './memory.js';
import { Pkcs11KeyManager } from './pkcs11/index.js';
import { KEY_MANAGER_TYPES, openKeyManager } from './registry.js';

const token = useSoftHsmToken('anchorage-registry', '4321');
const dir = mkdtempSync(join(tmpdir(), 'anchorage-kmreg-'));
afterAll(() => {
  token.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const ctx = { configPath: 'key_manager', logger: silentLogger() };

/** The AnchorageError a promise fails with. */
async function failure(p: Promise<unknown>): Promise<AnchorageError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AnchorageError);
  return err as AnchorageError;
}

describe('key manager registry', () => {
  it('registers exactly the types the config accepts', () => {
    expect(KEY_MANAGER_TYPES).toEqual(['pkcs11', 'disk', 'memory']);
    // The config message lists the same set, so neither can grow alone.
    let message = '';
    try {
      parseServerConfig({ trust_domain: 'example.org', data_dir: '/d', key_manager: { type: 'vault' } }, 'server.yaml', '/etc');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(
      `config: server.yaml: key_manager.type: Invalid discriminator value. Expected ${KEY_MANAGER_TYPES.map((t) => `'${t}'`).join(' | ')}`,
    );
  });

  it('opens memory', async () => {
    const km = await openKeyManager({ type: 'memory' }, ctx);
    expect(km).toBeInstanceOf(MemoryKeyManager);
    expect(km.kind).toBe('memory');
    await km.close();
  });

  it('opens disk in the configured directory', async () => {
    const keys = join(dir, 'keys');
    const km = await openKeyManager({ type: 'disk', dir: keys }, ctx);
    expect(km).toBeInstanceOf(DiskKeyManager);
    await km.generateKey('k1', 'ec-p256');
    expect(statSync(join(keys, 'k1.pem')).isFile()).toBe(true);
    await km.close();
  });

  it('refuses disk without a directory, naming the key', async () => {
    const err = await failure(openKeyManager({ type: 'disk' }, { ...ctx, configPath: 'ca.root.key_manager' }));
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toBe('keymanager: ca.root.key_manager.dir is required');
  });

  it('opens pkcs11 with the PIN from pin_file or pin_env and the configured sessions', async () => {
    const pinFile = join(dir, 'pin');
    writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o600 });
    const base = { type: 'pkcs11' as const, module: token.module, token_label: token.label };
    const fromFile = await openKeyManager({ ...base, pin_file: pinFile, sessions: 3 }, ctx);
    expect(fromFile).toBeInstanceOf(Pkcs11KeyManager);
    expect((fromFile as Pkcs11KeyManager).sessions).toBe(3);
    await fromFile.close();

    process.env.ANCHORAGE_REGISTRY_TEST_PIN = token.pin;
    try {
      const fromEnv = await openKeyManager({ ...base, pin_env: 'ANCHORAGE_REGISTRY_TEST_PIN', sessions: 2 }, ctx);
      expect((fromEnv as Pkcs11KeyManager).sessions).toBe(2);
      await fromEnv.close();
    } finally {
      delete process.env.ANCHORAGE_REGISTRY_TEST_PIN;
    }

    // The PIN is resolved by the registry, so its errors name the section it came from.
    const err = await failure(openKeyManager({ ...base, pin_env: 'ANCHORAGE_REGISTRY_UNSET', sessions: 1 }, { ...ctx, configPath: 'ca.root.key_manager' }));
    expect(err.code).toBe('failed_precondition');
    expect(err.message).toBe('config: ca.root.key_manager.pin_env: environment variable ANCHORAGE_REGISTRY_UNSET is not set');
  });

  it.each<[string, unknown]>([
    ['an unknown type', { type: 'vault' }],
    ['a type from the prototype chain', { type: 'toString' }],
    ['no type', {}],
  ])('refuses %s with invalid_argument, listing the known types', async (_name, cfg) => {
    const err = await failure(openKeyManager(cfg as KeyManagerConfig, ctx));
    expect(err.code).toBe('invalid_argument');
    const shown = (cfg as { type?: string }).type;
    expect(err.message).toBe(
      `keymanager: key_manager.type: unknown key manager type ${shown === undefined ? 'undefined' : `"${shown}"`}; known types: pkcs11, disk, memory`,
    );
  });
});
