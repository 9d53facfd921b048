import { invalid } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { DiskKeyManager } from './disk.js';
import type { KeyManager } from './KeyManager.js';
import { MemoryKeyManager } from './memory.js';
import { Pkcs11KeyManager } from './pkcs11/index.js';

/**
 * What {@link openKeyManager} needs. The PIN is already resolved (from an
 * environment variable or a file) by the config layer, so this module never
 * learns where secrets come from.
 */
export type KeyManagerOptions =
  | { type: 'pkcs11'; module: string; tokenLabel: string; pin: string; sessions?: number }
  | { type: 'disk'; dir: string }
  | { type: 'memory' };

/** Opens the key manager a configuration names; the one place that knows every implementation. */
export async function openKeyManager(cfg: KeyManagerOptions, logger: Logger): Promise<KeyManager> {
  switch (cfg.type) {
    case 'pkcs11':
      return Pkcs11KeyManager.open({
        module: cfg.module,
        tokenLabel: cfg.tokenLabel,
        pin: cfg.pin,
        ...(cfg.sessions === undefined ? {} : { sessions: cfg.sessions }),
        logger,
      });
    case 'disk':
      return DiskKeyManager.open({ dir: cfg.dir, logger });
    case 'memory':
      return new MemoryKeyManager({ logger });
    default: {
      const type: unknown = (cfg as { type?: unknown }).type;
      throw invalid(`keymanager: unknown key manager type ${JSON.stringify(type)}`);
    }
  }
}
