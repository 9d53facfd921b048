import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Selector } from '../../common/selector.js';
import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { executableIdentity, fileContentKey, pidfdAlive, pidfdPid, sameExecutable } from '../../workload-api/peercred.js';
import { IdNameFile, parseStartTime, parseStatusGroups } from './proc.js';
import type { ExecutableIdentity, PeerCredentials, WorkloadAttestor } from '../../workload-api/WorkloadAttestor.js';

/** Configuration of {@link UnixWorkloadAttestor}. */
export interface UnixWorkloadAttestorOptions {
  /** Where procfs is mounted. Default `/proc`; tests point it at a fake tree. */
  procRoot?: string;
  /**
   * Executables larger than this get no `unix:sha256` selector (and one
   * warning per binary), so one huge binary cannot stall attestation.
   * Default 64 MiB.
   */
  maxHashBytes?: number;
  /** Produce `unix:sha256`. Default true. */
  hashBinary?: boolean;
  logger: Logger;
  /** User database for `unix:user`. Default `/etc/passwd` (files only, no NSS). */
  passwdPath?: string;
  /** Group database for `unix:group` and `unix:supplementary_group`. Default `/etc/group`. */
  groupPath?: string;
  /** How long a parsed passwd/group file is trusted before it is stat()ed again. Default 30 s. */
  nameCacheTtlMs?: number;
}

const DEFAULT_MAX_HASH_BYTES = 64 * 1024 * 1024;
const DEFAULT_NAME_TTL_MS = 30_000;
/** Distinct binaries whose hash is remembered; far more than a node runs. */
const HASH_CACHE_ENTRIES = 1024;
const READ_CHUNK = 1024 * 1024;
const DELETED_SUFFIX = ' (deleted)';
/** Linux O_PATH (not in every Node's fs.constants): a handle on the file itself, no read access needed. */
const O_PATH = (fsConstants as Record<string, number | undefined>).O_PATH ?? 0o10000000;

/** Confirms, after selectors were gathered, that the pid still names the caller. */
type Confirm = () => Promise<void>;

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function exitedDuring(pid: number): AnchorageError {
  return new AnchorageError('unavailable', `attestor: the calling process exited during attestation (pid ${pid})`);
}

/**
 * The refusal for a caller whose executable is not the one it connected
 * with. PERMISSION_DENIED, the Workload API's "no identity for you": the
 * connection will never again carry an identity, so UNAVAILABLE (retry)
 * would be a lie; a fresh connection is attested afresh.
 */
export function execAfterConnect(pid: number): AnchorageError {
  return new AnchorageError('permission_denied', `attestor: the calling process (pid ${pid}) executed another binary after connecting; reconnect`);
}

function exitedBefore(pid: number, cause?: unknown): AnchorageError {
  return new AnchorageError('unavailable', `attestor: the calling process (pid ${pid}) has exited`, cause === undefined ? undefined : { cause });
}

/**
 * Attests a local caller from the kernel's view of it, with SPIRE's `unix`
 * selector names so existing registration entries carry over:
 * `uid`, `user`, `gid`, `group`, `supplementary_gid`, `supplementary_group`,
 * `path`, `sha256`.
 *
 * uid/gid are taken from the peer credentials (SO_PEERCRED), never from /proc:
 * the kernel captured them at connect() time and the caller cannot change
 * them. /proc supplies what the socket cannot (groups, executable), and since
 * a pid can be reused once its process exits, every answer is re-validated
 * against the pinned process (pidfd, or start time where the kernel has no
 * SO_PEERPIDFD) before it is returned.
 */
export class UnixWorkloadAttestor implements WorkloadAttestor {
  readonly name = 'unix';

  readonly #procRoot: string;
  readonly #maxHashBytes: number;
  readonly #hashBinary: boolean;
  readonly #logger: Logger;
  readonly #users: IdNameFile;
  readonly #groups: IdNameFile;
  /** Content key (dev, inode, size, mtime, ctime: see fileContentKey) → hex sha256, or null for "too large". ctime is in the key because mtime can be set back with utimes() after an edit; ctime cannot. */
  readonly #hashes = new Map<string, string | null>();
  /** Hashes being computed, so a burst of callers from one binary hashes it once. */
  readonly #hashing = new Map<string, Promise<string | null>>();

  constructor(opts: UnixWorkloadAttestorOptions) {
    this.#procRoot = (opts.procRoot ?? '/proc').replace(/\/+$/, '');
    this.#maxHashBytes = opts.maxHashBytes ?? DEFAULT_MAX_HASH_BYTES;
    if (!Number.isSafeInteger(this.#maxHashBytes) || this.#maxHashBytes < 0) {
      throw new AnchorageError('invalid_argument', 'attestor: maxHashBytes must be a non-negative integer');
    }
    this.#hashBinary = opts.hashBinary ?? true;
    this.#logger = opts.logger;
    const ttl = opts.nameCacheTtlMs ?? DEFAULT_NAME_TTL_MS;
    this.#users = new IdNameFile(opts.passwdPath ?? '/etc/passwd', ttl);
    this.#groups = new IdNameFile(opts.groupPath ?? '/etc/group', ttl);
  }

  async attest(peer: PeerCredentials): Promise<Selector[]> {
    checkPeer(peer);
    const confirm = await this.#pin(peer);

    const [status, exe] = await Promise.all([this.#readProc(peer.pid, 'status'), this.#executable(peer.pid, peer.executable)]);
    let supplementary: number[];
    try {
      supplementary = parseStatusGroups(status);
    } catch (err) {
      throw new AnchorageError('unavailable', `attestor: cannot parse ${this.#procRoot}/${peer.pid}/status: ${String(err)}`, { cause: err });
    }

    const [user, group, suppNames] = await Promise.all([
      this.#users.lookup(peer.uid),
      this.#groups.lookup(peer.gid),
      Promise.all(supplementary.map((g) => this.#groups.lookup(g))),
    ]);

    const values: string[] = [`uid:${peer.uid}`];
    if (user !== undefined) values.push(`user:${user}`);
    values.push(`gid:${peer.gid}`);
    if (group !== undefined) values.push(`group:${group}`);
    supplementary.forEach((g, i) => {
      values.push(`supplementary_gid:${g}`);
      const n = suppNames[i];
      if (n !== undefined) values.push(`supplementary_group:${n}`);
    });
    if (exe.path !== undefined) values.push(`path:${exe.path}`);
    if (exe.sha256 !== undefined) values.push(`sha256:${exe.sha256}`);

    await confirm();
    return values.map((value) => ({ type: 'unix', value }));
  }

  confirm(peer: PeerCredentials): void {
    checkPeer(peer);
    const { pid, pidfd } = peer;
    const alive = (): boolean => {
      if (pidfd !== undefined) return pidfdAlive(pidfd);
      if (peer.startTime === undefined) return true;
      try {
        return parseStartTime(readFileSync(`${this.#procRoot}/${pid}/stat`, 'utf8')) === peer.startTime;
      } catch {
        return false;
      }
    };
    if (!alive()) throw exitedBefore(pid);
    // null: unreadable at connect, so nothing about the binary was vouched for; undefined: credentials made by hand.
    if (!peer.executable) return;
    let st: BigIntStats;
    try {
      st = statSync(`${this.#procRoot}/${pid}/exe`, { bigint: true });
    } catch (err) {
      const code = errCode(err);
      // Readable at connect but not now: it is not the process it was.
      if (code === 'EACCES' || code === 'EPERM') throw execAfterConnect(pid);
      throw exitedBefore(pid, err);
    }
    // The pid still names the pinned process after the stat: the file seen was its own.
    if (!alive()) throw exitedBefore(pid);
    if (!sameExecutable(executableIdentity(st), peer.executable)) throw execAfterConnect(pid);
  }

  /**
   * Takes a fix on the process before anything is read from /proc. With a
   * pidfd, the pidfd itself is the fix (checked to belong to this pid); without
   * one, the start time is: a reused pid belongs to a process that started later.
   */
  async #pin(peer: PeerCredentials): Promise<Confirm> {
    const { pid, pidfd } = peer;
    if (pidfd !== undefined) {
      const pinned = pidfdPid(pidfd);
      if (pinned === undefined) throw new AnchorageError('invalid_argument', `attestor: fd ${pidfd} is not a pidfd`);
      if (pinned === -1 || !pidfdAlive(pidfd)) throw exitedBefore(pid);
      if (pinned !== pid) throw new AnchorageError('unavailable', `attestor: pidfd refers to pid ${pinned}, not the caller's pid ${pid}`);
      return async () => {
        if (!pidfdAlive(pidfd)) throw exitedDuring(pid);
      };
    }
    const before = await this.#startTime(pid);
    // The start time seen at accept pins the process for the whole connection,
    // not only for this attestation.
    if (peer.startTime !== undefined && peer.startTime !== before) throw exitedBefore(pid);
    return async () => {
      let after: bigint;
      try {
        after = await this.#startTime(pid);
      } catch (err) {
        throw new AnchorageError('unavailable', exitedDuring(pid).message, { cause: err });
      }
      if (after !== before) throw exitedDuring(pid);
    };
  }

  async #startTime(pid: number): Promise<bigint> {
    const text = await this.#readProc(pid, 'stat');
    try {
      return parseStartTime(text);
    } catch (err) {
      throw new AnchorageError('unavailable', `attestor: cannot parse ${this.#procRoot}/${pid}/stat: ${String(err)}`, { cause: err });
    }
  }

  /**
   * procfs files are generated by the kernel in memory and never wait on a
   * disk, so they are read synchronously: a thread-pool round trip per file
   * cost more than the read and put a tail on attestation (p99 8 ms → see
   * bench workload).
   */
  async #readProc(pid: number, file: string): Promise<string> {
    try {
      return readFileSync(`${this.#procRoot}/${pid}/${file}`, 'utf8');
    } catch (err) {
      throw await this.#procError(pid, file, err);
    }
  }

  /** Tells "the process is gone" apart from "procfs is missing or forbidden". */
  async #procError(pid: number, file: string, err: unknown): Promise<AnchorageError> {
    const code = errCode(err);
    if (code === 'ENOENT' || code === 'ESRCH') {
      try {
        await stat(this.#procRoot);
      } catch (rootErr) {
        return new AnchorageError('unavailable', `attestor: ${this.#procRoot} is not readable (${errCode(rootErr) ?? String(rootErr)}); is procfs mounted?`, { cause: rootErr });
      }
      return exitedBefore(pid, err);
    }
    return new AnchorageError('unavailable', `attestor: cannot read ${this.#procRoot}/${pid}/${file}: ${code ?? String(err)}`, { cause: err });
  }

  /**
   * `path` and `sha256` of the caller's executable, both through
   * /proc/<pid>/exe: it names the file the kernel mapped, even if it was since
   * deleted, renamed, or lives in another mount namespace. Without ptrace
   * access to the caller (agent not root) the link is unreadable; the
   * selectors are then omitted with a warning, since an omitted selector can
   * only narrow what the caller gets.
   *
   * `atConnect` is the file the caller ran when its connection was accepted:
   * if it now runs another one, the call is refused ({@link execAfterConnect});
   * if nothing could be read then, nothing is vouched for now.
   */
  async #executable(pid: number, atConnect: ExecutableIdentity | null | undefined): Promise<{ path?: string; sha256?: string }> {
    const link = `${this.#procRoot}/${pid}/exe`;
    if (atConnect === null) {
      this.#logger.warn({ pid }, 'attestor: the caller\'s executable was unreadable when it connected; no unix:path or unix:sha256 selector');
      return {};
    }
    // One open of the link, then fstat and the name of that open file: the
    // identity checked and the path reported are of the same file, even if
    // the caller executes something else in between (separate stat and
    // readlink calls could each see a different binary).
    let fd: number;
    try {
      fd = openSync(link, O_PATH); // procfs: see #readProc
    } catch (err) {
      const code = errCode(err);
      if (code === 'EACCES' || code === 'EPERM') {
        this.#logger.warn({ pid, code }, 'attestor: cannot read the caller\'s executable; no unix:path or unix:sha256 selector');
        return {};
      }
      // ENOENT while the pid still exists means a zombie: it has exited.
      throw await this.#procError(pid, 'exe', err);
    }
    let st: BigIntStats;
    let path: string;
    try {
      st = fstatSync(fd, { bigint: true });
      path = readlinkSync(`/proc/self/fd/${fd}`);
    } catch (err) {
      throw new AnchorageError('unavailable', `attestor: cannot inspect the executable of pid ${pid}: ${errCode(err) ?? String(err)}`, { cause: err });
    } finally {
      closeSync(fd);
    }
    if (atConnect !== undefined && !sameExecutable(executableIdentity(st), atConnect)) throw execAfterConnect(pid);
    if (path.endsWith(DELETED_SUFFIX)) path = path.slice(0, -DELETED_SUFFIX.length);
    if (!this.#hashBinary) return { path };
    if (atConnect !== undefined && fileContentKey(st) !== atConnect.contentKey) {
      this.#logger.warn({ pid, path }, 'attestor: the caller\'s executable was modified or relinked since it connected; no unix:sha256 selector');
      return { path };
    }
    const sha256 = await this.#hashExecutable(pid, link, path, fileContentKey(st), atConnect);
    return sha256 === undefined ? { path } : { path, sha256 };
  }

  /**
   * sha256 of the file whose content key is `key` (checked by the caller),
   * from the cache or by reading it through the link. The file opened is
   * checked again: the link may have moved on since.
   */
  async #hashExecutable(pid: number, link: string, path: string, key: string, atConnect: ExecutableIdentity | undefined): Promise<string | undefined> {
    // Fast path: the cache answers without opening the file (open + fstat +
    // close is three thread-pool round trips).
    const hit = this.#cached(key);
    if (hit !== undefined) return hit ?? undefined;
    let fh: FileHandle;
    try {
      fh = await open(link, 'r');
    } catch (err) {
      const code = errCode(err);
      if (code === 'EACCES' || code === 'EPERM') {
        this.#logger.warn({ pid, path, code }, 'attestor: cannot open the caller\'s executable; no unix:sha256 selector');
        return undefined;
      }
      throw await this.#procError(pid, 'exe', err);
    }
    try {
      // The key comes from the open file, so the hash cached under it is of these very bytes.
      const st = await fh.stat({ bigint: true });
      if (atConnect !== undefined && !sameExecutable(executableIdentity(st), atConnect)) throw execAfterConnect(pid);
      if (fileContentKey(st) !== key) {
        // Written, relinked, or (without a record from connect) another file
        // than the one whose path we report: no hash rather than a wrong one.
        this.#logger.warn({ pid, path }, 'attestor: the caller\'s executable changed during attestation; no unix:sha256 selector');
        return undefined;
      }
      const cached = this.#cached(key);
      if (cached !== undefined) return cached ?? undefined;
      let pending = this.#hashing.get(key);
      if (pending === undefined) {
        pending = this.#digest(fh, st.size, pid, path).then((hex) => {
          this.#remember(key, hex);
          return hex;
        });
        const settle = (): void => {
          this.#hashing.delete(key);
        };
        pending.then(settle, settle);
        this.#hashing.set(key, pending);
      }
      return (await pending) ?? undefined;
    } catch (err) {
      if (err instanceof AnchorageError) throw err;
      throw new AnchorageError('unavailable', `attestor: cannot hash the executable of pid ${pid} (${path}): ${errCode(err) ?? String(err)}`, { cause: err });
    } finally {
      await fh.close();
    }
  }

  /** Streams the file through sha256, giving up (null) past maxHashBytes. */
  async #digest(fh: FileHandle, size: bigint, pid: number, path: string): Promise<string | null> {
    const tooLarge = (): null => {
      this.#logger.warn(
        { pid, path, size: Number(size), maxHashBytes: this.#maxHashBytes },
        'attestor: executable is larger than maxHashBytes; no unix:sha256 selector',
      );
      return null;
    };
    if (size > BigInt(this.#maxHashBytes)) return tooLarge();
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, this.#maxHashBytes + 1)));
    let total = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, total);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > this.#maxHashBytes) return tooLarge(); // grew while we read
      hash.update(buf.subarray(0, bytesRead));
    }
    return hash.digest('hex');
  }

  /** A cached digest (null: known to be too large), refreshed as recently used. */
  #cached(key: string): string | null | undefined {
    const hit = this.#hashes.get(key);
    if (hit !== undefined) {
      this.#hashes.delete(key);
      this.#hashes.set(key, hit);
    }
    return hit;
  }

  #remember(key: string, hex: string | null): void {
    if (this.#hashes.size >= HASH_CACHE_ENTRIES) {
      const oldest = this.#hashes.keys().next();
      if (oldest.done !== true) this.#hashes.delete(oldest.value);
    }
    this.#hashes.set(key, hex);
  }
}

function checkPeer(peer: PeerCredentials): void {
  const id = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
  if (!id(peer.pid) || peer.pid === 0 || !id(peer.uid) || !id(peer.gid)) {
    throw new AnchorageError('invalid_argument', 'attestor: peer credentials need a positive pid and non-negative uid/gid');
  }
  if (peer.pidfd !== undefined && !(Number.isInteger(peer.pidfd) && peer.pidfd >= 0)) {
    throw new AnchorageError('invalid_argument', 'attestor: pidfd must be a non-negative integer');
  }
}
