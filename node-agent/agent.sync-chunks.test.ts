import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentHandlers } from '../ca/agentapi/service.js';
import type { RunningServer } from '../ca/server.js';
import { startInProcessServer, type InProcessServer } from '../test/helpers/in-process-server.js';
import { Admin } from '../cli/client.js';
import { silentLogger } from '../common/log.js';
import { NodeAgent } from './agent.js';
import { parseAgentConfig } from './config.js';
import { until } from '../test/helpers/until.js';

// The real agent against a server whose sync messages are limited to 8 KiB:
// a pass of 600 entries comes in many messages, and the agent applies it
// only when the last one arrives.
const TD = 'chunks.agent.test';
const LIMIT = 8 * 1024;
const ENTRIES = 600;
let dir: string;
let running: InProcessServer;
let server: RunningServer;
let admin: Admin;

beforeAll(async () => {
  running = await startInProcessServer('anchorage-agent-chunks-', { trust_domain: TD }, { logger: silentLogger(), syncMessageLimit: LIMIT, dataSubdir: 'server' });
  dir = running.dir;
  server = running.server;
  admin = new Admin(running.cfg.admin_socket);
  writeFileSync(join(dir, 'bundle.pem'), running.rootPem);
});

afterAll(async () => {
  admin?.close();
  await running?.close();
});


describe('node agent, sync passes in several messages', () => {
  it('never holds part of a full pass: the first set it holds is the whole set, then a change and a removal apply', { timeout: 120_000 }, async () => {
    const token = (await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 })).token;
    const agentId = `spiffe://${TD}/anchorage/agent/join_token/${token}`;
    const entries = Array.from({ length: ENTRIES }, (_, i) => ({
      spiffe_id: `spiffe://${TD}/service/${i}`,
      parent_id: agentId,
      selectors: [{ type: 'unix', value: `uid:${10_000 + i}` }],
      hint: `a rather long hint so that the entries fill the messages quickly ${i}`,
    }));
    expect(JSON.stringify(entries).length).toBeGreaterThan(8 * LIMIT); // so the first pass is many messages
    const created = await admin.call('BatchCreateEntry', { entries });
    expect(created.results.every((r) => r.code === 0)).toBe(true);

    const d = join(dir, 'agent');
    const config = parseAgentConfig(
      { trust_domain: TD, server_address: `127.0.0.1:${server.agentPort}`, data_dir: d, socket_path: join(dir, 'sock', 'api.sock'), trust_bundle_file: join(dir, 'bundle.pem'), join_token: token },
      'agent.yaml',
      dir,
    );
    const agent = await NodeAgent.start({ config, logger: silentLogger() });
    try {
      const sizes: number[] = [];
      agent.cache.onChange(() => sizes.push(agent.cache.size));
      await until('the first pass', () => agent.synced, 30_000, 20);
      expect(agent.cache.size).toBe(ENTRIES);
      expect(sizes[0]).toBe(ENTRIES);

      const one = created.results[0]!.entry!.id;
      const two = created.results[1]!.entry!.id;
      await admin.call('UpdateEntry', { id: one, patch: { hint: 'changed' }, expect_revision: 0 });
      await admin.call('DeleteEntry', { id: two });
      await until('the change and the removal', () => agent.cache.size === ENTRIES - 1 && agent.cache.entries().some((e) => e.id === one && e.hint === 'changed'), 30_000, 20);
      expect(agent.cache.entries().some((e) => e.id === two)).toBe(false);
      expect(agent.synced).toBe(true);
    } finally {
      await agent.close();
    }
  });

  it('a server refuses a sync message limit out of range', () => {
    const deps = { datastore: server.datastore, ca: server.ca, minter: server.minter, feed: server.feed, agentSvidTtl: 3600, logger: silentLogger() };
    expect(() => agentHandlers({ ...deps, syncMessageLimit: 100 })).toThrow('agent api: the sync message limit must be a whole number of bytes from 4096 to 4193280 (got 100)');
    expect(() => agentHandlers({ ...deps, syncMessageLimit: 1.5e6 + 0.5 })).toThrow(/^agent api: the sync message limit must be a whole number of bytes/);
    expect(() => agentHandlers({ ...deps, syncMessageLimit: 8 * 1024 * 1024 })).toThrow(/\(got 8388608\)$/);
  });
});
