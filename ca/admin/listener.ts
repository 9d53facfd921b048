// The admin socket: accepted by us (a net.Server), not by grpc-js, so that
// each connection's peer credentials (SO_PEERCRED: uid, gid, pid, captured by
// the kernel at connect) can be read at accept and named in the audit log.
// Each socket gets a unique synthetic remoteAddress, which grpc-js reports as
// the call's peer; the handlers look the credentials up by it (as
// workload-api/server.ts does for workloads).
import { chmodSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { errorMessage } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { closePidfd, peerCredentials } from '../../workload-api/peercred.js';
import type { AuditActor } from '../audit/event.js';

const PEER_PREFIX = 'anchorage-admin-peer-';

export interface AdminListener {
  /** The kernel's record of who opened the connection a call arrived on; undefined if it could not be read. */
  actorOf(call: { getPeer(): string }): AuditActor | undefined;
  /** Stops accepting and closes every connection (after the gRPC server's own shutdown). */
  close(): Promise<void>;
}

/** Listens on `path` (a fresh socket file, chmod `mode`) and hands each connection to `server`. */
export async function listenAdmin(server: grpc.Server, path: string, mode: number, log: Logger): Promise<AdminListener> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const actors = new Map<string, AuditActor | undefined>();
  const sockets = new Set<Socket>();
  let next = 0;
  const net = createServer((socket) => {
    const id = `${PEER_PREFIX}${++next}`;
    let actor: AuditActor | undefined;
    try {
      const c = peerCredentials(socket);
      if (c.pidfd !== undefined) closePidfd(c.pidfd);
      actor = { uid: c.uid, gid: c.gid, pid: c.pid };
    } catch (err) {
      // Still served (the socket's mode is the authorization); the audit record says the caller is unknown.
      log.warn({ err: errorMessage(err) }, 'admin: cannot read the peer credentials of a connection');
    }
    actors.set(id, actor);
    sockets.add(socket);
    socket.once('close', () => {
      actors.delete(id);
      sockets.delete(socket);
    });
    Object.defineProperty(socket, 'remoteAddress', { value: id, enumerable: true });
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    net.once('error', reject);
    net.listen(path, () => {
      net.removeListener('error', reject);
      resolve();
    });
  });
  chmodSync(path, mode);
  return {
    actorOf: (call) => actors.get(call.getPeer()),
    close: async () => {
      const closed = new Promise<void>((resolve) => net.close(() => resolve()));
      injector.destroy();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
