import { createPrivateKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import { silentLogger, type Logger } from '../../common/log.js';
import type { KeyHandle, KeyManager, KeyType } from './KeyManager.js';
import { CURVES, checkKeyId, checkKeyType, closedError, keyTypeFromKeyObject } from './ec.js';
import { SOFTWARE_ROOT_WARNING, softwareKey, type SoftwareKey } from './software.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Ids become file names, so only characters that cannot climb out of the directory or hide a file. */
const SAFE_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const SUFFIX = '.pem';

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Keys as unencrypted PKCS#8 PEM files in one directory (0700, files 0600).
 * For development: it survives restarts, unlike the memory manager, but the
 * private keys sit on disk in the clear, so it warns when opened.
 */
export class DiskKeyManager implements KeyManager {
  readonly kind = 'disk' as const;
  /** Absolute path of the key directory. */
  readonly dir: string;
  readonly #cache = new Map<string, SoftwareKey>();
  /** Ids with a generateKey in flight in this process, so two callers cannot race on one file. */
  readonly #generating = new Set<string>();
  #closed = false;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Opens (creating if needed) the key directory. A directory other users can
   * enter is refused rather than silently fixed: the keys already in it may
   * have been exposed, which the operator needs to know.
   */
  static async open(opts: { dir: string; logger?: Logger }): Promise<DiskKeyManager> {
    const logger = opts.logger ?? silentLogger();
    if (typeof opts.dir !== 'string' || opts.dir === '') throw invalid('keymanager: disk key manager needs a directory');
    const dir = resolve(opts.dir);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new AnchorageError('failed_precondition', `keymanager: cannot create key directory ${dir}: ${errno(err) ?? 'error'}`, { cause: err });
    }
    const st = await stat(dir);
    if (!st.isDirectory()) throw new AnchorageError('failed_precondition', `keymanager: ${dir} is not a directory`);
    if ((st.mode & 0o077) !== 0) {
      throw new AnchorageError(
        'failed_precondition',
        `keymanager: key directory ${dir} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 700 it`,
      );
    }
    logger.warn({ keyManager: 'disk', dir }, `${SOFTWARE_ROOT_WARNING}; private keys are stored unencrypted in ${dir}`);
    return new DiskKeyManager(dir);
  }

  async generateKey(id: string, type: KeyType): Promise<KeyHandle> {
    this.#open();
    const file = this.#file(id);
    checkKeyType(type);
    if (this.#generating.has(id)) throw new AnchorageError('already_exists', `keymanager: key "${id}" already exists`);
    this.#generating.add(id);
    try {
      const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: CURVES[type].nodeCurve });
      const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
      const tmp = join(this.dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
      // Unpredictable name, never an existing path, never through a link.
      const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
      try {
        try {
          await fh.writeFile(pem);
          await fh.sync();
        } finally {
          await fh.close();
        }
        // link() is rename() that refuses to replace: the key file appears
        // complete or not at all, and an existing key is never overwritten.
        try {
          await link(tmp, file);
        } catch (err) {
          if (errno(err) === 'EEXIST') throw new AnchorageError('already_exists', `keymanager: key "${id}" already exists`);
          throw err;
        }
      } finally {
        await unlink(tmp).catch(() => undefined);
      }
      await this.#syncDir();
      this.#open();
      const key = softwareKey(id, type, privateKey, 'disk');
      this.#cache.get(id)?.revoke('deleted');
      this.#cache.set(id, key);
      return key.handle;
    } finally {
      this.#generating.delete(id);
    }
  }

  async getKey(id: string): Promise<KeyHandle | undefined> {
    this.#open();
    const file = this.#file(id);
    const cached = this.#cache.get(id);
    if (cached) return cached.handle;
    let pem: string;
    try {
      const st = await stat(file);
      if ((st.mode & 0o077) !== 0) {
        throw new AnchorageError(
          'failed_precondition',
          `keymanager: key file ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
        );
      }
      pem = await readFile(file, 'utf8');
    } catch (err) {
      if (errno(err) === 'ENOENT') return undefined;
      if (err instanceof AnchorageError) throw err;
      throw new AnchorageError('unavailable', `keymanager: cannot read key file ${file}: ${errno(err) ?? 'error'}`, { cause: err });
    }
    let type: KeyType | undefined;
    let privateKey: KeyObject | undefined;
    try {
      privateKey = createPrivateKey({ key: pem, format: 'pem' });
      type = keyTypeFromKeyObject(privateKey);
    } catch {
      // The parse error could quote the file; say only that it is not a key.
    }
    if (!privateKey || !type) {
      throw new AnchorageError('failed_precondition', `keymanager: ${file} is not an ec p-256 or p-384 pkcs#8 private key`);
    }
    this.#open();
    const again = this.#cache.get(id);
    if (again) return again.handle;
    const key = softwareKey(id, type, privateKey, 'disk');
    this.#cache.set(id, key);
    return key.handle;
  }

  async listKeys(): Promise<KeyHandle[]> {
    this.#open();
    const names = (await readdir(this.dir)).filter((n) => n.endsWith(SUFFIX)).sort();
    const out: KeyHandle[] = [];
    for (const name of names) {
      const id = name.slice(0, -SUFFIX.length);
      if (!SAFE_ID.test(id) || id.length > 128) continue;
      const key = await this.getKey(id);
      if (key) out.push(key);
    }
    return out;
  }

  async deleteKey(id: string): Promise<void> {
    this.#open();
    const file = this.#file(id);
    try {
      await unlink(file);
    } catch (err) {
      if (errno(err) !== 'ENOENT') {
        throw new AnchorageError('unavailable', `keymanager: cannot delete key file ${file}: ${errno(err) ?? 'error'}`, { cause: err });
      }
    }
    this.#cache.get(id)?.revoke('deleted');
    this.#cache.delete(id);
    await this.#syncDir();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const k of this.#cache.values()) k.revoke('closed');
    this.#cache.clear();
  }

  #open(): void {
    if (this.#closed) throw closedError('disk');
  }

  #file(id: string): string {
    checkKeyId(id);
    if (!SAFE_ID.test(id)) {
      throw invalid('keymanager: disk key ids may only contain letters, digits, ".", "_" and "-", and must not start with "."');
    }
    return join(this.dir, id + SUFFIX);
  }

  /** Makes the new or removed directory entry durable, not just the file contents. */
  async #syncDir(): Promise<void> {
    const fh = await open(this.dir, fsConstants.O_RDONLY);
    try {
      await fh.sync();
    } catch {
      // Some filesystems refuse fsync on directories; the rename is still atomic.
    } finally {
      await fh.close();
    }
  }
}
