// The AttestAgent stream (ca/agentapi/attest.ts): malformed streams and every
// bound, with exact statuses. The server's TLS listener with the default
// attestors (join_token) for what needs no challenge; a second agent API
// server on the same CA with a challenge/response attestor for the rest.
import { createHmac, randomBytes, X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import { runAttestation } from '../../node-agent/connection.js';
import type { AttestationAttempt, NodeAttestor as AgentNodeAttestor } from '../../node-agent/nodeattestor/NodeAttestor.js';
import { loadAdminProto, loadAgentProto } from '../../proto/load.js';
import type { AdminClient } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { AgentClient } from '../../proto/gen/anchorage/agent/v1/Agent.js';
import type { AttestAgentResponse__Output } from '../../proto/gen/anchorage/agent/v1/AttestAgentResponse.js';
import { X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { keyAndCsr } from '../../test/helpers/csr.js';
import { agentApiClient, callStatus, type CallStatus } from '../../test/helpers/agent-api.js';
import { captureLogger } from '../../test/helpers/log.js';
import { nodeAttestorContract } from '../../test/contract/node-attestor.js';
import type { Challenge, NodeAttestation, NodeAttestor } from '../nodeattestor/NodeAttestor.js';
import { NodeAttestorRegistry } from '../nodeattestor/registry.js';
import type { RunningServer } from '../server.js';
import { startInProcessServer, type InProcessServer } from '../../test/helpers/in-process-server.js';
import { ATTESTATION_LIMITS } from './attest.js';
import { agentHandlers } from './service.js';

const TD = 'attest.test';
const SECRET = randomBytes(32);
/** The second server's total time per attestation. */
const TIMEOUT_MS = 2_000;

/**
 * A challenge/response attestor for the tests (no built-in one has a
 * challenge yet): the payload names the node; each challenge is a fresh
 * nonce, answered by HMAC(secret, nonce). `rounds` challenges per attestation.
 */
class HmacAttestor implements NodeAttestor {
  readonly type = 'hmac_test';
  constructor(
    readonly rounds = 1,
    readonly pauseAfterAnswerMs = 0,
  ) {}

  async attest(payload: Buffer, challenge: Challenge): Promise<NodeAttestation> {
    const name = payload.toString('utf8');
    if (!/^[a-z0-9-]{1,32}$/.test(name)) throw invalid('hmac_test: payload must be a node name');
    for (let i = 0; i < this.rounds; i++) {
      const nonce = randomBytes(32);
      const answer = await challenge(nonce);
      if (this.pauseAfterAnswerMs) await sleep(this.pauseAfterAnswerMs);
      if (!answer.equals(createHmac('sha256', SECRET).update(nonce).digest())) throw new AnchorageError('permission_denied', 'hmac_test: wrong answer');
    }
    return { agentIdPath: `/anchorage/agent/hmac_test/${name}`, selectors: [{ type: 'hmac_test', value: name }] };
  }
}

class HmacAgent implements AgentNodeAttestor {
  readonly type = 'hmac_test';
  constructor(readonly name: string) {}
  async begin(): Promise<AttestationAttempt> {
    return {
      payload: Buffer.from(this.name),
      respond: async (c) => createHmac('sha256', SECRET).update(c).digest(),
      refused: () => undefined,
      expects: (id) => id.endsWith(`/anchorage/agent/hmac_test/${this.name}`),
    };
  }
}

nodeAttestorContract('hmac_test (challenge/response; checks the suite itself)', {
  challenges: true,
  trustDomain: TD,
  async setup() {
    return { server: new HmacAttestor(), agent: new HmacAgent('node-c'), expectedAgentIdPath: '/anchorage/agent/hmac_test/node-c' };
  },
});

let running: InProcessServer;
let server: RunningServer;
let admin: AdminClient;
let rootPem: Buffer;
/** Agent API servers with the test attestors. */
const extra: grpc.Server[] = [];
const logs = captureLogger();

/** An anonymous client of the real server's TLS agent API (join_token only). */
function tlsClient(): AgentClient {
  return agentApiClient({ port: server.agentPort, trustDomain: TD, rootPem });
}

/** A second agent API on the same CA and datastore, with these attestors (plaintext: only the stream is under test). */
async function testServer(attestors: NodeAttestor[]): Promise<AgentClient> {
  const s = new grpc.Server();
  s.addService(
    loadAgentProto().anchorage.agent.v1.Agent.service,
    agentHandlers({
      datastore: server.datastore,
      ca: server.ca,
      minter: server.minter,
      feed: server.feed,
      agentSvidTtl: 600,
      logger: logs.logger,
      nodeAttestors: new NodeAttestorRegistry(attestors),
      attestationLimits: { timeoutMs: TIMEOUT_MS },
    }),
  );
  const port = await new Promise<number>((resolve, reject) =>
    s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  extra.push(s);
  return new (loadAgentProto().anchorage.agent.v1.Agent)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** Writes `messages` on a fresh stream (then half-closes if `end`), and collects what comes back until the status. */
function raw(client: AgentClient, messages: object[], opts: { end?: boolean; onChallenge?: (c: Buffer, call: grpc.ClientDuplexStream<object, AttestAgentResponse__Output>) => void } = {}) {
  const call = client.AttestAgent() as unknown as grpc.ClientDuplexStream<object, AttestAgentResponse__Output>;
  const got: AttestAgentResponse__Output[] = [];
  const done = new Promise<CallStatus>((resolve) => {
    call.on('data', (m: AttestAgentResponse__Output) => {
      got.push(m);
      if (m.step === 'challenge' && opts.onChallenge) opts.onChallenge(m.challenge!, call);
    });
    call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) resolve({ code: s.code, details: '' });
    });
  });
  for (const m of messages) call.write(m);
  if (opts.end) call.end();
  return { done, got };
}

function params(type: string, payload: Buffer | string, csr: Buffer = keyAndCsr().csr) {
  return { params: { attestation_type: type, payload: Buffer.from(payload), csr } };
}

async function token(): Promise<string> {
  return new Promise((resolve, reject) =>
    admin.CreateJoinToken({ spiffe_id: '', ttl: 600 }, (err, res) => (err ? reject(err) : resolve(res!.token))),
  );
}

const hmac = (c: Buffer) => createHmac('sha256', SECRET).update(c).digest();

beforeAll(async () => {
  running = await startInProcessServer('anchorage-attest-', { trust_domain: TD }, { logger: logs.logger });
  server = running.server;
  admin = new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${running.cfg.admin_socket}`, grpc.credentials.createInsecure());
  rootPem = Buffer.from(running.rootPem);
});

afterAll(async () => {
  for (const s of extra) s.forceShutdown();
  admin?.close();
  await running?.close();
});

describe('AttestAgent stream: malformed streams on the real server (join_token)', () => {
  it('refuses a first message that is not params (a challenge_response, or no step at all) and a stream ended before params', async () => {
    const c = tlsClient();
    try {
      expect(await raw(c, [{ challenge_response: Buffer.from('x') }]).done).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'agent api: the first message must be params',
      });
      expect(await raw(c, [{}]).done).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: the first message must be params' });
      expect(await raw(c, [], { end: true }).done).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: the stream ended before params' });
    } finally {
      c.close();
    }
  });

  it('refuses unknown, empty and overlong attestation types, naming the enabled ones', async () => {
    const c = tlsClient();
    try {
      expect(await raw(c, [params('tpm', 'x')], { end: true }).done).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'agent api: node attestor "tpm" is not enabled on this server (enabled: join_token)',
      });
      expect(await raw(c, [params('', 'x')], { end: true }).done).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'agent api: params.attestation_type is required',
      });
      expect(await raw(c, [params('a'.repeat(65), 'x')], { end: true }).done).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'agent api: params.attestation_type is longer than 64 characters',
      });
    } finally {
      c.close();
    }
  });

  it('records every refused attestation in the audit log: status, requested attestor, peer, reason', async () => {
    const c = tlsClient();
    try {
      await server.audit.flush();
      const before = server.audit.headSeq;
      expect((await raw(c, [params('tpm', 'x')], { end: true }).done).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await raw(c, [params('join_token', 'not-a-token')], { end: true }).done).code).toBe(grpc.status.PERMISSION_DENIED);
      await server.audit.flush();
      const refused = (await server.audit.list({ afterSeq: before, limit: 100 })).filter((r) => r.type === 'agent.attestation_refused');
      expect(refused.map((r) => [r.outcome, r.details!.attestor])).toEqual([
        ['INVALID_ARGUMENT', 'tpm'],
        ['PERMISSION_DENIED', 'join_token'],
      ]);
      expect(refused[0]!.details!.reason).toBe('agent api: node attestor "tpm" is not enabled on this server (enabled: join_token)');
      expect(refused[1]!.details!.peer).toMatch(/^(127\.0\.0\.1|\[?::ffff:127\.0\.0\.1\]?):\d+$/);
      // The evidence itself is never recorded.
      expect(JSON.stringify(refused)).not.toContain('not-a-token');
      expect((await server.audit.verify()).ok).toBe(true);
    } finally {
      c.close();
    }
  });

  it('refuses an oversize payload and an oversize csr without spending the token', async () => {
    const c = tlsClient();
    try {
      const t = await token();
      const big = Buffer.alloc(ATTESTATION_LIMITS.maxPayloadBytes + 1, 0x61);
      expect(await raw(c, [params('join_token', big)], { end: true }).done).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'agent api: params.payload is larger than 65536 bytes',
      });
      expect(await raw(c, [params('join_token', t, Buffer.alloc(ATTESTATION_LIMITS.maxCsrBytes + 1))], { end: true }).done).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'agent api: params.csr is larger than 16384 bytes',
      });
      // The token was not spent by either.
      const { done, got } = raw(c, [params('join_token', t)], { end: true });
      expect(await done).toEqual({ code: grpc.status.OK, details: '' });
      expect(got.map((m) => m.step)).toEqual(['result']);
      expect(got[0]!.result!.spiffe_id).toBe(`spiffe://${TD}/anchorage/agent/join_token/${t}`);
    } finally {
      c.close();
    }
  });
});

describe('AttestAgent stream: challenge and response (test attestor on a second agent API)', () => {
  it('a good answer gives an SVID for the attestor’s agent ID; a wrong one is PERMISSION_DENIED', async () => {
    const c = await testServer([new HmacAttestor()]);
    const { csr } = keyAndCsr();
    const res = await runAttestation(c.AttestAgent(), { type: 'hmac_test', payload: Buffer.from('node-1'), csr, respond: async (ch) => hmac(ch) });
    expect(res.spiffe_id).toBe(`spiffe://${TD}/anchorage/agent/hmac_test/node-1`);
    const bundle = new X509Bundle(TrustDomain.parse(TD), server.ca.bundle().x509.authorities());
    expect(verifyX509Svid(res.svid_chain, () => bundle).spiffeId.toString()).toBe(res.spiffe_id);
    expect(new X509Certificate(res.svid_chain[0]!).ca).toBe(false);
    const agent = await server.datastore.getAgent(res.spiffe_id);
    expect(agent).toMatchObject({ attestationType: 'hmac_test', selectors: [{ type: 'hmac_test', value: 'node-1' }], evicted: false });

    const wrong = await callStatus(
      runAttestation(c.AttestAgent(), { type: 'hmac_test', payload: Buffer.from('node-2'), csr, respond: async (ch) => hmac(Buffer.concat([ch, Buffer.from('x')])) }),
    );
    expect(wrong).toEqual({ code: grpc.status.PERMISSION_DENIED, details: 'hmac_test: wrong answer' });
    // Only the attestor's own types are enabled here.
    expect(await raw(c, [params('join_token', 'x')], { end: true }).done).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'agent api: node attestor "join_token" is not enabled on this server (enabled: hmac_test)',
    });
    c.close();
  });

  it('refuses params sent twice, an answer without a challenge and an oversize answer', async () => {
    const c = await testServer([new HmacAttestor(1, 500)]);
    const twice = raw(c, [params('hmac_test', 'node-3')], { onChallenge: (_ch, call) => call.write(params('hmac_test', 'node-3')) });
    expect(await twice.done).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: params may be sent only once, as the first message' });
    // The attestor pauses after the answer: the second answer arrives with no challenge pending.
    const unasked = raw(c, [params('hmac_test', 'node-4')], {
      onChallenge: (ch, call) => {
        call.write({ challenge_response: hmac(ch) });
        call.write({ challenge_response: hmac(ch) });
      },
    });
    expect(await unasked.done).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: challenge_response sent without a challenge' });
    const big = raw(c, [params('hmac_test', 'node-5')], {
      onChallenge: (_ch, call) => call.write({ challenge_response: Buffer.alloc(ATTESTATION_LIMITS.maxChallengeBytes + 1) }),
    });
    expect(await big.done).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: challenge_response is larger than 65536 bytes' });
    c.close();
  });

  it(`stops at ${ATTESTATION_LIMITS.maxRounds} challenge rounds`, async () => {
    const c = await testServer([new HmacAttestor(ATTESTATION_LIMITS.maxRounds + 1)]);
    const { done, got } = raw(c, [params('hmac_test', 'node-6')], { onChallenge: (ch, call) => call.write({ challenge_response: hmac(ch) }) });
    expect(await done).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'agent api: attestation needs more than 4 challenge rounds' });
    expect(got.length).toBe(ATTESTATION_LIMITS.maxRounds);
    c.close();
  });

  it('an agent that closes its side before answering is refused at once', async () => {
    const c = await testServer([new HmacAttestor()]);
    expect(await raw(c, [params('hmac_test', 'node-7')], { end: true }).done).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'agent api: the agent closed its side of the stream before answering a challenge',
    });
    c.close();
  });

  it('an agent that never answers gets DEADLINE_EXCEEDED at the time limit', async () => {
    const c = await testServer([new HmacAttestor()]);
    const { done, got } = raw(c, [params('hmac_test', 'node-8')]);
    expect(await done).toEqual({ code: grpc.status.DEADLINE_EXCEEDED, details: 'agent api: attestation did not finish within 2s' });
    expect(got.map((m) => m.step)).toEqual(['challenge']);
    expect(await server.datastore.getAgent(`spiffe://${TD}/anchorage/agent/hmac_test/node-8`)).toBeUndefined();
    c.close();
  });
});
