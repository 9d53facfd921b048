import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger, type Logger } from '../../common/log.js';
import type { KeyHandle, KeyManager, KeyType } from './KeyManager.js';
import { CURVES, checkKeyId, checkKeyType, closedError } from './ec.js';
import { SOFTWARE_ROOT_WARNING, softwareKey, type SoftwareKey } from './software.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * Keys in process memory, gone at exit. For tests and throwaway development
 * servers: a restart means a new root of trust, so it warns when created.
 */
export class MemoryKeyManager implements KeyManager {
  readonly kind = 'memory' as const;
  readonly #keys = new Map<string, SoftwareKey>();
  #closed = false;

  constructor(opts: { logger?: Logger } = {}) {
    (opts.logger ?? silentLogger()).warn({ keyManager: 'memory' }, `${SOFTWARE_ROOT_WARNING}; keys are lost when the process exits`);
  }

  async generateKey(id: string, type: KeyType): Promise<KeyHandle> {
    this.#open();
    checkKeyId(id);
    checkKeyType(type);
    if (this.#keys.has(id)) throw new AnchorageError('already_exists', `keymanager: key "${id}" already exists`);
    const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: CURVES[type].nodeCurve });
    // Re-check: another generateKey for the same id may have finished while we awaited.
    this.#open();
    if (this.#keys.has(id)) throw new AnchorageError('already_exists', `keymanager: key "${id}" already exists`);
    const key = softwareKey(id, type, privateKey, 'memory');
    this.#keys.set(id, key);
    return key.handle;
  }

  async getKey(id: string): Promise<KeyHandle | undefined> {
    this.#open();
    checkKeyId(id);
    return this.#keys.get(id)?.handle;
  }

  async listKeys(): Promise<KeyHandle[]> {
    this.#open();
    return [...this.#keys.values()].map((k) => k.handle);
  }

  async deleteKey(id: string): Promise<void> {
    this.#open();
    checkKeyId(id);
    this.#keys.get(id)?.revoke('deleted');
    this.#keys.delete(id);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const k of this.#keys.values()) k.revoke('closed');
    this.#keys.clear();
  }

  #open(): void {
    if (this.#closed) throw closedError('memory');
  }
}
