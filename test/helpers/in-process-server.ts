// A whole server (`startServer`, as `anchorage server run` starts it) in the
// test's own process, in a temp dir of its own: for suites that talk to its
// agent API or admin socket and also reach into it (its CA, datastore, audit log).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toPem } from '@anchorage/client/pem';
import { parseServerConfig, type ServerConfig } from '../../ca/config.js';
import { startServer, type RunningServer, type ServerOptions } from '../../ca/server.js';

export interface InProcessServer {
  /** The temp dir; removed by close(). */
  dir: string;
  cfg: ServerConfig;
  server: RunningServer;
  /** The trust domain's X.509 authorities, PEM: what a client trusts. */
  rootPem: string;
  /** Stops the server and removes the dir. */
  close(): Promise<void>;
}

/**
 * Starts a server from `config` (server.yaml keys; `trust_domain` at least)
 * over these defaults: admin socket `admin.sock`, agent API on a free
 * loopback port, memory keys, a 24 h CA. `dataSubdir`: the data dir is that
 * directory of the temp dir rather than the temp dir itself.
 */
export async function startInProcessServer(
  prefix: string,
  config: Record<string, unknown>,
  opts: ServerOptions & { dataSubdir?: string },
): Promise<InProcessServer> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const { dataSubdir, ...serverOpts } = opts;
  try {
    const cfg = parseServerConfig(
      {
        data_dir: dataSubdir === undefined ? dir : join(dir, dataSubdir),
        admin_socket: 'admin.sock',
        bind_address: '127.0.0.1:0',
        key_manager: { type: 'memory' },
        ca: { ttl: '24h' },
        ...config,
      },
      'test',
      dir,
    );
    const server = await startServer(cfg, serverOpts);
    const rootPem = server.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join('');
    return {
      dir,
      cfg,
      server,
      rootPem,
      async close() {
        try {
          await server.close();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
