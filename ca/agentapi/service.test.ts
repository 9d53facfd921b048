import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdminProto } from '../../proto/load.js';
import type { AdminClient } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { AgentClient } from '../../proto/gen/anchorage/agent/v1/Agent.js';
import type { SyncAuthorizedEntriesResponse__Output } from '../../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import { SpiffeBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { runAttestation } from '../../node-agent/connection.js';
import { keyAndCsr } from '../../test/helpers/csr.js';
import { agentApiClient, callStatus, type CallStatus, unary } from '../../test/helpers/agent-api.js';
import { captureLogger } from '../../test/helpers/log.js';
import type { RunningServer } from '../server.js';
import { startInProcessServer, type InProcessServer } from '../../test/helpers/in-process-server.js';

const TD = 'agents.test';
const td = TrustDomain.parse(TD);
let running: InProcessServer;
let server: RunningServer;
let admin: AdminClient;
let rootPem: Buffer;
/** The server's log, for the refusals it must record. */
const logs = captureLogger();

function agentClient(identity?: { keyPem: string; chain: Uint8Array[] }): AgentClient {
  return agentApiClient({ port: server.agentPort, trustDomain: TD, rootPem, ...(identity ? { identity } : {}) });
}

interface TestAgent {
  id: string;
  keyPem: string;
  chain: Uint8Array[];
  client: AgentClient;
}

/** AttestAgent with a join token, as the agent makes it (node-agent/connection.ts). */
function attestCall(client: AgentClient, joinToken: string, csr: Uint8Array) {
  return runAttestation(client.AttestAgent(), {
    type: 'join_token',
    payload: Buffer.from(joinToken),
    csr,
    respond: () => Promise.reject(new Error('join_token has no challenge')),
  });
}

async function token(spiffeId = ''): Promise<string> {
  return (await unary<{ token: string }>((cb) => admin.CreateJoinToken({ spiffe_id: spiffeId, ttl: 600 }, cb))).token;
}

async function attest(joinToken?: string): Promise<TestAgent> {
  const t = joinToken ?? (await token());
  const { csr, keyPem } = keyAndCsr();
  const anon = agentClient();
  const res = await attestCall(anon, t, csr);
  anon.close();
  return { id: res.spiffe_id, keyPem, chain: res.svid_chain, client: agentClient({ keyPem, chain: res.svid_chain }) };
}

async function createEntry(spiffeId: string, parentId: string): Promise<string> {
  const e = await unary<{ id: string }>((cb) =>
    admin.CreateEntry({ entry: { spiffe_id: spiffeId, parent_id: parentId, selectors: [{ type: 'unix', value: 'uid:1000' }] } }, cb),
  );
  return e.id;
}

/** Collects the messages of a sync stream; resolves `next()` with each new one. */
function sync(agent: TestAgent) {
  const messages: SyncAuthorizedEntriesResponse__Output[] = [];
  const waiters: Array<() => void> = [];
  let ended: CallStatus | undefined;
  const call = agent.client.SyncAuthorizedEntries({});
  call.on('data', (m: SyncAuthorizedEntriesResponse__Output) => {
    messages.push(m);
    waiters.splice(0).forEach((w) => w());
  });
  call.on('error', (e: grpc.ServiceError) => {
    ended = { code: e.code, details: e.details };
    waiters.splice(0).forEach((w) => w());
  });
  return {
    messages,
    call,
    ended: () => ended,
    async until(pred: () => boolean): Promise<void> {
      while (!pred()) await new Promise<void>((r) => waiters.push(r));
    },
  };
}

beforeAll(async () => {
  running = await startInProcessServer('anchorage-agentapi-', { trust_domain: TD }, { logger: logs.logger });
  server = running.server;
  admin = new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${running.cfg.admin_socket}`, grpc.credentials.createInsecure());
  rootPem = Buffer.from(running.rootPem);
});

afterAll(async () => {
  admin?.close();
  await running?.close();
});

describe('agent API', () => {
  it('serves TLS with the server SVID spiffe://<td>/anchorage/server', () => {
    const cert = server.tlsIdentity.currentCertificate();
    expect(cert.subjectAltName).toBe(`URI:spiffe://${TD}/anchorage/server`);
  });

  it('attests an agent with a join token: its SVID names the token and chains to the bundle', async () => {
    const t = await token();
    const a = await attest(t);
    expect(a.id).toBe(`spiffe://${TD}/anchorage/agent/join_token/${t}`);
    const bundle = new X509Bundle(td, server.ca.bundle().x509.authorities());
    expect(verifyX509Svid(a.chain, () => bundle).spiffeId.toString()).toBe(a.id);
    // single use
    expect((await callStatus(attest(t))).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('refuses a bad CSR without spending the token, and unknown tokens', async () => {
    const t = await token();
    const anon = agentClient();
    const bad = await callStatus(attestCall(anon, t, Buffer.from('junk')));
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toMatch(/^csr: /);
    expect((await attest(t)).id).toContain(t); // still usable
    const unknown = await callStatus(attestCall(anon, '0'.repeat(32), keyAndCsr().csr));
    expect(unknown).toEqual({ code: grpc.status.PERMISSION_DENIED, details: 'agent api: join token is unknown, used or expired' });
    const empty = await callStatus(attestCall(anon, '', keyAndCsr().csr));
    expect(empty).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: join_token is required' });
    anon.close();
  });

  it('requires the agent SVID on every other call', async () => {
    const anon = agentClient();
    const r = await callStatus(unary((cb) => anon.MintJWTSVID({ entry_id: 'x', audience: ['a'] }, cb)));
    expect(r).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'agent api: this call needs the agent svid as client certificate' });
    anon.close();
  });

  it('pushes authorized entries at once and signs only for them; another agent is refused', async () => {
    const a = await attest();
    const b = await attest();
    const stream = sync(a);
    await stream.until(() => stream.messages.length >= 1);
    expect(stream.messages[0]!.entries).toEqual([]);
    expect(SpiffeBundle.parse(td, stream.messages[0]!.bundle).x509.size).toBe(1);

    expect(stream.messages[0]!.full).toBe(true);

    const entryId = await createEntry(`spiffe://${TD}/web`, a.id);
    await stream.until(() => stream.messages.length >= 2);
    expect(stream.messages[1]!.full).toBe(false);
    expect(stream.messages[1]!.entries.map((e) => [e.id, e.spiffe_id, e.selectors])).toEqual([[entryId, `spiffe://${TD}/web`, ['unix:uid:1000']]]);

    // Later messages carry only the change: a second entry comes alone, a deletion as its ID.
    const second = await createEntry(`spiffe://${TD}/second`, a.id);
    await stream.until(() => stream.messages.length >= 3);
    expect(stream.messages[2]!.entries.map((e) => e.id)).toEqual([second]);
    expect(stream.messages[2]!.removed_entry_ids).toEqual([]);
    await unary((cb) => admin.DeleteEntry({ id: second }, cb));
    await stream.until(() => stream.messages.length >= 4);
    expect(stream.messages[3]).toMatchObject({ full: false, entries: [], removed_entry_ids: [second] });
    // A new stream starts from the full set again.
    const again = sync(a);
    await again.until(() => again.messages.length >= 1);
    expect(again.messages[0]!.full).toBe(true);
    expect(again.messages[0]!.entries.map((e) => e.id)).toEqual([entryId]);
    again.call.cancel();

    const { csr } = keyAndCsr();
    const signed = await unary<{ results: Array<{ entry_id: string; chain: Buffer[] }> }>((cb) => a.client.BatchSignX509SVID({ params: [{ entry_id: entryId, csr }] }, cb));
    expect(new X509Certificate(signed.results[0]!.chain[0]!).subjectAltName).toBe(`URI:spiffe://${TD}/web`);

    const stolen = await callStatus(unary((cb) => b.client.BatchSignX509SVID({ params: [{ entry_id: entryId, csr }] }, cb)));
    expect(stolen).toEqual({ code: grpc.status.PERMISSION_DENIED, details: `agent api: agent ${b.id} is not authorized for entry ${entryId}` });
    const stolenJwt = await callStatus(unary((cb) => b.client.MintJWTSVID({ entry_id: entryId, audience: ['x'] }, cb)));
    expect(stolenJwt.code).toBe(grpc.status.PERMISSION_DENIED);
    const jwt = await unary<{ token: string }>((cb) => a.client.MintJWTSVID({ entry_id: entryId, audience: ['x'] }, cb));
    expect(JSON.parse(Buffer.from(jwt.token.split('.')[1]!, 'base64url').toString()).sub).toBe(`spiffe://${TD}/web`);
    stream.call.cancel();
  });

  it('node aliases: a token created for an ID authorizes its agent for entries parented by that ID', async () => {
    const alias = `spiffe://${TD}/cluster/east`;
    const a = await attest(await token(alias));
    const entryId = await createEntry(`spiffe://${TD}/east-worker`, alias);
    const stream = sync(a);
    await stream.until(() => stream.messages.some((m) => m.entries.some((e) => e.id === entryId)));
    const other = await attest();
    const refused = await callStatus(unary((cb) => other.client.MintJWTSVID({ entry_id: entryId, audience: ['x'] }, cb)));
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);

    // An alias made while the stream is open: its entries arrive; deleting the alias takes them away.
    const otherStream = sync(other);
    await otherStream.until(() => otherStream.messages.length >= 1);
    const lateAlias = `spiffe://${TD}/cluster/west`;
    const token2 = other.id.split('/').pop()!;
    const westWorker = await createEntry(`spiffe://${TD}/west-worker`, lateAlias);
    const aliasEntry = await unary<{ id: string }>((cb) =>
      admin.CreateEntry({ entry: { spiffe_id: lateAlias, parent_id: `spiffe://${TD}/anchorage/server`, selectors: [{ type: 'join_token', value: token2 }] } }, cb),
    );
    await otherStream.until(() => otherStream.messages.some((m) => m.entries.some((e) => e.id === westWorker)));
    await unary((cb) => admin.DeleteEntry({ id: aliasEntry.id }, cb));
    await otherStream.until(() => otherStream.messages.some((m) => m.removed_entry_ids.includes(westWorker)));
    expect((await callStatus(unary((cb) => other.client.MintJWTSVID({ entry_id: westWorker, audience: ['x'] }, cb)))).code).toBe(grpc.status.PERMISSION_DENIED);
    otherStream.call.cancel();
    stream.call.cancel();
  });

  it('answers malformed authenticated calls with INVALID_ARGUMENT', async () => {
    const a = await attest();
    const entryId = await createEntry(`spiffe://${TD}/bad-input`, a.id);
    const none = await callStatus(unary((cb) => a.client.BatchSignX509SVID({ params: [] }, cb)));
    expect(none).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: params must not be empty' });
    const many = Array.from({ length: 501 }, () => ({ entry_id: entryId, csr: Buffer.from('x') }));
    const tooMany = await callStatus(unary((cb) => a.client.BatchSignX509SVID({ params: many }, cb)));
    expect(tooMany).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: at most 500 csrs per call' });
    const badCsr = await callStatus(unary((cb) => a.client.BatchSignX509SVID({ params: [{ entry_id: entryId, csr: Buffer.from('junk') }] }, cb)));
    expect(badCsr.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badCsr.details).toMatch(/^csr: not valid DER/);
    const noAud = await callStatus(unary((cb) => a.client.MintJWTSVID({ entry_id: entryId, audience: [] }, cb)));
    expect(noAud).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'jwtsvid: at least one audience is required' });
    const noCsr = await callStatus(unary((cb) => a.client.RenewAgent({ csr: Buffer.alloc(0) }, cb)));
    expect(noCsr).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: csr is required' });
  });

  it('records what an agent reports, refuses bad reports and anonymous callers', async () => {
    const anon = agentClient();
    expect(await callStatus(unary((cb) => anon.ReportState({ bundle_sequence: 1, agent_time_ms: Date.now() }, cb)))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      details: 'agent api: this call needs the agent svid as client certificate',
    });
    anon.close();
    const a = await attest();
    const noTime = await callStatus(unary((cb) => a.client.ReportState({ bundle_sequence: 1, agent_time_ms: 0 }, cb)));
    expect(noTime).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: agent_time_ms is required' });
    const negative = await callStatus(unary((cb) => a.client.ReportState({ bundle_sequence: -1, agent_time_ms: Date.now() }, cb)));
    expect(negative).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: bundle_sequence must be a whole number' });
    const getAgent = () => unary<{ last_seen_at: number; bundle_sequence: number; clock_skew_ms: number }>((cb) => admin.GetAgent({ spiffe_id: a.id }, cb));
    expect(await getAgent()).toMatchObject({ last_seen_at: 0, bundle_sequence: 0, clock_skew_ms: 0 });
    // An agent clock an hour ahead: the skew is about +3,600,000 ms whatever the call took.
    const before = Date.now();
    await unary((cb) => a.client.ReportState({ bundle_sequence: 4, agent_time_ms: before + 3_600_000 }, cb));
    const first = await getAgent();
    expect(first.bundle_sequence).toBe(4);
    expect(first.last_seen_at).toBeGreaterThanOrEqual(Math.floor(before / 1000));
    expect(first.clock_skew_ms).toBeLessThanOrEqual(3_600_000);
    expect(first.clock_skew_ms).toBeGreaterThan(3_500_000);
  });

  it('renewal supersedes the old SVID', async () => {
    const a = await attest();
    const { csr, keyPem } = keyAndCsr();
    const renewed = await unary<{ svid_chain: Buffer[] }>((cb) => a.client.RenewAgent({ csr }, cb));
    expect(new X509Certificate(renewed.svid_chain[0]!).subjectAltName).toBe(`URI:${a.id}`);
    const old = await callStatus(unary((cb) => a.client.MintJWTSVID({ entry_id: 'none', audience: ['x'] }, cb)));
    expect(old).toEqual({ code: grpc.status.PERMISSION_DENIED, details: `agent api: the svid presented by ${a.id} has been superseded` });
    const fresh = agentClient({ keyPem, chain: renewed.svid_chain });
    const r = await callStatus(unary((cb) => fresh.MintJWTSVID({ entry_id: 'none', audience: ['x'] }, cb)));
    expect(r.details).toBe(`agent api: agent ${a.id} is not authorized for entry none`);
    fresh.close();
  });

  it('eviction ends the agent stream with PERMISSION_DENIED and refuses its calls from then on', async () => {
    const a = await attest();
    const stream = sync(a);
    await stream.until(() => stream.messages.length >= 1);
    const evicted = await unary<{ evicted: boolean }>((cb) => admin.EvictAgent({ spiffe_id: a.id }, cb));
    expect(evicted.evicted).toBe(true);
    await stream.until(() => stream.ended() !== undefined);
    expect(stream.ended()).toEqual({ code: grpc.status.PERMISSION_DENIED, details: `agent api: agent ${a.id} has been evicted` });
    const after = await callStatus(unary((cb) => a.client.MintJWTSVID({ entry_id: 'x', audience: ['a'] }, cb)));
    expect(after).toEqual({ code: grpc.status.PERMISSION_DENIED, details: `agent api: agent ${a.id} has been evicted` });
    const listed = await unary<{ agents: Array<{ spiffe_id: string; evicted: boolean }> }>((cb) => admin.ListAgents({}, cb));
    expect(listed.agents.find((x) => x.spiffe_id === a.id)?.evicted).toBe(true);
    const missing = await callStatus(unary((cb) => admin.EvictAgent({ spiffe_id: `spiffe://${TD}/anchorage/agent/none` }, cb)));
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
  });
  it('never sends or signs an entry of the reserved namespace that an older datastore holds, and logs the refusal', async () => {
    const a = await attest();
    const victim = await attest();
    const stream = sync(a);
    await stream.until(() => stream.messages.length >= 1);
    const victimEntry = await createEntry(`spiffe://${TD}/victim-db`, victim.id);
    // What the admin API refuses today, written as an older version let it in.
    const fields = { x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', admin: false, downstream: false };
    const impostor = await server.datastore.createEntry({ ...fields, spiffeId: `spiffe://${TD}/anchorage/server`, parentId: a.id, selectors: [{ type: 'unix', value: 'uid:1000' }] });
    // A node alias naming another agent would hand a the victim's entries.
    const alias = await server.datastore.createEntry({
      ...fields,
      spiffeId: victim.id,
      parentId: `spiffe://${TD}/anchorage/server`,
      selectors: [{ type: 'join_token', value: a.id.split('/').pop()! }],
    });
    server.feed.entriesChanged([impostor.id, alias.id]);
    const marker = await createEntry(`spiffe://${TD}/after-reserved`, a.id);
    await stream.until(() => stream.messages.some((m) => m.entries.some((e) => e.id === marker)));
    const fresh = sync(a);
    await fresh.until(() => fresh.messages.length >= 1);
    for (const s of [stream, fresh]) {
      const sent = s.messages.flatMap((m) => m.entries.map((e) => e.id));
      expect(sent).toContain(marker);
      expect(sent).not.toContain(impostor.id);
      expect(sent).not.toContain(victimEntry);
    }
    fresh.call.cancel();
    stream.call.cancel();

    const refusal = {
      code: grpc.status.PERMISSION_DENIED,
      details: `agent api: entry ${impostor.id} names spiffe://${TD}/anchorage/server, in the namespace reserved for anchorage itself (/anchorage/...); it is never signed`,
    };
    const { csr } = keyAndCsr();
    expect(await callStatus(unary((cb) => a.client.BatchSignX509SVID({ params: [{ entry_id: marker, csr }, { entry_id: impostor.id, csr }] }, cb)))).toEqual(refusal);
    expect(await callStatus(unary((cb) => a.client.MintJWTSVID({ entry_id: impostor.id, audience: ['x'] }, cb)))).toEqual(refusal);
    expect(await callStatus(unary((cb) => a.client.MintJWTSVID({ entry_id: victimEntry, audience: ['x'] }, cb)))).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: `agent api: agent ${a.id} is not authorized for entry ${victimEntry}`,
    });
    const logged = logs.records.filter((r) => r.msg === 'agent api: refused to sign an entry in the reserved namespace' && r.entry === impostor.id);
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({ level: 40, agent: a.id, spiffeId: `spiffe://${TD}/anchorage/server` });
  });
});
