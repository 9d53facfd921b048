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
   * Milliseconds a connection may go without TLS handshake progress before it
   * is closed (Node's `handshakeTimeout`: it runs from accept, restarts on
   * each handshake message, and stops once the handshake completes).
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
