import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { resolvePin, type KeyManagerConfig } from '../config.js';
import { DiskKeyManager } from './disk.js';
import type { KeyManager } from './KeyManager.js';
import { MemoryKeyManager } from './memory.js';
import { Pkcs11KeyManager } from './pkcs11/index.js';

/** The `type` values a key manager section (`key_manager`, `ca.root.key_manager`) may name. */
export type KeyManagerType = KeyManagerConfig['type'];

/** What an opener is given besides its config section. */
export interface KeyManagerOpenContext {
  logger: Logger;
  /** Where the section sits in server.yaml (`key_manager`, `ca.root.key_manager`), for messages. */
  configPath: string;
}

/** Opens one kind of key manager from its validated config section. */
export type KeyManagerOpener<T extends KeyManagerType> = (
  cfg: Extract<KeyManagerConfig, { type: T }>,
  ctx: KeyManagerOpenContext,
) => Promise<KeyManager>;

// The one place that knows every implementation: a new kind is a schema in
// ca/config.ts plus one line here, and the mapped type makes the compiler
// refuse a config type without an opener. The PIN is resolved here, at the
// last moment, so it is never part of a config object that might be logged.
const OPENERS: { readonly [T in KeyManagerType]: KeyManagerOpener<T> } = {
  pkcs11: (cfg, { logger, configPath }) =>
    Pkcs11KeyManager.open({
      module: cfg.module,
      tokenLabel: cfg.token_label,
      pin: resolvePin(cfg, configPath),
      sessions: cfg.sessions,
      logger,
    }),
  // parseServerConfig fills in `dir` (<data_dir>/keys); a programmatic caller must give it.
  disk: async (cfg, { logger, configPath }) => {
    if (cfg.dir === undefined) throw new AnchorageError('invalid_argument', `keymanager: ${configPath}.dir is required`);
    return DiskKeyManager.open({ dir: cfg.dir, logger });
  },
  memory: async (_cfg, { logger }) => new MemoryKeyManager({ logger }),
};

/** Every registered key manager type, in registration order. */
export const KEY_MANAGER_TYPES: readonly KeyManagerType[] = Object.keys(OPENERS) as KeyManagerType[];

/**
 * Opens the key manager a config section names. This is the only way the
 * server, the root of trust and the bench open one.
 *
 * The config layer already refuses an unknown `type` with its own message;
 * for a programmatic caller that bypassed it this fails with
 * `invalid_argument`, listing the known types.
 */
export async function openKeyManager(cfg: KeyManagerConfig, ctx: KeyManagerOpenContext): Promise<KeyManager> {
  const type: unknown = (cfg as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.hasOwn(OPENERS, type)) {
    throw new AnchorageError(
      'invalid_argument',
      `keymanager: ${ctx.configPath}.type: unknown key manager type ${JSON.stringify(type)}; known types: ${KEY_MANAGER_TYPES.join(', ')}`,
    );
  }
  const open = OPENERS[type as KeyManagerType] as KeyManagerOpener<KeyManagerType>;
  return open(cfg, ctx);
}
