import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../ca/config.js';
import { startServer, type RunningServer } from '../ca/server.js';
import { Admin } from '../cli/client.js';
import { silentLogger } from '../common/log.js';
import { toPem } from '@anchorage/client/pem';
import { captureLogger } from '../test/helpers/log.js';
import { freePort } from '../test/helpers/process.js';
import { NodeAgent } from './agent.js';
import { parseAgentConfig } from './config.js';

// The agent with several servers (real in-process servers): it moves past a
// server it cannot reach and past one it does not trust (an impostor of the
// same trust domain with another root), whether they are listed or are the
// several addresses of one DNS name, and logs one line per move.

const TD = 'failover-agent.test';

describe('agent failover across server addresses', () => {
  let dir: string;
  let server: RunningServer;
  let impostor: RunningServer;
  let admin: Admin;
  /** One port: the real server on 127.0.0.1, the impostor on 127.0.0.2. */
  let port: number;

  const start = (name: string, bind: string, data = join(dir, name)) =>
    startServer(parseServerConfig({ trust_domain: TD, data_dir: data, admin_socket: 'admin.sock', bind_address: bind, key_manager: { type: 'memory' } }, 'test', data), {
      logger: silentLogger(),
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'anchorage-agent-failover-'));
    port = await freePort();
    server = await start('server', `127.0.0.1:${port}`);
    impostor = await start('impostor', `127.0.0.2:${port}`);
    admin = new Admin(join(dir, 'server', 'admin.sock'));
    writeFileSync(join(dir, 'bundle.pem'), server.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join(''));
  });

  afterAll(async () => {
    admin?.close();
    await impostor?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const config = async (name: string, serverAddress: string | string[]) =>
    parseAgentConfig(
      {
        trust_domain: TD,
        server_address: serverAddress,
        data_dir: join(dir, name),
        socket_path: join(dir, `${name}-sock`, 'api.sock'),
        trust_bundle_file: join(dir, 'bundle.pem'),
        join_token: (await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 })).token,
      },
      'agent.yaml',
      dir,
    );

  it('moves past a closed port and an untrusted server in the list, attests at the real one and syncs there', async () => {
    const closed = await freePort();
    const { logger, records } = captureLogger();
    const agent = await NodeAgent.start({ config: await config('listed', [`127.0.0.1:${closed}`, `127.0.0.2:${port}`, `127.0.0.1:${port}`]), logger });
    try {
      expect(agent.spiffeId).toMatch(new RegExp(`^spiffe://${TD.replace('.', '\\.')}/anchorage/agent/join_token/[0-9a-f]{32}$`));
      expect(agent.server).toBe(`127.0.0.1:${port}`);
      expect(agent.serverSwitches).toBe(2);
      const moves = records.filter((r) => r.msg === 'agent: switching to another server');
      expect(moves.map((r) => [r.from, r.to, r.switches])).toEqual([
        [`127.0.0.1:${closed}`, `127.0.0.2:${port}`, 1],
        [`127.0.0.2:${port}`, `127.0.0.1:${port}`, 2],
      ]);
      expect(String(moves[0]!.reason)).toMatch(new RegExp(`^agent: attestation: No connection established\\. Last error: Error: connect ECONNREFUSED 127\\.0\\.0\\.1:${closed}`));
      // The impostor was refused because its certificate does not chain to our bundle, not merely unreachable.
      expect(String(moves[1]!.reason)).toMatch(/^agent: attestation: No connection established\. Last error: Error: unable to get local issuer certificate/);
      const deadline = Date.now() + 10_000;
      while (!agent.synced && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(agent.synced).toBe(true);
      // Working: it stays.
      expect(agent.serverSwitches).toBe(2);
    } finally {
      await agent.close();
    }
  });

  it('tries each address of a DNS name: the untrusted one first, then the real one', async () => {
    const { logger, records } = captureLogger();
    const lookups: string[] = [];
    const agent = await NodeAgent.start({
      config: await config('dns', `ca.failover.test:${port}`),
      logger,
      resolve: async (host) => {
        lookups.push(host);
        return ['127.0.0.2', '127.0.0.1'];
      },
    });
    try {
      expect(lookups).toEqual(['ca.failover.test']);
      expect(agent.spiffeId).toBeDefined();
      expect(agent.server).toBe(`127.0.0.1:${port}`);
      expect(records.filter((r) => r.msg === 'agent: switching to another server').map((r) => [r.from, r.to])).toEqual([[`127.0.0.2:${port}`, `127.0.0.1:${port}`]]);
    } finally {
      await agent.close();
    }
  });

  it('with only servers it cannot use, starts unattested and says so', async () => {
    const { logger, records } = captureLogger();
    const agent = await NodeAgent.start({ config: await config('none', [`127.0.0.2:${port}`, `127.0.0.1:${await freePort()}`]), logger });
    try {
      expect(agent.spiffeId).toBeUndefined();
      expect(records.filter((r) => r.msg === 'agent: switching to another server')).toHaveLength(1);
      expect(records.some((r) => r.msg === 'agent: server unreachable for attestation; retrying in the background')).toBe(true);
    } finally {
      await agent.close();
    }
  });
});
