import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fchmodSync, fsyncSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AnchorageError } from '../common/errors.js';
import { lockDataDir } from '../common/lockfile.js';
import { checkPrivateDir, createExclusive, syncDir } from '../common/safe-file.js';

/**
 * The files of `anchorage helper`, written so that no reader ever finds a
 * key that does not belong to the certificate beside it.
 *
 * cert_dir holds:
 *
 *   .gen-<time>-<random>/   one complete generation: svid.pem, svid_key.pem,
 *                           bundle.pem, federated/<td>.pem, JWT-SVIDs. Written
 *                           once, never changed afterwards.
 *   current -> .gen-…       a symbolic link to the newest generation,
 *                           replaced by rename(2), which is atomic.
 *   svid.pem -> current/svid.pem, …
 *                           the stable names servers are configured with.
 *
 * A new generation is written in full into a new directory and flushed; only
 * then does `current` swing to it, in one atomic step. Whoever resolves
 * `current` once (realpath, or opening the directory) reads files of a single
 * generation only. The last few generations are kept (keep_generations), so
 * a reader that resolved `current` just before a swap can still open its
 * files; older ones are removed.
 */

/** The link to the newest generation. */
export const CURRENT_LINK = 'current';
/** Generation directories start with this (hidden, so `ls` shows the stable names). */
const GENERATION_PREFIX = '.gen-';
/** Who locks cert_dir: the lock is `helper.lock`, holding the pid. */
const LOCK_OWNER = 'helper';
/** The lock file's name, which no configured file may take. */
export const LOCK_FILE = `${LOCK_OWNER}.lock`;

/** One file of a generation; `name` is `file` or `dir/file` (one level). */
export interface GenerationFile {
  readonly name: string;
  readonly data: string | Uint8Array;
  readonly mode: number;
}

/** Writes generations into one checked cert_dir; see the module comment. */
export class GenerationWriter {
  readonly dir: string;
  readonly #keep: number;
  /** Generations this writer made or found, oldest first; the last is `current`. */
  readonly #generations: string[] = [];
  readonly #unlock: () => void;

  /**
   * Checks `dir` (created 0700 if missing; refused if a symbolic link, owned
   * by another uid, writable by group or others, or below a directory another
   * uid could swap), proves it writable, and removes generations a previous
   * run left behind, except the one `current` names. Takes cert_dir's lock:
   * a second helper on the same directory would remove this one's generations.
   */
  constructor(dir: string, keep: number) {
    this.dir = dir;
    this.#keep = keep;
    checkPrivateDir(dir, 'helper', 'cert_dir');
    this.#probeWritable();
    this.#unlock = lockDataDir(dir, LOCK_OWNER);
    const current = this.#currentTarget();
    for (const entry of readdirSync(dir)) {
      if (entry === current) continue;
      if (entry.startsWith(GENERATION_PREFIX) || /^\..*\.tmp$/.test(entry)) rmSync(join(dir, entry), { recursive: true, force: true });
    }
    if (current !== undefined) this.#generations.push(current);
  }

  /**
   * Writes `files` (and the directories `dirs`, even if empty) as a new generation, makes it current, links the stable
   * names to it, and removes generations beyond the ones kept. Returns the
   * generation's directory name. A failure while the generation is written
   * (a full disk…) removes it and leaves `current` as it was.
   */
  write(files: readonly GenerationFile[], dirs: readonly string[] = []): string {
    const gen = `${GENERATION_PREFIX}${Date.now()}-${randomBytes(4).toString('hex')}`;
    const genDir = join(this.dir, gen);
    makeDir(genDir);
    try {
      const subdirs = new Set(dirs);
      for (const f of files) if (f.name.includes('/')) subdirs.add(f.name.slice(0, f.name.indexOf('/')));
      for (const s of subdirs) makeDir(join(genDir, s));
      for (const f of files) writeNew(join(genDir, f.name), f.data, f.mode);
      for (const s of subdirs) syncDir(join(genDir, s));
      syncDir(genDir);
      this.#replaceLink(CURRENT_LINK, gen);
    } catch (err) {
      rmSync(genDir, { recursive: true, force: true });
      throw err;
    }
    this.#generations.push(gen);
    const stable = new Set([...dirs, ...files.map((f) => f.name.split('/')[0]!)]);
    for (const name of stable) {
      const target = `${CURRENT_LINK}/${name}`;
      if (readLink(join(this.dir, name)) !== target) this.#replaceLink(name, target);
    }
    syncDir(this.dir);
    while (this.#generations.length > this.#keep) {
      rmSync(join(this.dir, this.#generations.shift()!), { recursive: true, force: true });
    }
    return gen;
  }

  /** Releases cert_dir's lock; the files stay. */
  close(): void {
    this.#unlock();
  }

  /** Points `name` at `target` through a new link renamed over it: readers see the old link or the new one. */
  #replaceLink(name: string, target: string): void {
    const tmp = join(this.dir, `.${name}.${randomBytes(8).toString('hex')}.tmp`);
    symlinkSync(target, tmp);
    try {
      renameSync(tmp, join(this.dir, name));
    } catch (err) {
      unlinkSync(tmp);
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new AnchorageError('failed_precondition', `helper: cannot link ${join(this.dir, name)} to ${target}: ${code}${code === 'EISDIR' || code === 'ENOTEMPTY' ? ' (a directory is in the way; remove it)' : ''}`);
    }
  }

  #currentTarget(): string | undefined {
    const t = readLink(join(this.dir, CURRENT_LINK));
    return t !== undefined && t.startsWith(GENERATION_PREFIX) && !t.includes('/') ? t : undefined;
  }

  #probeWritable(): void {
    const probe = join(this.dir, `.probe.${randomBytes(8).toString('hex')}.tmp`);
    try {
      closeSync(createExclusive(probe, 0o600));
      unlinkSync(probe);
    } catch (err) {
      throw new AnchorageError('failed_precondition', `helper: cannot write to cert_dir ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
}

/** The target of a symbolic link, or undefined when `path` is missing or not a link. */
function readLink(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

/** A new directory, 0755 whatever the umask (cert_dir's own mode decides who may enter). */
function makeDir(path: string): void {
  mkdirSync(path, { mode: 0o755 });
  chmodSync(path, 0o755);
}

/** A new file (O_EXCL, links not followed) of exactly `mode`, written in full and flushed. */
function writeNew(path: string, data: string | Uint8Array, mode: number): void {
  const fd = createExclusive(path, mode);
  try {
    fchmodSync(fd, mode);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
