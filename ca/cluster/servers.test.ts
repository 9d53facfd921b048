import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '@anchorage/client/pem';
import { silentLogger } from '../../common/log.js';
import { runAttestation } from '../../node-agent/connection.js';
import { loadAdminProto } from '../../proto/load.js';
import type { AdminClient } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { AgentClient } from '../../proto/gen/anchorage/agent/v1/Agent.js';
import type { SyncAuthorizedEntriesResponse__Output } from '../../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import { agentApiClient, unary } from '../../test/helpers/agent-api.js';
import { keyAndCsr } from '../../test/helpers/csr.js';
import { lacks } from '../../test/helpers/needs.js';
import { POSTGRES_NEEDS, type PostgresCluster, havePostgres, startPostgres } from '../../test/helpers/postgres.js';
import { parseServerConfig } from '../config.js';
import { startServer, type RunningServer } from '../server.js';
import { certFingerprint } from '../manager.js';

// Two real servers (startServer: admin API, agent API over TLS) on one
// PostgreSQL database. They share one key directory (the root's key must be
// reachable by both); each owns its own intermediate and JWT key under its
// server id.

const TD = 'cluster.test';

describe.skipIf(lacks(!havePostgres, POSTGRES_NEEDS))('two servers on one PostgreSQL serving agents', () => {
  let pg: PostgresCluster;
  let dir: string;
  const servers: RunningServer[] = [];
  const admins: AdminClient[] = [];
  const clients: AgentClient[] = [];

  beforeAll(async () => {
    pg = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'anchorage-cluster-servers-'));
    const db = await pg.createDatabase();
    process.env.ANCHORAGE_TEST_PG_PW = pg.password;
    // One after the other: the first creates the root and intermediate, the second resumes them.
    for (const n of [1, 2]) {
      const data = join(dir, `server${n}`);
      mkdirSync(data, { mode: 0o700 });
      const cfg = parseServerConfig(
        {
          trust_domain: TD,
          data_dir: data,
          admin_socket: 'admin.sock',
          bind_address: '127.0.0.1:0',
          key_manager: { type: 'disk', dir: join(dir, 'keys') },
          ca: { ttl: '24h' },
          datastore: { type: 'postgres', connection_string: pg.url(db), password_env: 'ANCHORAGE_TEST_PG_PW', change_reconcile_interval: '1h' },
        },
        'test',
        data,
      );
      servers.push(await startServer(cfg, { logger: silentLogger() }));
      admins.push(new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${cfg.admin_socket}`, grpc.credentials.createInsecure()));
    }
  }, 120_000);

  afterAll(async () => {
    for (const c of [...clients, ...admins]) c.close();
    for (const s of servers.reverse()) await s.close();
    pg?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function agentClient(server: RunningServer, identity?: { keyPem: string; chain: Uint8Array[] }): AgentClient {
    const rootPem = Buffer.from(server.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join(''));
    const c = agentApiClient({ port: server.agentPort, trustDomain: TD, rootPem, ...(identity ? { identity } : {}) });
    clients.push(c);
    return c;
  }

  /** Attests through `server` with a join token made through `admin`. */
  async function attest(admin: AdminClient, server: RunningServer): Promise<{ id: string; client: AgentClient }> {
    const token = (await unary<{ token: string }>((cb) => admin.CreateJoinToken({ spiffe_id: '', ttl: 600 }, cb))).token;
    const { csr, keyPem } = keyAndCsr();
    const res = await runAttestation(agentClient(server).AttestAgent(), {
      type: 'join_token',
      payload: Buffer.from(token),
      csr,
      respond: () => Promise.reject(new Error('join_token has no challenge')),
    });
    return { id: res.spiffe_id, client: agentClient(server, { keyPem, chain: res.svid_chain }) };
  }

  function sync(client: AgentClient) {
    const messages: SyncAuthorizedEntriesResponse__Output[] = [];
    const waiters: Array<() => void> = [];
    const call = client.SyncAuthorizedEntries({});
    call.on('data', (m: SyncAuthorizedEntriesResponse__Output) => {
      messages.push(m);
      waiters.splice(0).forEach((w) => w());
    });
    call.on('error', () => waiters.splice(0).forEach((w) => w()));
    return {
      messages,
      call,
      async until(pred: () => boolean): Promise<void> {
        while (!pred()) await new Promise<void>((r) => waiters.push(r));
      },
    };
  }

  it('an entry created through server 1 is pushed to an agent of server 2 (its token also made on server 1), and a deletion too', async () => {
    const [admin1] = admins;
    const [, server2] = servers;
    const agent = await attest(admin1!, server2!);
    const stream = sync(agent.client);
    await stream.until(() => stream.messages.length >= 1);
    expect(stream.messages[0]).toMatchObject({ full: true, entries: [] });
    const created = await unary<{ id: string }>((cb) =>
      admin1!.CreateEntry({ entry: { spiffe_id: `spiffe://${TD}/web`, parent_id: agent.id, selectors: [{ type: 'unix', value: 'uid:1000' }] } }, cb),
    );
    await stream.until(() => stream.messages.length >= 2);
    expect(stream.messages[1]).toMatchObject({ full: false, removed_entry_ids: [] });
    expect(stream.messages[1]!.entries.map((e) => [e.id, e.spiffe_id])).toEqual([[created.id, `spiffe://${TD}/web`]]);
    await unary((cb) => admin1!.DeleteEntry({ id: created.id }, cb));
    await stream.until(() => stream.messages.length >= 3);
    expect(stream.messages[2]).toMatchObject({ full: false, entries: [], removed_entry_ids: [created.id] });
    stream.call.cancel();
  });

  it('"everything changed" makes the agent stream do a full pass: an entry written without any change event is sent', async () => {
    const [admin1] = admins;
    const [server1, server2] = servers;
    const agent = await attest(admin1!, server2!);
    const stream = sync(agent.client);
    await stream.until(() => stream.messages.length >= 1);
    // Written straight into the shared database: no server announced it (as when a notification is lost).
    const silent = await server1!.datastore.createEntry({
      spiffeId: `spiffe://${TD}/silent`,
      parentId: agent.id,
      selectors: [{ type: 'unix', value: 'uid:1001' }],
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      dnsNames: [],
      federatesWith: [],
      hint: '',
      admin: false,
      downstream: false,
    });
    // A change event for some other ID does not make a full pass, so the silent entry is not sent by it...
    server2!.feed.bundlesChanged();
    // ...while "everything changed" does.
    server2!.feed.everythingChanged();
    await stream.until(() => stream.messages.some((m) => m.entries.some((e) => e.id === silent.id)));
    const carrying = stream.messages.find((m) => m.entries.some((e) => e.id === silent.id))!;
    expect(carrying.entries.map((e) => e.id)).toEqual([silent.id]);
    stream.call.cancel();
  });
  it('each server signs with its own intermediate and JWT key, the bundle holds both keys, and a taint made on server 1 reaches an agent of server 2', async () => {
    const [server1, server2] = servers;
    expect(server1!.ca.serverId).toMatch(/^server-[0-9a-f]{12}$/);
    expect(server2!.ca.serverId).not.toBe(server1!.ca.serverId);
    expect(server2!.ca.activeX509().row.id).not.toBe(server1!.ca.activeX509().row.id);
    const kids = [server1!.ca.activeJwt().kid, server2!.ca.activeJwt().kid].sort();
    for (let i = 0; [...server1!.ca.bundle().jwt.keys().keys()].sort().join() !== kids.join(); i++) {
      if (i > 100) throw new Error('server 1 did not pick up server 2\'s JWT key');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect([...server2!.ca.bundle().jwt.keys().keys()].sort()).toEqual(kids);
    const agent = await attest(admins[0]!, server2!);
    const stream = sync(agent.client);
    await stream.until(() => stream.messages.length >= 1);
    expect(stream.messages[0]).toMatchObject({ has_tainted: true, tainted_x509_authorities: [] });
    const out = await server1!.ca.taintAuthority('x509', undefined);
    const fp = certFingerprint(out.row.certDer!);
    await stream.until(() => stream.messages.some((m) => m.has_tainted && m.tainted_x509_authorities.includes(fp)));
    stream.call.cancel();
  });
});
