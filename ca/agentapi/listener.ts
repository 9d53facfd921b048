import { lookup } from 'node:dns/promises';
import { createServer, isIP, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { ConnectionCap, type TcpLimits } from '../../common/tcp-guard.js';

/** The agent API's TCP listener, bounded by {@link TcpLimits}. */
export interface AgentApiListener {
  /** The bound port (the configured one, or the one picked for port 0). */
  readonly port: number;
  /** Open TCP connections, handshaking or established. */
  readonly open: number;
  /** Stops accepting new connections; open ones stay (grpc-js drains them). */
  stopAccepting(): void;
  /** Stops accepting and destroys every connection still open. */
  close(): Promise<void>;
}

/**
 * Listens for the agent API on `address` (`host:port`) and serves it with
 * `server` over TLS from `credentials`.
 *
 * grpc-js's own `bindAsync` accepts every connection and leaves the TLS
 * handshake to Node's default 120 s timeout. Here we accept TCP ourselves,
 * count and cap connections before any TLS work, and hand the admitted ones to
 * grpc-js through its connection injector, whose TLS server is built from the
 * credentials' constructor options: that is where the handshake timeout goes.
 */
export async function listenAgentApi(
  server: grpc.Server,
  credentials: grpc.ServerCredentials,
  address: string,
  limits: TcpLimits,
  log: Logger,
): Promise<AgentApiListener> {
  // grpc-js spreads these options into http2.createSecureServer; Node's TLS
  // server reads handshakeTimeout from there for every connection.
  const constructorOptions = credentials._getConstructorOptions.bind(credentials);
  credentials._getConstructorOptions = () => {
    const base = constructorOptions();
    return base === null ? null : { ...base, handshakeTimeout: limits.handshakeTimeoutMs };
  };
  const injector = server.createConnectionInjector(credentials);
  const cap = new ConnectionCap('agent api', limits, log);
  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket) => {
    if (!cap.admit(socket)) return;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    injector.injectConnection(socket);
  };

  // Like grpc-js's bindAsync: a host name is bound on every address it
  // resolves to (localhost: 127.0.0.1 and ::1), all on the same port.
  const { host, port } = splitAddress(address);
  const servers: NetServer[] = [];
  const closeServers = () => Promise.all(servers.map((srv) => new Promise<void>((resolve) => (srv.listening ? srv.close(() => resolve()) : resolve()))));
  let boundPort = port;
  try {
    const addresses = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
    let lastError: Error | undefined;
    for (const a of addresses) {
      const srv = createServer(onConnection);
      try {
        await listenOn(srv, a, boundPort);
      } catch (err) {
        // Another address of the same name may still work (no IPv6, say).
        lastError = err as Error;
        continue;
      }
      servers.push(srv);
      boundPort = (srv.address() as AddressInfo).port;
      srv.on('error', (err) => log.error({ err: err.message }, 'server: agent api listener error'));
    }
    if (servers.length === 0) throw lastError ?? new Error(`${host} resolves to no address`);
  } catch (err) {
    injector.destroy();
    await closeServers();
    throw new AnchorageError('failed_precondition', `server: cannot listen on ${address}: ${(err as Error).message}`, { cause: err });
  }

  const closed = Promise.all(servers.map((srv) => new Promise<void>((resolve) => srv.once('close', () => resolve()))));
  const stopAccepting = () => {
    for (const srv of servers) if (srv.listening) srv.close();
  };
  return {
    port: boundPort,
    get open() {
      return cap.open;
    },
    stopAccepting,
    close: async () => {
      stopAccepting();
      injector.destroy();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

function listenOn(srv: NetServer, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port }, () => {
      srv.off('error', reject);
      resolve();
    });
  });
}

/** `host:port` or `[v6]:port` (already checked by the config schema). */
function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(i + 1)) };
}
