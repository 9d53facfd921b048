import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { loadAdminProto, loadAgentProto } from '../../proto/load.js';
import type { AdminClient } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { AuthorizedEntry__Output } from '../../proto/gen/anchorage/agent/v1/AuthorizedEntry.js';
import type { SyncAuthorizedEntriesResponse, SyncAuthorizedEntriesResponse__Output } from '../../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import { runAttestation } from '../../node-agent/connection.js';
import { WorkloadCache } from '../../node-agent/cache.js';
import { applySyncMessage, SyncAssembler } from '../../node-agent/agent/sync.js';
import { keyAndCsr } from '../../test/helpers/csr.js';
import { agentApiClient, unary } from '../../test/helpers/agent-api.js';
import { captureLogger } from '../../test/helpers/log.js';
import type { RunningServer } from '../server.js';
import { startInProcessServer, type InProcessServer } from '../../test/helpers/in-process-server.js';
import { responseSize, splitPass, SYNC_MESSAGE_LIMIT } from './sync-chunks.js';

const TD = 'chunks.test';
const method = loadAgentProto().anchorage.agent.v1.Agent.service.SyncAuthorizedEntries;
const encode = (m: SyncAuthorizedEntriesResponse) => method.responseSerialize(m as never);

function entry(i: number, extra: Partial<AuthorizedEntry__Output> = {}): AuthorizedEntry__Output {
  return {
    id: `id-${i}`,
    spiffe_id: `spiffe://${TD}/workload/${i}`,
    selectors: ['unix:uid:1000', `unix:gid:${i}`],
    x509_svid_ttl: 0,
    jwt_svid_ttl: 300,
    dns_names: [],
    federates_with: [],
    hint: '',
    revision: i + 1,
    ...extra,
  };
}

describe('sync message sizes', () => {
  it('responseSize is the exact encoded size', () => {
    const cases: SyncAuthorizedEntriesResponse[] = [
      {},
      { full: true, more: true, has_tainted: true },
      { bundle: '{"keys":[]}', federated_bundles: { 'a.test': 'x'.repeat(300), 'b.test': '' } },
      { entries: [entry(1), entry(2, { hint: 'héllo ✓', dns_names: ['a.example', ''], federates_with: ['a.test'], x509_svid_ttl: 86400 })] },
      { entries: [entry(2 ** 40, { revision: 2 ** 52 })], removed_entry_ids: ['x', '', 'y'.repeat(200)] },
      { tainted_x509_authorities: ['ab'.repeat(32)], tainted_jwt_authorities: ['kid', ''] },
    ];
    for (const c of cases) expect(responseSize(c)).toBe(encode(c).length);
  });

  it('splits a pass by encoded size: every message within the bound, the items in order, head first, more on all but the last', () => {
    const entries = Array.from({ length: 3000 }, (_, i) => entry(i, { hint: 'h'.repeat(i % 97) }));
    const removed = Array.from({ length: 500 }, (_, i) => `gone-${i}`);
    const head = { bundle: 'B'.repeat(5000), federated_bundles: { 'f.test': 'F'.repeat(100) }, has_tainted: true, tainted_x509_authorities: ['aa'] };
    const limit = 32 * 1024;
    const parts = splitPass(head, false, entries, removed, limit);
    expect(parts.length).toBeGreaterThan(10);
    for (const p of parts) {
      expect(encode(p).length).toBeLessThanOrEqual(limit);
      expect(p.full).toBe(false);
    }
    expect(parts.map((p) => p.more)).toEqual([...parts.slice(1).map(() => true), false]);
    expect(parts[0]!.bundle).toBe(head.bundle);
    expect(parts[0]!.tainted_x509_authorities).toEqual(['aa']);
    expect(parts.slice(1).every((p) => p.bundle === undefined && p.has_tainted === undefined)).toBe(true);
    expect(parts.flatMap((p) => p.entries!)).toEqual(entries);
    expect(parts.flatMap((p) => p.removed_entry_ids!)).toEqual(removed);
    // An empty pass is one message.
    expect(splitPass({ bundle: 'b' }, true, [], [])).toEqual([{ bundle: 'b', full: true, entries: [], removed_entry_ids: [], more: false }]);
  });
});

describe('SyncAssembler', () => {
  const msg = (m: Partial<SyncAuthorizedEntriesResponse__Output>): SyncAuthorizedEntriesResponse__Output => ({
    entries: [],
    bundle: '',
    federated_bundles: {},
    full: false,
    removed_entry_ids: [],
    has_tainted: false,
    tainted_x509_authorities: [],
    tainted_jwt_authorities: [],
    more: false,
    ...m,
  });

  it('returns a one-message pass as is, and joins a pass of several: entries and removals of all, bundles of the first', () => {
    const a = new SyncAssembler();
    const single = msg({ full: true, bundle: 'b', entries: [entry(1)] });
    expect(a.add(single)).toBe(single);
    expect(a.add(msg({ bundle: 'b2', has_tainted: true, tainted_jwt_authorities: ['k'], entries: [entry(2)], more: true }))).toBeUndefined();
    expect(a.buffered).toBe(1);
    expect(a.add(msg({ entries: [entry(3)], removed_entry_ids: ['r1'], more: true }))).toBeUndefined();
    const pass = a.add(msg({ removed_entry_ids: ['r2'] }));
    expect(pass).toEqual(msg({ bundle: 'b2', has_tainted: true, tainted_jwt_authorities: ['k'], entries: [entry(2), entry(3)], removed_entry_ids: ['r1', 'r2'] }));
    expect(a.buffered).toBe(0);
  });

  it('bounds a more chain that never ends, by messages and by bytes, and refuses a pass that changes full', () => {
    const a = new SyncAssembler({ messages: 100, bytes: 1 << 20 });
    let thrown: unknown;
    let n = 0;
    try {
      for (; n < 1_000_000; n++) a.add(msg({ more: true }));
    } catch (err) {
      thrown = err;
    }
    expect(n).toBe(100);
    expect((thrown as Error).message).toBe(
      'agent: a sync pass from the server exceeds what the agent buffers (101 messages, about 0 bytes of entries; at most 100 messages and 1048576 bytes)',
    );
    expect(a.buffered).toBe(0);

    const big = entry(1, { hint: 'x'.repeat(100_000) });
    const b = new SyncAssembler({ messages: 1000, bytes: 1 << 20 });
    n = 0;
    thrown = undefined;
    try {
      for (; n < 1000; n++) b.add(msg({ more: true, entries: [big] }));
    } catch (err) {
      thrown = err;
    }
    expect(n).toBe(10); // the 11th message passes 1 MiB of entries
    expect((thrown as Error).message).toMatch(/^agent: a sync pass from the server exceeds what the agent buffers \(11 messages, about \d+ bytes of entries; at most 1000 messages and 1048576 bytes\)$/);

    const c = new SyncAssembler();
    c.add(msg({ full: true, more: true }));
    expect(() => c.add(msg({ full: false }))).toThrow('agent: the server changed full in the middle of a sync pass');
    // The stream fails there; a new assembler (a new stream) starts clean.
    expect(c.buffered).toBe(0);
  });
});

describe('an agent authorized for 30,000 entries', () => {
  const ENTRIES = 30_000;
  let running: InProcessServer;
  let server: RunningServer;
  let admin: AdminClient;
  let rootPem: Buffer;
  const logs = captureLogger();

  beforeAll(async () => {
    running = await startInProcessServer('anchorage-chunks-', { trust_domain: TD }, { logger: logs.logger });
    server = running.server;
    admin = new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${running.cfg.admin_socket}`, grpc.credentials.createInsecure());
    rootPem = Buffer.from(running.rootPem);
  });

  afterAll(async () => {
    admin?.close();
    await running?.close();
  });

  it('syncs completely in messages of at most 1 MiB, and an incremental update after that still works', { timeout: 120_000 }, async () => {
    const joinToken = (await unary<{ token: string }>((cb) => admin.CreateJoinToken({ spiffe_id: '', ttl: 600 }, cb))).token;
    const { csr, keyPem } = keyAndCsr();
    const anon = agentApiClient({ port: server.agentPort, trustDomain: TD, rootPem });
    const att = await runAttestation(anon.AttestAgent(), {
      type: 'join_token',
      payload: Buffer.from(joinToken),
      csr,
      respond: () => Promise.reject(new Error('join_token has no challenge')),
    });
    anon.close();
    const agentId = att.spiffe_id;
    for (let at = 0; at < ENTRIES; at += 10_000) {
      const entries = Array.from({ length: 10_000 }, (_, k) => ({
        spiffe_id: `spiffe://${TD}/ns/production/sa/service-account-${at + k}/workload`,
        parent_id: agentId,
        selectors: [
          { type: 'unix', value: `uid:${at + k}` },
          { type: 'unix', value: 'gid:1000' },
        ],
        dns_names: [`service-${at + k}.production.svc.cluster.local`],
      }));
      const res = await unary<{ results: { code: number }[] }>((cb) => admin.BatchCreateEntry({ entries }, cb));
      expect(res.results.every((r) => r.code === 0)).toBe(true);
    }

    // A raw stream (gRPC's default 4 MiB receive limit) that records each message's encoded size.
    const client = agentApiClient({ port: server.agentPort, trustDomain: TD, rootPem, identity: { keyPem, chain: att.svid_chain } });
    const sizes: number[] = [];
    const passes: SyncAuthorizedEntriesResponse__Output[] = [];
    const waiters: Array<() => void> = [];
    let failed: grpc.ServiceError | undefined;
    const call = client.makeServerStreamRequest(
      method.path,
      method.requestSerialize,
      (buf: Buffer) => {
        sizes.push(buf.length);
        return method.responseDeserialize(buf);
      },
      {},
    );
    const assembler = new SyncAssembler();
    call.on('data', (m: SyncAuthorizedEntriesResponse__Output) => {
      const pass = assembler.add(m);
      if (pass) passes.push(pass);
      waiters.splice(0).forEach((w) => w());
    });
    call.on('error', (e: grpc.ServiceError) => {
      failed = e;
      waiters.splice(0).forEach((w) => w());
    });
    const until = async (pred: () => boolean) => {
      while (!pred() && !failed) await new Promise<void>((r) => waiters.push(r));
      expect(failed).toBeUndefined();
    };

    const td = TrustDomain.parse(TD);
    const cache = new WorkloadCache(TD, () => Math.floor(Date.now() / 1000), () => Promise.reject(new Error('no jwt here')));
    const lastBundles: { docs?: string } = {};
    await until(() => passes.length >= 1);
    applySyncMessage(td, cache, logs.logger, false, passes[0]!, lastBundles);
    expect(passes[0]!.full).toBe(true);
    expect(passes[0]!.entries.length).toBe(ENTRIES);
    expect(cache.size).toBe(ENTRIES);
    expect(cache.bundle(TD)).toBeDefined();
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(4 * 1024 * 1024); // one message would have hit gRPC's limit
    expect(sizes.length).toBeGreaterThanOrEqual(Math.ceil(total / SYNC_MESSAGE_LIMIT));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(SYNC_MESSAGE_LIMIT);

    // An incremental update: one entry changed, one deleted.
    const all = cache.entries();
    const changedId = all[0]!.id;
    const deletedId = all[1]!.id;
    const before = sizes.length;
    await unary((cb) => admin.UpdateEntry({ id: changedId, patch: { hint: 'changed' } }, cb));
    await unary((cb) => admin.DeleteEntry({ id: deletedId }, cb));
    await until(() => passes.some((p) => p.removed_entry_ids.includes(deletedId)));
    for (const p of passes.slice(1)) {
      expect(p.full).toBe(false);
      applySyncMessage(td, cache, logs.logger, true, p, lastBundles);
    }
    expect(sizes.length - before).toBe(passes.length - 1); // each a one-message pass
    expect(cache.size).toBe(ENTRIES - 1);
    expect(cache.entries().find((e) => e.id === changedId)!.hint).toBe('changed');
    expect(cache.entries().some((e) => e.id === deletedId)).toBe(false);
    call.cancel();
    client.close();
  });
});
