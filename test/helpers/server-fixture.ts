import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { Admin } from '../../cli/client.js';
import { cli, freePort, startServerProcess, tempDir, writeFile, type AnchorageProcess } from './process.js';
import { createSoftHsmToken, type SoftHsmToken, writePkcs11ServerConfig } from './softhsm.js';

/**
 * One `anchorage server run` on a SoftHSM2 token, shared by the agent-*
 * integration suites, and agent configs pointing at it: every suite gets
 * real processes on loopback and real files, without repeating the setup.
 */
export interface ServerFixture {
  td: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  port: number;
  serverConfig: string;
  adminSocket: string;
  bundlePem: string;
  server: AnchorageProcess | undefined;
  admin<T>(fn: (a: Admin) => Promise<T>): Promise<T>;
  newToken(): Promise<string>;
  startServer(): Promise<void>;
  /** Writes an agent config; `extra` is appended verbatim (YAML lines). */
  agentConfig(name: string, opts: { dataDir: string; socket: string; token?: string; extra?: string }): string;
  close(): Promise<void>;
}

/** `serverExtra` (YAML lines, absolute paths) is appended to server.yaml, e.g. a node_attestors block. */
export async function startServerFixture(
  td: string,
  prefix: string,
  x509Ttl = '1h',
  opts: { serverExtra?: string } = {},
): Promise<ServerFixture> {
  const hsm: SoftHsmToken = createSoftHsmToken('anchorage', '2468');
  const tmp = tempDir(prefix);
  // Workloads of any uid must reach sockets below this directory.
  chmodSync(tmp.dir, 0o755);
  const env = { ...hsm.env };
  const port = await freePort();
  const adminSocket = join(tmp.dir, 'admin.sock');
  const serverConfig = writePkcs11ServerConfig(hsm, { dir: tmp.dir, trustDomain: td, socket: adminSocket, dataDir: join(tmp.dir, 'server'), port, extra: `ca:\n  ttl: 24h\nx509_svid_ttl: ${x509Ttl}\n${opts.serverExtra ?? ''}` });
  const f: ServerFixture = {
    td,
    dir: tmp.dir,
    env,
    port,
    serverConfig,
    adminSocket,
    bundlePem: '',
    server: undefined,
    admin<T>(fn: (a: Admin) => Promise<T>): Promise<T> {
      const a = new Admin(adminSocket);
      return fn(a).finally(() => a.close());
    },
    async newToken() {
      return (await f.admin((a) => a.call('CreateJoinToken', { spiffe_id: '', ttl: 600 }))).token;
    },
    async startServer() {
      f.server = await startServerProcess(serverConfig, adminSocket, env);
    },
    agentConfig(name, opts) {
      return writeFile(
        join(tmp.dir, `${name}.yaml`),
        `trust_domain: ${td}
server_address: 127.0.0.1:${port}
data_dir: ${opts.dataDir}
socket_path: ${opts.socket}
${opts.token ? `join_token: ${opts.token}\n` : ''}trust_bundle_file: ${join(tmp.dir, 'bundle.pem')}
${opts.extra ?? ''}`,
      );
    },
    async close() {
      await f.server?.kill('SIGTERM');
      tmp.cleanup();
      hsm.cleanup();
    },
  };
  await f.startServer();
  f.bundlePem = cli(['bundle', 'show', '--format', 'pem', '--socket', adminSocket], env).stdout;
  writeFile(join(tmp.dir, 'bundle.pem'), f.bundlePem);
  return f;
}
