/**
 * The monitoring listener both processes share: GET /metrics (Prometheus text
 * format, from the process's own prom-client Registry), GET /live and
 * GET /ready (plain text saying why). It is plain HTTP on a TCP address the
 * operator names (`metrics.address`), so everything a peer can make it spend
 * is bounded: header bytes, time to send the headers and the request,
 * connections in all and per address; a body is refused unread.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import type { Logger } from './log.js';
import { ConnectionCap } from './tcp-guard.js';

/** `host:port`; port 0 picks any free port. IPv6 hosts in brackets. */
export const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})$/, { message: 'must be host:port', abort: true })
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) < 65536, 'port must be between 0 (any free port) and 65535');

/** The `metrics:` block of server.yaml and agent.yaml. Absent: no listener. */
export const metricsConfig = z.object({ address: hostPort }).strict();
export type MetricsConfig = z.output<typeof metricsConfig>;

/** The `result` label of a failure: the error's stable code (`invalid_argument`, `unavailable`, …), a bounded set; else `internal`. */
export function resultOf(err: unknown): string {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && /^[a-z_]{1,32}$/.test(err.code) ? err.code : 'internal';
}

/** What /live and /ready answer: the verdict and, one per line, why. */
export interface HealthReport {
  ok: boolean;
  /** Lines of plain text; each check says what it found. */
  lines: string[];
}

/** Bounds of the listener; see the README's Limits table. */
export const METRICS_HTTP_LIMITS = Object.freeze({
  /** Request line and headers, in bytes (Node's maxHeaderSize; over it: 431). */
  maxHeaderBytes: 8 * 1024,
  /** From accept, and from the first byte of each later request, to the end of its headers (a client trickling bytes does not extend it). */
  headersTimeoutMs: 5_000,
  /** From the first byte to the whole request (Node's requestTimeout). */
  requestTimeoutMs: 10_000,
  /** A connection kept alive after a response, with no new request, is closed after this long. */
  keepAliveTimeoutMs: 5_000,
  maxConnections: 32,
  maxConnectionsPerIp: 8,
});

export interface MetricsHttpOptions {
  address: string;
  registry: Registry;
  /** Readiness; called for each GET /ready, so it must cache anything costly itself. */
  ready: () => Promise<HealthReport>;
  logger: Logger;
}

export interface MetricsHttp {
  readonly port: number;
  close(): Promise<void>;
}

const PATHS = new Set(['/metrics', '/live', '/ready']);

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(body);
}

/** Splits `host:port`, removing the brackets of an IPv6 host. */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(i + 1)) };
}

/** Starts the listener; a busy port or an address this host does not have fails with a message naming `metrics.address`. */
export async function startMetricsHttp(opts: MetricsHttpOptions): Promise<MetricsHttp> {
  const { registry, logger: log } = opts;
  const lim = METRICS_HTTP_LIMITS;
  const cap = new ConnectionCap('metrics', { handshakeTimeoutMs: lim.headersTimeoutMs, maxConnections: lim.maxConnections, maxConnectionsPerIp: lim.maxConnectionsPerIp }, log);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?', 1)[0]!;
    if (!PATHS.has(path)) return send(res, 404, 'not found\n');
    if (req.method !== 'GET') return send(res, 405, 'method not allowed\n', { allow: 'GET' });
    // Nothing here takes a body: one is refused without being read, and the connection closed.
    if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0') {
      return send(res, 413, 'a request body is not accepted\n', { connection: 'close' });
    }
    if (path === '/live') return send(res, 200, 'live\n');
    if (path === '/ready') {
      const report = await opts.ready();
      return send(res, report.ok ? 200 : 503, `${report.ok ? 'ready' : 'not ready'}\n${report.lines.join('\n')}\n`);
    }
    send(res, 200, await registry.metrics(), { 'content-type': registry.contentType });
  };

  const server = createServer(
    {
      maxHeaderSize: lim.maxHeaderBytes,
      headersTimeout: lim.headersTimeoutMs,
      requestTimeout: lim.requestTimeoutMs,
      keepAliveTimeout: lim.keepAliveTimeoutMs,
      // How often Node looks for requests past the two timeouts above (default 30 s).
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        log.error({ err: errorMessage(err), path: req.url }, 'metrics: request failed');
        if (!res.headersSent) send(res, 500, 'internal error\n');
        else res.destroy();
      });
    },
  );
  // Counted before any byte is parsed; over a cap the socket is closed at once.
  // Node's headersTimeout only runs once a request has begun, and a socket
  // timeout does not fire on a connection the HTTP parser consumes (measured,
  // Node 20): a connection that never sends a whole request head is closed
  // by this timer instead.
  const firstRequest = new WeakMap<Socket, NodeJS.Timeout>();
  server.on('connection', (socket: Socket) => {
    if (!cap.admit(socket)) return;
    const timer = setTimeout(() => socket.destroy(), lim.headersTimeoutMs);
    timer.unref();
    firstRequest.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  });
  server.on('request', (req: IncomingMessage) => clearTimeout(firstRequest.get(req.socket)));
  // Headers too large (431), a timeout (408) or garbage (400): answered, then closed.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  });

  const { host, port } = splitHostPort(opts.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    const why =
      err.code === 'EADDRINUSE'
        ? 'the port is already in use'
        : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
          ? 'this host has no such address'
          : err.code === 'EACCES'
            ? 'permission denied (ports below 1024 need privileges)'
            : err.message;
    throw new AnchorageError('failed_precondition', `metrics: cannot listen on metrics.address ${opts.address}: ${why}`, { cause: err });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'metrics: listener error'));
  const bound = (server.address() as AddressInfo).port;
  log.info({ address: `${host.includes(':') ? `[${host}]` : host}:${bound}`, paths: [...PATHS] }, 'metrics: listening');
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Runs `check` at most once per `ttlMs` and shares one run among concurrent
 * callers, so that probes, however frequent, cannot hammer what it checks
 * (the HSM, the datastore). A check that throws reports not ready with the
 * error as its reason.
 */
export function cachedCheck(check: () => Promise<HealthReport>, ttlMs: number, now: () => number = Date.now): () => Promise<HealthReport> {
  let last: { at: number; report: HealthReport } | undefined;
  let running: Promise<HealthReport> | undefined;
  return () => {
    if (last !== undefined && now() - last.at < ttlMs) return Promise.resolve(last.report);
    // A check that hangs (a token that does not answer) is shared, not started again.
    running ??= check()
      .catch((err: unknown) => ({ ok: false, lines: [`check failed: ${errorMessage(err)}`] }))
      .then((report) => {
        last = { at: now(), report };
        running = undefined;
        return report;
      });
    return running;
  };
}
