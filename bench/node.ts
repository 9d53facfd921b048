import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Admin } from '../cli/client.js';
import { cli, freePort, startAgentProcess, startServerProcess, tempDir, writeFile, type AnchorageProcess } from '../test/helpers/process.js';
import { createSoftHsmToken } from '../test/helpers/softhsm.js';

/** A real server on SoftHSM2 and one agent attested to it, as the benches that need both use them. */
export interface BenchNode {
  td: string;
  env: NodeJS.ProcessEnv;
  adminSocket: string;
  /** The agent's Workload API socket. */
  socket: string;
  agentDir: string;
  agentConfig: string;
  agentId: string;
  admin: Admin;
  server: AnchorageProcess;
  /** Replaced when a bench restarts the agent; the one here is stopped at the end. */
  agent: AnchorageProcess;
}

/**
 * Starts the server and the agent in a temp dir (both configs end with
 * `extraYaml`, e.g. a metrics block), runs `fn`, and stops and
 * removes everything; on failure both logs go to /tmp/bench-server.log and
 * /tmp/bench-agent.log, and with `BENCH_LOGS=1` after a run that worked too.
 */
export async function withBenchNode(name: string, td: string, extraYaml: string, fn: (node: BenchNode) => Promise<void>): Promise<void> {
  const hsm = createSoftHsmToken('bench', '1357');
  const tmp = tempDir(`anchorage-bench-${name}-`);
  chmodSync(tmp.dir, 0o755);
  const env = { ...hsm.env };
  const port = await freePort();
  const adminSocket = join(tmp.dir, 'admin.sock');
  const socket = join(tmp.dir, 'public', 'api.sock');
  const agentDir = join(tmp.dir, 'agent');
  writeFile(join(tmp.dir, 'pin'), '1357\n');
  const serverConfig = writeFile(
    join(tmp.dir, 'server.yaml'),
    `trust_domain: ${td}\ndata_dir: ${join(tmp.dir, 'server')}\nadmin_socket: ${adminSocket}\nbind_address: 127.0.0.1:${port}\n` +
      `key_manager:\n  type: pkcs11\n  module: ${hsm.module}\n  token_label: ${hsm.label}\n  pin_file: ${join(tmp.dir, 'pin')}\n${extraYaml}`,
  );
  let server: AnchorageProcess | undefined;
  let node: BenchNode | undefined;
  let admin: Admin | undefined;
  try {
    server = await startServerProcess(serverConfig, adminSocket, env);
    admin = new Admin(adminSocket);
    const token = await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 });
    writeFile(join(tmp.dir, 'bundle.pem'), cli(['bundle', 'show', '--format', 'pem', '--socket', adminSocket], env).stdout);
    const agentConfig = writeFile(
      join(tmp.dir, 'agent.yaml'),
      `trust_domain: ${td}\nserver_address: 127.0.0.1:${port}\ndata_dir: ${agentDir}\nsocket_path: ${socket}\n` +
        `join_token: ${token.token}\ntrust_bundle_file: ${join(tmp.dir, 'bundle.pem')}\n${extraYaml}`,
    );
    const agent = await startAgentProcess(agentConfig, socket, env);
    node = { td, env, adminSocket, socket, agentDir, agentConfig, agentId: `spiffe://${td}/anchorage/agent/join_token/${token.token}`, admin, server, agent };
    await fn(node);
    if (process.env.BENCH_LOGS) {
      writeFileSync('/tmp/bench-server.log', server.log());
      writeFileSync('/tmp/bench-agent.log', node.agent.log());
    }
  } catch (err) {
    if (server) writeFileSync('/tmp/bench-server.log', server.log());
    if (node) writeFileSync('/tmp/bench-agent.log', node.agent.log());
    console.error(`bench ${name}: failed; server and agent logs in /tmp/bench-server.log and /tmp/bench-agent.log`);
    throw err;
  } finally {
    admin?.close();
    await node?.agent.kill('SIGTERM');
    await server?.kill('SIGTERM');
    tmp.cleanup();
    hsm.cleanup();
  }
}
