import { randomBytes, randomUUID } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { closePidfd, peerCredentials } from '../peercred.js';

/**
 * A real socket for a connection the Workload API serves through the
 * `:authority` rewriter (rewriter.ts).
 *
 * grpc-js names a call's peer by its HTTP/2 session socket's `remoteAddress`,
 * which is how a handler finds the caller's SO_PEERCRED credentials. The
 * rewriter is a Duplex, and Node's HTTP/2 layer wraps a Duplex in an internal
 * socket whose address only Node internals could set. So the rewritten bytes
 * are carried over a Unix socket connection of our own instead: its server end
 * is a plain net.Socket, which gets the connection's synthetic address like
 * any accepted socket. The cost (one more socket pair) is paid only by
 * clients on the slow path.
 *
 * The hop listens on an abstract Unix socket (no file, gone with the
 * process). Anyone on the host could connect to it (abstract names are listed
 * in /proc/net/unix), so a connection is only matched to a rewritten stream by
 * the 128-bit random token it must send first, which only this process knows;
 * anything else is dropped. A connection from another process is dropped at
 * accept (SO_PEERCRED), before it can hold a descriptor while we wait for its
 * token: otherwise any uid could fill the fd table through the hop, around
 * the Workload API's connection caps.
 */

const TOKEN_BYTES = 16;
/** How long a hop connection may take to arrive and name its token. */
const MATCH_TIMEOUT_MS = 5000;

export class SocketHop {
  readonly #server: Server;
  readonly #address: string;
  readonly #pending = new Map<string, { deliver: (serverEnd: Socket) => void; timer: NodeJS.Timeout }>();
  /** Every accepted hop connection, so close() can end them. */
  readonly #accepted = new Set<Socket>();

  private constructor(server: Server, address: string) {
    this.#server = server;
    this.#address = address;
  }

  static async open(): Promise<SocketHop> {
    const address = `\0anchorage-workload-api-hop-${randomUUID()}`;
    let hop: SocketHop | undefined;
    const server = createServer({ pauseOnConnect: true }, (socket) => hop!.#accept(socket));
    hop = new SocketHop(server, address);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return hop;
  }

  /**
   * Connects `stream` (bytes for the HTTP/2 server on its readable side,
   * bytes for the client on its writable side) to a fresh hop connection and
   * calls `deliver` with that connection's server end. Closing either side
   * closes both.
   */
  carry(stream: Duplex, deliver: (serverEnd: Socket) => void): void {
    const token = randomBytes(TOKEN_BYTES);
    const key = token.toString('hex');
    const client = connect(this.#address);
    const closeBoth = (): void => {
      const p = this.#pending.get(key);
      if (p) {
        clearTimeout(p.timer);
        this.#pending.delete(key);
      }
      stream.destroy();
      client.destroy();
    };
    const timer = setTimeout(closeBoth, MATCH_TIMEOUT_MS);
    timer.unref();
    this.#pending.set(key, { deliver, timer });
    client.on('error', closeBoth);
    stream.on('error', closeBoth);
    client.once('close', closeBoth);
    stream.once('close', closeBoth);
    client.write(token);
    stream.pipe(client);
    client.pipe(stream);
  }

  async close(): Promise<void> {
    for (const { timer } of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#accepted) s.destroy();
    await closed;
  }

  #accept(socket: Socket): void {
    if (!fromThisProcess(socket)) return void socket.destroy();
    this.#accepted.add(socket);
    socket.once('close', () => this.#accepted.delete(socket));
    let got = Buffer.alloc(0);
    const drop = (): void => {
      socket.destroy();
    };
    const timer = setTimeout(drop, MATCH_TIMEOUT_MS);
    timer.unref();
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < TOKEN_BYTES) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const key = got.subarray(0, TOKEN_BYTES).toString('hex');
      const p = this.#pending.get(key);
      if (!p) return drop();
      clearTimeout(p.timer);
      this.#pending.delete(key);
      if (got.length > TOKEN_BYTES) socket.unshift(got.subarray(TOKEN_BYTES));
      p.deliver(socket);
    };
    socket.on('error', drop);
    socket.on('data', onData);
    socket.resume();
  }
}

/** Whether the peer of an accepted hop connection is this very process (only carry() dials the hop). */
function fromThisProcess(socket: Socket): boolean {
  let creds;
  try {
    creds = peerCredentials(socket);
  } catch {
    return false;
  }
  if (creds.pidfd !== undefined) closePidfd(creds.pidfd);
  return creds.pid === process.pid;
}
