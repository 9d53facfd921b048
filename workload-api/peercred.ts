import { closeSync, readFileSync, statSync, type BigIntStats } from 'node:fs';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import * as koffi from 'koffi';
import { AnchorageError } from '@anchorage/client/errors';
import type { ExecutableIdentity, PeerCredentials } from './WorkloadAttestor.js';

// Linux ABI constants (asm-generic/socket.h; identical on x86_64 and arm64).
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_DOMAIN = 39;
const SO_PEERPIDFD = 77;
const AF_UNIX = 1;
const POLLIN = 0x001;
const POLLNVAL = 0x020;

const { EINTR, ENOPROTOOPT } = osConstants.errno;

interface Libc {
  /** `int getsockopt(int, int, int, void *optval, socklen_t *optlen)`; both pointers are Buffers. */
  getsockopt: (fd: number, level: number, name: number, optval: Buffer, optlen: Buffer) => number;
  /** `int poll(struct pollfd *, nfds_t, int)`; the pollfd array is a Buffer. */
  poll: (fds: Buffer, nfds: number, timeoutMs: number) => number;
}

let libc: Libc | undefined;

/**
 * Loads libc and declares the functions once per process. Lazy so that merely
 * importing this module (e.g. for types, or on a platform without glibc) does
 * not fail; the first real use does, with a clear message. The declarations use
 * anonymous types only: koffi's type names are process-global and a test runner
 * that re-evaluates modules would otherwise hit "duplicate type" errors.
 */
function loadLibc(): Libc {
  if (libc !== undefined) return libc;
  try {
    const lib = koffi.load('libc.so.6');
    libc = {
      getsockopt: lib.func('getsockopt', 'int', ['int', 'int', 'int', 'void *', 'void *']) as Libc['getsockopt'],
      poll: lib.func('poll', 'int', ['void *', 'unsigned long', 'int']) as Libc['poll'],
    };
    return libc;
  } catch (err) {
    throw new AnchorageError('unavailable', `peercred: cannot load libc.so.6 through koffi: ${String(err)}`, { cause: err });
  }
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(osConstants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/**
 * Reads one integer-sized (or struct-sized) socket option. Returns the errno on
 * failure instead of throwing, because callers branch on it (ENOPROTOOPT means
 * "old kernel", not "broken").
 */
function getsockoptBuf(fd: number, name: number, size: number): { buf: Buffer; errno: 0 } | { buf?: undefined; errno: number } {
  const { getsockopt } = loadLibc();
  const buf = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size, 0);
  const rc = getsockopt(fd, SOL_SOCKET, name, buf, len);
  if (rc !== 0) return { errno: koffi.errno() };
  if (len.readUInt32LE(0) !== size) return { errno: -1 };
  return { buf, errno: 0 };
}

/**
 * The file descriptor behind a Node socket. Node keeps it on the libuv handle
 * and offers no public accessor; it is -1 (or absent) once the socket is closed
 * or when the socket is not backed by a kernel descriptor at all.
 */
function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new AnchorageError('invalid_argument', 'peercred: socket has no file descriptor (closed, or not an accepted unix-domain socket)');
  }
  return fd;
}

/**
 * The kernel's record of who connected to an accepted Unix-domain socket.
 *
 * uid/gid/pid come from `SO_PEERCRED`, captured by the kernel at connect()
 * time: the caller cannot forge them and later setuid() does not change them,
 * which is why they, not /proc, are the authority for `unix:uid`/`unix:gid`.
 * Where the kernel has `SO_PEERPIDFD` (Linux ≥ 6.5) the result also carries a
 * pidfd pinning that exact process; the caller owns it and must release it
 * with {@link closePidfd} once attestation is over.
 *
 * Throws `invalid_argument` when the socket is not an open Unix-domain socket,
 * `unavailable` when the kernel cannot tell who the peer is.
 */
export function peerCredentials(socket: Socket, opts: { procRoot?: string } = {}): PeerCredentials {
  const fd = socketFd(socket);

  // Checked first: SO_PEERCRED on a TCP socket "succeeds" with pid 0 and
  // uid/gid -1, which is worse than an error.
  const domain = getsockoptBuf(fd, SO_DOMAIN, 4);
  if (domain.buf === undefined) {
    throw new AnchorageError('invalid_argument', `peercred: fd ${fd} is not a socket (getsockopt SO_DOMAIN: ${errnoName(domain.errno)})`);
  }
  const family = domain.buf.readInt32LE(0);
  if (family !== AF_UNIX) {
    throw new AnchorageError('invalid_argument', `peercred: socket is not a unix-domain socket (address family ${family})`);
  }

  const cred = getsockoptBuf(fd, SO_PEERCRED, 12);
  if (cred.buf === undefined) {
    throw new AnchorageError('unavailable', `peercred: getsockopt SO_PEERCRED failed: ${errnoName(cred.errno)}`);
  }
  const pid = cred.buf.readInt32LE(0);
  const uid = cred.buf.readUInt32LE(4);
  const gid = cred.buf.readUInt32LE(8);
  if (pid <= 0) {
    // 0: the peer lives in a pid namespace we cannot see into, or the socket
    // was never connected by a process (e.g. a listening socket).
    throw new AnchorageError('unavailable', 'peercred: peer process is not visible from this pid namespace');
  }

  const pidfdRes = getsockoptBuf(fd, SO_PEERPIDFD, 4);
  let pidfd: number | undefined;
  if (pidfdRes.buf !== undefined) pidfd = pidfdRes.buf.readInt32LE(0);
  else if (pidfdRes.errno !== ENOPROTOOPT) throw new AnchorageError('unavailable', `peercred: getsockopt SO_PEERPIDFD failed: ${errnoName(pidfdRes.errno)}`);

  // What the process is running now, at accept, so that later calls on this
  // connection can tell whether it executed something else since (see
  // ExecutableIdentity). Start time first: if the pid is reused between the
  // two reads, the start time is the old process's and the attestor refuses.
  const procRoot = (opts.procRoot ?? '/proc').replace(/\/+$/, '');
  const startTime = readStartTime(procRoot, pid);
  const executable = readExecutable(procRoot, pid);
  const creds: PeerCredentials = { pid, uid, gid, executable };
  if (pidfd !== undefined) creds.pidfd = pidfd;
  if (startTime !== undefined) creds.startTime = startTime;
  return creds;
}

/** `dev:ino:size:mtime:ctime` of a stat: see {@link ExecutableIdentity.contentKey}. */
export function fileContentKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** The identity of the file a stat describes. */
export function executableIdentity(st: BigIntStats): ExecutableIdentity {
  return { dev: st.dev, ino: st.ino, birthtimeNs: st.birthtimeNs, contentKey: fileContentKey(st) };
}

/** Whether two identities name the same file (contents aside). */
export function sameExecutable(a: ExecutableIdentity, b: ExecutableIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.birthtimeNs === b.birthtimeNs;
}

/**
 * The file behind /proc/<pid>/exe, or null when it cannot be read (no
 * ptrace access, a zombie, the process gone). One stat() through the link,
 * synchronously: procfs answers from memory, in microseconds.
 */
export function readExecutable(procRoot: string, pid: number): ExecutableIdentity | null {
  try {
    return executableIdentity(statSync(`${procRoot}/${pid}/exe`, { bigint: true }));
  } catch {
    return null;
  }
}

/** Field 22 of /proc/<pid>/stat, or undefined when it cannot be read. */
function readStartTime(procRoot: string, pid: number): bigint | undefined {
  try {
    return parseStartTime(readFileSync(`${procRoot}/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Releases a pidfd from {@link peerCredentials}. Deliberately does not swallow
 * EBADF: a double close could close an unrelated descriptor that reused the
 * number, so that bug must surface.
 */
export function closePidfd(pidfd: number): void {
  closeSync(pidfd);
}

/**
 * Whether the process a pidfd pins has not exited yet. A pidfd becomes
 * readable when its process exits (zombie or reaped), and a pid cannot be
 * handed to another process while the old one still exists, so "alive" here
 * means "the pid still names the process that connected".
 *
 * Uses poll() with a zero timeout rather than `pidfd_send_signal(…, 0)`: the
 * signal probe succeeds on zombies and needs an arch-specific syscall number.
 */
export function pidfdAlive(pidfd: number): boolean {
  const { poll } = loadLibc();
  const fds = Buffer.alloc(8); // struct pollfd { int fd; short events; short revents; }
  for (;;) {
    fds.writeInt32LE(pidfd, 0);
    fds.writeInt16LE(POLLIN, 4);
    fds.writeInt16LE(0, 6);
    const rc = poll(fds, 1, 0);
    if (rc === 0) return true;
    if (rc > 0) {
      if (fds.readInt16LE(6) & POLLNVAL) {
        throw new AnchorageError('invalid_argument', `peercred: pidfd ${pidfd} is not an open descriptor`);
      }
      return false;
    }
    const errno = koffi.errno();
    if (errno !== EINTR) throw new AnchorageError('unavailable', `peercred: poll on pidfd failed: ${errnoName(errno)}`);
  }
}

/**
 * The pid a pidfd refers to, from /proc/self/fdinfo: -1 once the process has
 * been reaped, undefined when the descriptor is not a pidfd. Lets the attestor
 * check that a pid and a pidfd handed to it belong together.
 */
export function pidfdPid(pidfd: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/self/fdinfo/${pidfd}`, 'utf8');
  } catch (err) {
    throw new AnchorageError('invalid_argument', `peercred: pidfd ${pidfd} is not an open descriptor`, { cause: err });
  }
  const m = /^Pid:\s*(-?\d+)\s*$/m.exec(text);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Field 22 (`starttime`, clock ticks after boot) of /proc/<pid>/stat. The
 * command name (field 2) is in parentheses and may itself contain spaces and
 * `)`, so fields are counted from the last `)`.
 */
export function parseStartTime(stat: string): bigint {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error('malformed stat: no comm field');
  const fields = stat.slice(close + 1).trim().split(/\s+/);
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const value = fields[19];
  if (value === undefined || !/^\d+$/.test(value)) throw new Error('malformed stat: no starttime field');
  return BigInt(value);
}
