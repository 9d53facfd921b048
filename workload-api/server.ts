import { chmodSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { AnchorageError, errorMessage, isAnchorageError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { closePidfd, peerCredentials } from '../node-agent/attestor/peercred.js';
import type { PeerCredentials, WorkloadAttestor } from '../node-agent/attestor/WorkloadAttestor.js';
import { loadWorkloadProto, PROTO_LOADER_OPTIONS, protoRoot } from '../proto/load.js';
import { EMPTY_SETTINGS, goawayFrame, Http2ErrorCode } from './grpc-java/frames.js';
import { refuseConnection, routeConnection } from './grpc-java/route.js';
import { SocketHop } from './grpc-java/hop.js';
import { WorkloadApiHandler, type Caller, type IncomingCall } from './handlers.js';
import type { IdentitySource } from './IdentitySource.js';

/** Options of {@link startWorkloadApi}. */
export interface WorkloadApiOptions {
  /** Absolute path of the Unix socket to create. */
  socketPath: string;
  source: IdentitySource;
  attestor: WorkloadAttestor;
  logger: Logger;
  /**
   * Permission bits of the socket. Default 0o777: any local process may
   * connect, and attestation decides what it gets — a process without a
   * matching entry gets PERMISSION_DENIED, never someone else's identity.
   */
  socketMode?: number;
  /** How long close() lets in-flight calls finish before cutting connections. Default 1 s. */
  shutdownGraceMs?: number;
  /**
   * Most connections open at once, whoever holds them. Each costs 2 file
   * descriptors (socket + pidfd), 4 while served through the `:authority`
   * rewriter. Default {@link DEFAULT_MAX_CONNECTIONS}, lowered to what the
   * process's open-files limit can hold (4 per connection, 512 spare).
   */
  maxConnections?: number;
  /**
   * Most connections one uid (per SO_PEERCRED) may hold at once, so that one
   * uid opening connections cannot take every slot and starve the others.
   * Default {@link DEFAULT_MAX_CONNECTIONS_PER_UID}, at most maxConnections.
   */
  maxConnectionsPerUid?: number;
  /** How long a connection may take to send the HTTP/2 preface. Default 10 s (grpc-java/route.ts). */
  handshakeTimeoutMs?: number;
}

/** Default of {@link WorkloadApiOptions.maxConnections}: 8,192 to 16,384 descriptors, far below Node's usual limit. */
export const DEFAULT_MAX_CONNECTIONS = 4096;
/**
 * Default of {@link WorkloadApiOptions.maxConnectionsPerUid}. A workload
 * holds one connection per gRPC channel, usually one; 1,024 leaves room for
 * many processes sharing a uid (containers all running as root, a test
 * driver holding 1,000 streams), while one uid can take at most a quarter of
 * the global cap.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_UID = 1024;
/** Descriptors one connection may cost at most (socket, pidfd, the hop pair on the slow path). */
const FDS_PER_CONNECTION = 4;
/** Descriptors kept for everything else (the server connection, files read while attesting, libuv). */
const SPARE_FDS = 512;
/** Refusals of one kind are logged at most once per this interval, with a count of those not logged. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** A running Workload API. */
export interface WorkloadApi {
  /** Stops accepting, ends open streams with UNAVAILABLE, closes every connection and removes the socket. */
  close(): Promise<void>;
  /** Streams currently open, for tests and metrics. */
  readonly openStreams: number;
  /** Connections currently open, for tests and metrics. */
  readonly openConnections: number;
}

/** What the kernel told us about one accepted connection. */
interface Connection {
  socket: Socket;
  creds?: PeerCredentials;
  /** Why the credentials could not be read; every call on this connection gets UNAVAILABLE. */
  error?: AnchorageError;
  /** Attestations running on this connection; the pidfd stays open until they are done. */
  inflight: number;
  closed: boolean;
  pidfdClosed: boolean;
}

/** Prefix of the synthetic `remoteAddress` that ties a gRPC call back to its connection. */
const PEER_PREFIX = 'anchorage-peer-';

/**
 * Logs repeated refusals without letting a flood of them flood the log: the
 * first of a kind (key) is logged, later ones within the interval are only
 * counted, and the next one logged after it carries that count. O(1) per
 * event, no timers; the key map is reset if it ever grows large.
 */
class RefusalLog {
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  note(key: string, fields: Record<string, unknown>, reason: string): void {
    const now = Date.now();
    const e = this.#last.get(key);
    if (e !== undefined && now - e.at < this.intervalMs) {
      e.suppressed++;
      return;
    }
    if (this.#last.size >= 1024) this.#last.clear();
    this.#last.set(key, { at: now, suppressed: 0 });
    this.log.warn({ ...fields, reason, suppressed: e?.suppressed ?? 0 }, 'workloadapi: connection refused');
  }
}

/** The soft RLIMIT_NOFILE of this process, from /proc/self/limits; undefined if unknown or unlimited. */
function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new AnchorageError('invalid_argument', `workloadapi: ${name} must be a positive integer, not ${v}`);
  return v;
}

/**
 * The socket's directory and every directory above it must be ours (or
 * root's) and writable by nobody else, unless sticky like /tmp: whoever can
 * rename an entry on the way can swap the socket for their own and hand
 * workloads identities and bundles of their choosing.
 */
function checkSocketDir(dir: string): void {
  const uid = process.geteuid?.() ?? 0;
  for (let d = dir; ; d = dirname(d)) {
    const st = lstatSync(d);
    if (!st.isDirectory()) throw new AnchorageError('failed_precondition', `workloadapi: ${d} is not a directory`);
    if (st.uid !== uid && st.uid !== 0) {
      throw new AnchorageError('failed_precondition', `workloadapi: ${d} belongs to uid ${st.uid}, not to this process (uid ${uid}) or root; choose another socket_path`);
    }
    const sticky = (st.mode & 0o1000) !== 0;
    if ((st.mode & 0o022) !== 0 && !(sticky && d !== dir)) {
      throw new AnchorageError(
        'failed_precondition',
        `workloadapi: ${d} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}); make it 0755 or choose another socket_path`,
      );
    }
    if (d === dirname(d)) return;
  }
}

/**
 * Makes sure `path` can be bound: its directory exists, and whatever is at
 * the path is a stale socket (removed) or nothing. A regular file there is
 * refused, not deleted — it is more likely a misconfiguration than ours.
 * A socket someone still listens on is refused too: two agents on one socket
 * would hand out identities from two caches.
 */
async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  checkSocketDir(dir);
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new AnchorageError('unavailable', `workloadapi: cannot inspect ${path}: ${errorMessage(err)}`, { cause: err });
  }
  if (!st.isSocket()) {
    throw new AnchorageError('failed_precondition', `workloadapi: ${path} exists and is not a socket; refusing to replace it`);
  }
  const live = await new Promise<boolean>((resolve, reject) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(false);
      else reject(new AnchorageError('unavailable', `workloadapi: cannot probe ${path}: ${err.message}`, { cause: err }));
    });
  });
  if (live) throw new AnchorageError('failed_precondition', `workloadapi: another server is listening on ${path}`);
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Binds the listening socket with its final permissions from the start. The
 * umask is narrowed around the (synchronous) bind so that no connection can
 * slip in under wider permissions before chmod; where the umask cannot be
 * changed (worker threads) chmod alone has to do.
 */
const LISTEN_BACKLOG = 4096;

async function listen(server: NetServer, path: string, mode: number): Promise<void> {
  let previous: number | undefined;
  try {
    previous = process.umask(~mode & 0o777);
  } catch {
    previous = undefined;
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // A deep accept queue: after an agent restart every workload on the node
      // reconnects at once, and a full queue fails connect() with EAGAIN.
      // The kernel caps it at net.core.somaxconn.
      server.listen({ path, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', reject);
        resolve();
      });
      if (previous !== undefined) {
        process.umask(previous);
        previous = undefined;
      }
    });
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
  chmodSync(path, mode);
}

/** The package definition of workload.proto, for reflection (the typed loader keeps only the grpc object). */
function workloadPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(join(protoRoot(), 'spiffe/workload.proto'), PROTO_LOADER_OPTIONS);
}

/** The indexes @grpc/reflection keeps per protocol version (private fields, checked before use). */
interface ReflectionIndex {
  services: Record<string, unknown>;
  symbols: Record<string, unknown>;
}

function isReflectionIndex(v: unknown): v is ReflectionIndex {
  const o = v as Partial<ReflectionIndex> | undefined;
  return typeof o?.services === 'object' && o.services !== null && typeof o.symbols === 'object' && o.symbols !== null;
}

/**
 * @grpc/reflection 1.0 indexes symbols of a file without a `package` line
 * under a leading dot (`.SpiffeWorkloadAPI`), so it lists a service name no
 * client can call and cannot find `SpiffeWorkloadAPI` by its real name
 * (related: grpc-node#2934). The Workload API has no package by spec, so the
 * names are fixed here; the dotted symbols stay as aliases. If a later
 * version changes its internals, reflection keeps its upstream behaviour and
 * we only warn.
 */
function fixUnscopedReflectionNames(reflection: ReflectionService, log: Logger): void {
  const impls = reflection as unknown as Record<string, unknown>;
  for (const version of ['v1', 'v1Alpha']) {
    const index = impls[version];
    if (!isReflectionIndex(index)) {
      log.warn({ version }, 'workloadapi: unexpected @grpc/reflection internals; reflection may list ".SpiffeWorkloadAPI"');
      continue;
    }
    for (const [name, service] of Object.entries(index.services)) {
      if (!name.startsWith('.')) continue;
      delete index.services[name];
      index.services[name.slice(1)] = service;
    }
    for (const [name, file] of Object.entries(index.symbols)) {
      if (name.startsWith('.') && !(name.slice(1) in index.symbols)) index.symbols[name.slice(1)] = file;
    }
  }
}

/**
 * Serves the SPIFFE Workload API on a Unix socket.
 *
 * We accept connections ourselves (a plain net.Server) instead of letting
 * grpc-js bind, because the peer's credentials must be read from the
 * accepted socket before anything else happens — grpc-js does not expose the
 * socket to handlers. Each socket gets a unique synthetic `remoteAddress`,
 * which grpc-js reports as the call's peer, so a handler can find the
 * credentials of the connection its call arrived on. The kernel captured
 * those credentials at connect(); the client cannot influence the lookup.
 */
export async function startWorkloadApi(opts: WorkloadApiOptions): Promise<WorkloadApi> {
  const { socketPath, source, attestor, logger } = opts;
  const mode = opts.socketMode ?? 0o777;
  const graceMs = opts.shutdownGraceMs ?? 1000;
  // Unset caps follow the descriptors this process may open, so that the
  // caps bind before the fd table runs out whatever the environment.
  const nofile = openFilesLimit();
  const fdBudget = nofile === undefined ? Infinity : Math.max(1, Math.floor((nofile - SPARE_FDS) / FDS_PER_CONNECTION));
  const maxConnections = positiveInt('maxConnections', opts.maxConnections ?? Math.min(DEFAULT_MAX_CONNECTIONS, fdBudget));
  const maxPerUid = positiveInt('maxConnectionsPerUid', opts.maxConnectionsPerUid ?? Math.min(DEFAULT_MAX_CONNECTIONS_PER_UID, maxConnections));
  const log = logger.child({ component: 'workloadapi' });
  const refusals = new RefusalLog(log, REFUSAL_LOG_INTERVAL_MS);

  const connections = new Map<string, Connection>();
  /** Open connections per uid; -1 for connections whose credentials could not be read. */
  const perUid = new Map<number, number>();
  let nextId = 0;

  const release = (conn: Connection): void => {
    // Closing the pidfd while an attestation still uses it would let the
    // descriptor number be reused under the attestor's feet.
    if (conn.closed && conn.inflight === 0 && !conn.pidfdClosed && conn.creds?.pidfd !== undefined) {
      const fd = conn.creds.pidfd;
      conn.pidfdClosed = true;
      try {
        closePidfd(fd);
      } catch (err) {
        log.error({ err: errorMessage(err) }, 'workloadapi: closing a pidfd failed');
      }
    }
  };

  const attest = async (call: IncomingCall): Promise<Caller> => {
    const conn = connections.get(call.getPeer());
    if (conn === undefined) throw new AnchorageError('unavailable', 'workloadapi: the connection of this call is unknown');
    if (conn.error !== undefined) throw conn.error;
    const creds = conn.creds!;
    conn.inflight++;
    try {
      const selectors = await attestor.attest(creds);
      return { pid: creds.pid, uid: creds.uid, selectors };
    } catch (err) {
      if (isAnchorageError(err, 'unavailable')) throw err;
      // Whatever went wrong, the caller could not be attested *now*; only
      // UNAVAILABLE makes clients try again rather than give up.
      throw new AnchorageError('unavailable', `workloadapi: attestation failed: ${errorMessage(err)}`, { cause: err });
    } finally {
      conn.inflight--;
      release(conn);
    }
  };

  const confirm = (call: IncomingCall): void => {
    const conn = connections.get(call.getPeer());
    if (conn === undefined) throw new AnchorageError('unavailable', 'workloadapi: the connection of this call is unknown');
    if (conn.error !== undefined) throw conn.error;
    try {
      attestor.confirm?.(conn.creds!);
    } catch (err) {
      if (isAnchorageError(err, 'unavailable') || isAnchorageError(err, 'permission_denied')) throw err;
      throw new AnchorageError('unavailable', `workloadapi: attestation failed: ${errorMessage(err)}`, { cause: err });
    }
  };

  const handler = new WorkloadApiHandler({ source, attest, confirm, logger: log });
  // No channelz: its per-connection and per-call trace bookkeeping showed up
  // in profiles of the first response, and nothing here reads it.
  const grpcServer = new grpc.Server({ 'grpc.enable_channelz': 0 });
  grpcServer.addService(loadWorkloadProto().SpiffeWorkloadAPI.service, handler.implementation());
  const reflection = new ReflectionService(workloadPackageDefinition());
  fixUnscopedReflectionNames(reflection, log);
  reflection.addToServer(grpcServer);
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const hop = await SocketHop.open();
  let closing: Promise<void> | undefined;

  /** Closes a connection at accept: SETTINGS + GOAWAY saying why, written at once, then the socket. */
  const refuseAtAccept = (socket: Socket, reason: string): void => {
    refuseConnection(socket, Buffer.concat([EMPTY_SETTINGS, goawayFrame(Http2ErrorCode.ENHANCE_YOUR_CALM, `workloadapi: ${reason}`)]));
  };

  const netServer = createServer((socket) => {
    // The caps are checked before anything else is spent on the connection:
    // the global one before even reading its credentials.
    if (connections.size >= maxConnections) {
      const reason = `too many connections (max_connections ${maxConnections})`;
      refusals.note('global', {}, reason);
      return refuseAtAccept(socket, reason);
    }
    const id = `${PEER_PREFIX}${++nextId}`;
    const conn: Connection = { socket, inflight: 0, closed: false, pidfdClosed: false };
    try {
      conn.creds = peerCredentials(socket);
    } catch (err) {
      conn.error = isAnchorageError(err, 'unavailable')
        ? err
        : new AnchorageError('unavailable', `workloadapi: cannot read the peer's credentials: ${errorMessage(err)}`, { cause: err });
      log.warn({ err: errorMessage(err) }, 'workloadapi: peer credentials unavailable');
    }
    const uid = conn.creds?.uid ?? -1;
    const held = perUid.get(uid) ?? 0;
    if (held >= maxPerUid) {
      // peerCredentials opened the pidfd with the uid (one getsockopt each);
      // it is closed again in the same tick, so refused connections never
      // hold a descriptor.
      if (conn.creds?.pidfd !== undefined) {
        try {
          closePidfd(conn.creds.pidfd);
        } catch (err) {
          log.error({ err: errorMessage(err) }, 'workloadapi: closing a pidfd failed');
        }
      }
      const reason = `too many connections from uid ${uid} (max_connections_per_uid ${maxPerUid})`;
      refusals.note(`uid:${uid}`, { uid }, reason);
      return refuseAtAccept(socket, reason);
    }
    perUid.set(uid, held + 1);
    Object.defineProperty(socket, 'remoteAddress', { value: id, enumerable: true });
    connections.set(id, conn);
    socket.once('close', () => {
      connections.delete(id);
      const n = (perUid.get(uid) ?? 1) - 1;
      if (n > 0) perUid.set(uid, n);
      else perUid.delete(uid);
      conn.closed = true;
      release(conn);
    });
    // Clients that send the socket path as :authority (grpc-java) go through
    // a rewriting stream; every other one gets the raw socket (grpc-java/route.ts).
    routeConnection(socket, {
      inject: (stream, rewritten) => {
        if (closing !== undefined) return void stream.destroy();
        if (!rewritten) return injector.injectConnection(stream);
        // grpc-js names the peer by the session socket's address: give the rewritten bytes a real socket (grpc-java/hop.ts).
        hop.carry(stream, (serverEnd) => {
          if (closing !== undefined) return void serverEnd.destroy();
          Object.defineProperty(serverEnd, 'remoteAddress', { value: id, enumerable: true });
          injector.injectConnection(serverEnd);
        });
      },
      onSlowPath: (reason) => log.debug({ peer: id, reason }, 'workloadapi: connection served through the :authority rewriter'),
      // Per uid, like the caps: one uid's garbage cannot hide another's in the log.
      onRefused: (reason) => refusals.note(`proto:${uid}`, { peer: id, uid, pid: conn.creds?.pid }, reason),
      handshakeTimeoutMs: opts.handshakeTimeoutMs,
    });
  });

  try {
    await prepareSocketPath(socketPath);
    await listen(netServer, socketPath, mode);
  } catch (err) {
    await hop.close();
    throw err;
  }
  const ino = lstatSync(socketPath).ino;
  log.info({ socketPath, mode: mode.toString(8), maxConnections, maxConnectionsPerUid: maxPerUid }, 'workloadapi: listening');
  if (nofile !== undefined && maxConnections > fdBudget) {
    log.warn(
      { maxConnections, openFilesLimit: nofile },
      `workloadapi: max_connections ${maxConnections} may need up to ${maxConnections * FDS_PER_CONNECTION} file descriptors, and this process may open ${nofile} (${SPARE_FDS} kept for the rest); raise the limit (LimitNOFILE=) or lower max_connections`,
    );
  }

  const close = (): Promise<void> => {
    closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => netServer.close(() => resolve()));
      handler.endAllStreams();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          grpcServer.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        grpcServer.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      injector.destroy();
      for (const conn of connections.values()) conn.socket.destroy();
      await hop.close();
      await stopped;
      // Only our own socket: a successor may already have bound the path.
      try {
        if (lstatSync(socketPath).ino === ino) unlinkSync(socketPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err: errorMessage(err) }, 'workloadapi: cannot remove the socket');
      }
      log.info({ socketPath }, 'workloadapi: closed');
    })();
    return closing;
  };

  return {
    close,
    get openStreams() {
      return handler.openStreams;
    },
    get openConnections() {
      return connections.size;
    },
  };
}
