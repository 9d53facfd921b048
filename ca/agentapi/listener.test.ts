import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import { tempDir } from '../../test/helpers/process.js';
import { listenAgentApi, type AgentApiListener } from './listener.js';

let tmp: { dir: string; cleanup: () => void };
let cert: Buffer;
let key: Buffer;

beforeAll(() => {
  tmp = tempDir('anchorage-listener-');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=test',
    '-keyout', join(tmp.dir, 'key.pem'), '-out', join(tmp.dir, 'cert.pem'),
  ], { stdio: 'pipe' });
  cert = readFileSync(join(tmp.dir, 'cert.pem'));
  key = readFileSync(join(tmp.dir, 'key.pem'));
});

afterAll(() => tmp?.cleanup());

const creds = () => grpc.ServerCredentials.createSsl(null, [{ cert_chain: cert, private_key: key }], false);
const limits = { handshakeTimeoutMs: 1_000, maxConnections: 10, maxConnectionsPerIp: 10 };

/** Resolves once the server closes the connection, or to 'open' after `ms`. */
function fate(socket: Socket, ms: number): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    socket.on('error', () => undefined);
    socket.once('close', () => resolve('closed'));
    setTimeout(() => resolve('open'), ms).unref();
  });
}

describe('listenAgentApi', () => {
  it('completes a TLS handshake (ALPN h2), closes a silent connection after the handshake timeout, and closes cleanly', async () => {
    const listener: AgentApiListener = await listenAgentApi(new grpc.Server(), creds(), '127.0.0.1:0', limits, silentLogger());
    try {
      const alpn = await new Promise<string>((resolve, reject) => {
        const t = tlsConnect({ host: '127.0.0.1', port: listener.port, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
          resolve(String(t.alpnProtocol));
          t.destroy();
        });
        t.on('error', reject);
      });
      expect(alpn).toBe('h2');
      const silent = tcpConnect({ host: '127.0.0.1', port: listener.port });
      expect(await fate(silent, 10_000)).toBe('closed');
      // One that is still open when the listener closes does not hold close() up.
      const idle = tcpConnect({ host: '127.0.0.1', port: listener.port });
      await new Promise((r) => idle.once('connect', r));
      const idleFate = fate(idle, 10_000);
      await listener.close();
      expect(await idleFate).toBe('closed');
    } finally {
      await listener.close();
    }
  });

  it('binds a host name on every address it resolves to, on one port', async () => {
    const listener = await listenAgentApi(new grpc.Server(), creds(), 'localhost:0', limits, silentLogger());
    try {
      const c = tcpConnect({ host: '127.0.0.1', port: listener.port });
      await new Promise((resolve, reject) => c.once('connect', resolve).once('error', reject));
      c.destroy();
    } finally {
      await listener.close();
    }
  });

  it('refuses an address in use with failed_precondition, naming it', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      const err = await listenAgentApi(new grpc.Server(), creds(), `127.0.0.1:${port}`, limits, silentLogger()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AnchorageError);
      expect(err).toMatchObject({
        code: 'failed_precondition',
        message: `server: cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}`,
      });
    } finally {
      taken.close();
    }
  });
});
