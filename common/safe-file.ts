import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readSync, readdirSync, realpathSync, renameSync, unlinkSync, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { AnchorageError } from '@anchorage/client/errors';

/**
 * Helpers for the private directories that hold keys (the server's and the
 * agent's data_dir) and for writing files into them so that a crash, a full
 * disk or another local user can never leave a half-written file in place of
 * a good one, nor redirect a write into a file of theirs.
 */

/** Flags of every new file: never an existing path, never through a symbolic link. */
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Leftover temp files of {@link writeFileAtomic} (and of older versions: `<name>.<pid>.tmp`). */
function isTempOf(entry: string, name: string): boolean {
  return entry.endsWith('.tmp') && (entry.startsWith(`.${name}.`) || entry.startsWith(`${name}.`));
}

function myUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/**
 * Makes sure `dir` is a directory only this process's uid controls, creating
 * it 0700 when missing. Refused, with one line naming the problem:
 *
 * - a symbolic link (checked with lstat, never followed): whoever controls the
 *   link, or the directory it sits in, could point it elsewhere between our
 *   check and our writes; give the real path instead;
 * - not a directory;
 * - owned by another uid: its owner could plant links or read what we write;
 * - writable by group or others: they could do the same;
 * - below a directory (links resolved) that belongs to another uid than
 *   ours or root's, or that others can write to without the sticky bit:
 *   they could swap the whole directory after this check.
 *
 * Group or other *read* access is returned for the caller to fix or report
 * (`mode`), since the directory is ours and nobody could have replaced files in it.
 *
 * @param who the module prefix of messages ("agent", "server")
 * @param key the config key that names the directory, for the message
 */
export function checkPrivateDir(dir: string, who: string, key = 'data_dir'): Stats {
  const uid = myUid();
  // Before anything is created below them.
  if (uid !== undefined) checkAncestors(dir, uid, who, key);
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new AnchorageError('failed_precondition', `${who}: cannot inspect ${key} ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new AnchorageError('failed_precondition', `${who}: cannot create ${key} ${dir}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    st = lstatSync(dir);
  }
  if (st.isSymbolicLink()) {
    throw new AnchorageError('failed_precondition', `${who}: ${key} ${dir} is a symbolic link; give the real directory`);
  }
  if (!st.isDirectory()) throw new AnchorageError('failed_precondition', `${who}: ${key} ${dir} is not a directory`);
  if (uid !== undefined && st.uid !== uid) {
    throw new AnchorageError(
      'failed_precondition',
      `${who}: ${key} ${dir} is owned by uid ${st.uid}, not by uid ${uid} that runs the ${who}; chown it or choose another ${key}`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new AnchorageError(
      'failed_precondition',
      `${who}: ${key} ${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}); chmod 700 it`,
    );
  }
  return st;
}

/**
 * Every directory above `dir` (links resolved) must belong to us or root and
 * be writable by nobody else, unless sticky like /tmp: whoever can rename
 * an entry on the way can swap the whole directory for one of theirs after
 * our check. The same rule as the Workload API socket's directory.
 */
function checkAncestors(dir: string, uid: number, who: string, key: string): void {
  // From the nearest directory that exists (the rest will be created, ours and 0700).
  let d = dirname(resolve(dir));
  for (;;) {
    try {
      d = realpathSync(d);
      break;
    } catch (err) {
      const up = dirname(d);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || up === d) {
        throw new AnchorageError('failed_precondition', `${who}: cannot resolve ${d}, above ${key} ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      d = up;
    }
  }
  for (;;) {
    const st = lstatSync(d);
    if (st.uid !== uid && st.uid !== 0) {
      throw new AnchorageError(
        'failed_precondition',
        `${who}: ${d}, above ${key} ${dir}, belongs to uid ${st.uid}; only root or uid ${uid} (which runs the ${who}) may own it; choose another ${key}`,
      );
    }
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      throw new AnchorageError(
        'failed_precondition',
        `${who}: ${d}, above ${key} ${dir}, is writable by group or others and not sticky (mode ${(st.mode & 0o7777).toString(8)}); choose another ${key}`,
      );
    }
    const up = dirname(d);
    if (up === d) return;
    d = up;
  }
}

/**
 * Creates `path` for writing: fails if anything exists there, a symbolic
 * link included (O_CREAT|O_EXCL|O_NOFOLLOW). Returns the file descriptor.
 */
export function createExclusive(path: string, mode = 0o600): number {
  return openSync(path, CREATE_FLAGS, mode);
}

/** fsync of a directory, so a new, renamed or removed entry is durable. */
export function syncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is atomic anyway.
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `dir/name` atomically: the content goes to a new temp file with
 * an unpredictable name (`.<name>.<16 hex>.tmp`, created exclusively, links
 * not followed), is flushed, renamed over the target, and the directory is
 * flushed. A crash leaves the old file or the new one, plus at most a temp
 * file that {@link removeTempFiles} clears at the next start. On failure the
 * temp file is removed and the target is untouched.
 *
 * @param write writes the content to the descriptor (synchronously)
 */
export function writeFileAtomic(dir: string, name: string, write: (fd: number) => void, mode = 0o600): void {
  const tmp = join(dir, `.${name}.${randomBytes(8).toString('hex')}.tmp`);
  const fd = createExclusive(tmp, mode);
  let renamed = false;
  try {
    try {
      write(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(dir, name));
    renamed = true;
  } finally {
    if (!renamed) {
      try {
        unlinkSync(tmp);
      } catch {
        /* already gone */
      }
    }
  }
  syncDir(dir);
}

/**
 * {@link writeFileAtomic} off the event loop: the same steps (exclusive temp
 * file, no links followed, flush, rename, directory flush) on the libuv
 * threadpool, so the two fsyncs do not block the caller's thread.
 */
export async function writeFileAtomicAsync(dir: string, name: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = join(dir, `.${name}.${randomBytes(8).toString('hex')}.tmp`);
  const fh = await fsp.open(tmp, CREATE_FLAGS, mode);
  let renamed = false;
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, join(dir, name));
    renamed = true;
  } finally {
    if (!renamed) await fsp.unlink(tmp).catch(() => undefined);
  }
  let d: fsp.FileHandle;
  try {
    d = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch {
    return;
  }
  try {
    await d.sync();
  } catch {
    // As in syncDir: some filesystems refuse fsync on directories.
  } finally {
    await d.close();
  }
}

/**
 * Removes the temp files a killed writer of `dir/name` left behind (ours
 * and the `<name>.<pid>.tmp` of earlier versions). Only call it while
 * holding the directory's lock, so no live writer's file is taken. Links
 * are removed, not followed. Returns the names removed.
 *
 * @param who the module prefix of messages ("agent")
 */
export function removeTempFiles(dir: string, name: string, who: string): string[] {
  const removed: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (!isTempOf(entry, name)) continue;
    try {
      unlinkSync(join(dir, entry));
      removed.push(entry);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new AnchorageError('failed_precondition', `${who}: cannot remove the leftover temp file ${join(dir, entry)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
  }
  if (removed.length > 0) syncDir(dir);
  return removed;
}

/**
 * Reads a small file named by the config (a certificate, a key, a CA
 * bundle), never through a symbolic link, only a regular file, at most
 * `maxBytes`. With `secret` (a private key) the file must be ours and
 * readable by nobody else. Failures are `failed_precondition`, naming `what`.
 */
export function readConfigFile(path: string, what: string, opts: { maxBytes: number; secret?: boolean }): Buffer {
  const fail = (why: string) => new AnchorageError('failed_precondition', `${what}: ${path}: ${why}`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ELOOP' ? 'is a symbolic link; give the real path' : `cannot open (${code ?? 'error'})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw fail('is not a regular file');
    if (st.size > opts.maxBytes) throw fail(`is larger than ${opts.maxBytes} bytes`);
    if (opts.secret) {
      const uid = myUid();
      if (uid !== undefined && st.uid !== uid) throw fail(`belongs to uid ${st.uid}, not to us (${uid})`);
      if ((st.mode & 0o077) !== 0) throw fail(`is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}
