import { lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { AnchorageError, errorMessage, isAnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../common/log.js';
import { closePidfd, peerCredentials } from './peercred.js';
import type { PeerCredentials, WorkloadAttestor } from './WorkloadAttestor.js';
import { loadWorkloadProto, workloadPackageDefinition } from '@anchorage/client/proto';
import {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_UID,
  FDS_PER_CONNECTION,
  openFilesLimit,
  positiveInt,
  REFUSAL_LOG_INTERVAL_MS,
  RefusalLog,
  SPARE_FDS,
} from './connection-limits.js';
import { EMPTY_SETTINGS, goawayFrame, Http2ErrorCode } from './grpc-java/frames.js';
import { refuseConnection, routeConnection } from './grpc-java/route.js';
import { SocketHop } from './grpc-java/hop.js';
import { WorkloadApiHandler, type Caller, type IncomingCall, type WorkloadApiObserver } from './handlers.js';
import { addHealthService } from './health.js';
import type { IdentitySource } from './IdentitySource.js';
import { fixUnscopedReflectionNames } from './reflection.js';
import { listen, prepareSocketPath } from './socket-path.js';
import { SdsHandler, type SdsOptions } from './sds/handler.js';
import { sdsServiceDefinition } from './sds/proto.js';

export { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_UID } from './connection-limits.js';

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
  /** Envoy SDS: resource names and the validation switch (SPIRE's when unset), stream caps (sds/handler.ts). */
  sds?: SdsOptions;
  /** Told how calls end and streams open and close (node-agent/metrics.ts). */
  observer?: WorkloadApiObserver;
  /** Workload API streams one uid may hold open at once. Default MAX_STREAMS_PER_UID (handlers.ts). */
  maxStreamsPerUid?: number;
  /**
   * What `grpc.health.v1.Health/Check` answers (health.ts): true is SERVING.
   * Default: SERVING whenever the socket answers.
   */
  healthy?: () => boolean;
}

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
 * HTTP/2 streams one connection may have open at once, over every service on
 * the socket (SETTINGS_MAX_CONCURRENT_STREAMS). Without it a connection may
 * open 2^31 streams, each with its own watcher; a real client opens a handful
 * (a stream per watched kind), an Envoy one per SDS subscription. Past the cap
 * a well-behaved client waits for a free slot; a stream opened anyway is
 * refused by the HTTP/2 layer (RST_STREAM REFUSED_STREAM). Above the SDS
 * handler's own cap (256 a connection), which answers with a clear
 * UNAVAILABLE first.
 */
export const MAX_STREAMS_PER_CONNECTION = 1024;

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

  const handler = new WorkloadApiHandler({ source, attest, confirm, logger: log, observer: opts.observer, maxStreamsPerUid: opts.maxStreamsPerUid });
  // No channelz: its per-connection and per-call trace bookkeeping showed up
  // in profiles of the first response, and nothing here reads it.
  const grpcServer = new grpc.Server({ 'grpc.enable_channelz': 0, 'grpc.max_concurrent_streams': MAX_STREAMS_PER_CONNECTION });
  grpcServer.addService(loadWorkloadProto().SpiffeWorkloadAPI.service, handler.implementation());
  // Envoy's SDS on the same socket, callers attested the same way (sds/handler.ts).
  const sds = new SdsHandler({ ...opts.sds, source, attest, confirm, logger: log });
  grpcServer.addService(sdsServiceDefinition(), sds.implementation());
  const reflection = new ReflectionService(workloadPackageDefinition());
  fixUnscopedReflectionNames(reflection, log);
  reflection.addToServer(grpcServer);
  addHealthService(grpcServer, opts.healthy ?? (() => true));
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
      sds.endAllStreams();
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
      return handler.openStreams + sds.openStreams;
    },
    get openConnections() {
      return connections.size;
    },
  };
}
