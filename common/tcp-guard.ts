import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Logger } from './log.js';

/**
 * Limits of one TLS listener (the agent API, the bundle endpoint).
 *
 * Why: before these, a TCP connection that never sent a ClientHello was held
 * for Node's default 120 s, and nothing bounded how many there were; 21,000 of
 * them exhausted the server's file descriptors and stopped every API,
 * including the admin socket (issue 10, item 7).
 */
export interface TcpLimits {
  /**
   * Milliseconds from accept by which the TLS handshake must be complete, or
   * the connection is closed (Node's `handshakeTimeout`). Measured: a client
   * trickling its ClientHello a byte at a time does not extend it.
   */
  handshakeTimeoutMs: number;
  /** Open connections on the listener, handshaking or established. */
  maxConnections: number;
  /** Open connections from one remote address. */
  maxConnectionsPerIp: number;
}

/** How often a refused connection is logged, at most (a flood must not flood the log). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Counts the open connections of one listener, globally and per remote
 * address, and closes a new connection at once when either cap is reached.
 * Counting happens on the raw TCP socket, before any TLS work is spent on it.
 */
export class ConnectionCap {
  private readonly name: string;
  private readonly limits: TcpLimits;
  private readonly log: Logger;
  private total = 0;
  private readonly perIp = new Map<string, number>();
  private refused = 0;
  private lastRefusalLog = 0;

  constructor(name: string, limits: TcpLimits, log: Logger) {
    this.name = name;
    this.limits = limits;
    this.log = log;
  }

  /** Open connections now. */
  get open(): number {
    return this.total;
  }

  /**
   * Admits `socket` (counted until it closes) or destroys it at once and
   * returns false when a cap is reached.
   */
  admit(socket: Socket): boolean {
    const ip = socket.remoteAddress ?? '';
    const fromIp = this.perIp.get(ip) ?? 0;
    if (this.total >= this.limits.maxConnections || fromIp >= this.limits.maxConnectionsPerIp) {
      const reason = this.total >= this.limits.maxConnections ? 'max_connections' : 'max_connections_per_ip';
      socket.destroy();
      this.refused++;
      const now = Date.now();
      if (now - this.lastRefusalLog >= REFUSAL_LOG_INTERVAL_MS) {
        this.log.warn(
          { listener: this.name, reason, remoteAddress: ip, open: this.total, fromAddress: fromIp, refusedSinceLastLog: this.refused },
          `${this.name}: connection limit reached; closing new connections`,
        );
        this.lastRefusalLog = now;
        this.refused = 0;
      }
      return false;
    }
    this.total++;
    this.perIp.set(ip, fromIp + 1);
    socket.once('close', () => {
      this.total--;
      const left = (this.perIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, left);
    });
    return true;
  }
}

/**
 * Descriptors kept free beyond the TCP caps: the datastore and its WAL, the
 * token's files, the admin socket and its clients, logs.
 */
export const DESCRIPTOR_RESERVE = 256;

/** The soft limit on open files of this process, where Linux tells (`/proc/self/limits`). */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

/**
 * Warns when the TCP caps together could use up the descriptors this process
 * may open: the caps exist so that a flood on TCP cannot starve the admin
 * socket, which needs descriptors of its own. (Node already raises the soft
 * limit to the hard limit at start.) A warning, not a refusal: the default
 * caps must not stop a server from starting on a host with a small limit.
 */
export function checkDescriptorBudget(caps: number, log: Logger, limit = openFileLimit()): boolean {
  if (limit === undefined || caps + DESCRIPTOR_RESERVE <= limit) return true;
  log.warn(
    { connectionCaps: caps, openFileLimit: limit, reserve: DESCRIPTOR_RESERVE },
    'server: the TCP connection caps leave too few file descriptors for the admin socket and the datastore; ' +
      'lower agent_api.max_connections / federation.bundle_endpoint.max_connections or raise the open file limit',
  );
  return false;
}
