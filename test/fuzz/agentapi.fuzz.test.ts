import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../ca/config.js';
import { startServer, type RunningServer } from '../../ca/server.js';
import { toPem } from '@anchorage/client/pem';
import { loadAdminProto } from '../../proto/load.js';
import type { AdminClient } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { AgentClient } from '../../proto/gen/anchorage/agent/v1/Agent.js';
import { runAttestation } from '../../node-agent/connection.js';
import { agentApiClient, agentApiVerifyOptions, callStatus, unary, type CallStatus } from '../helpers/agent-api.js';
import { keyAndCsr } from '../helpers/csr.js';
import { mutate, mutationArb, params, testTimeout } from './fuzz.js';

/**
 * The agent API (ca/agentapi/service.ts) receiving malformed requests over
 * a real gRPC server on loopback TLS: random CSR bytes, huge and empty
 * batches, unknown entry IDs, odd audiences, random join tokens, and raw
 * random protobuf bytes. Every answer is OK or a clear status
 * (INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED) with a
 * module-prefixed message; never INTERNAL or UNKNOWN, and the server never
 * logs an unexpected error.
 */

const TD = 'fuzz-agents.test';
let dir: string;
let server: RunningServer;
let admin: AdminClient;
let anon: AgentClient;
let agent: AgentClient;
let agentId: string;
let entryId: string;
const validCsr = keyAndCsr().csr;
/** Errors the server logged as unexpected (bugs), collected from its real logger. */
const unexpected: string[] = [];

type Status = CallStatus;

/** AttestAgent with a join token, as the agent makes it (node-agent/connection.ts). */
function attestCall(client: AgentClient, joinToken: string, csr: Uint8Array) {
  return runAttestation(client.AttestAgent(), {
    type: 'join_token',
    payload: Buffer.from(joinToken),
    csr,
    respond: () => Promise.reject(new Error('join_token has no challenge')),
  });
}

function rootPem(): Buffer {
  return Buffer.from(server.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join(''));
}

function agentClient(identity?: { keyPem: string; chain: Uint8Array[] }): AgentClient {
  return agentApiClient({ port: server.agentPort, trustDomain: TD, rootPem: rootPem(), ...(identity ? { identity } : {}) });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-fuzz-agentapi-'));
  const cfg = parseServerConfig(
    { trust_domain: TD, data_dir: dir, admin_socket: 'admin.sock', bind_address: '127.0.0.1:0', key_manager: { type: 'memory' }, ca: { ttl: '24h' } },
    'test',
    dir,
  );
  const logger = pino(
    { level: 'error' },
    {
      write(line: string) {
        const rec = JSON.parse(line) as { msg?: string; err?: { message?: string } };
        if (rec.msg === 'unexpected error') unexpected.push(rec.err?.message ?? line);
      },
    },
  );
  server = await startServer(cfg, { logger });
  admin = new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${cfg.admin_socket}`, grpc.credentials.createInsecure());
  anon = agentClient();
  const token = (await unary<{ token: string }>((cb) => admin.CreateJoinToken({ spiffe_id: '', ttl: 600 }, cb))).token;
  const { csr, keyPem } = keyAndCsr();
  const res = await attestCall(anon, token, csr);
  agentId = res.spiffe_id;
  agent = agentClient({ keyPem, chain: res.svid_chain });
  const e = await unary<{ id: string }>((cb) =>
    admin.CreateEntry({ entry: { spiffe_id: `spiffe://${TD}/w`, parent_id: agentId, selectors: [{ type: 'unix', value: 'uid:1000' }] } }, cb),
  );
  entryId = e.id;
}, 120_000);

afterAll(async () => {
  anon?.close();
  agent?.close();
  admin?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The clear answers; the message prefix says which module refused. */
const CLEAR: Record<number, RegExp> = {
  [grpc.status.INVALID_ARGUMENT]: /^(agent api|csr|jwtsvid|x509svid|spiffeid|minter|ca): \S/,
  [grpc.status.PERMISSION_DENIED]: /^agent api: \S/,
  [grpc.status.UNAUTHENTICATED]: /^agent api: \S/,
};

function expectClear(s: Status, allowOk: boolean): void {
  if (s.code === grpc.status.OK) {
    expect(allowOk, 'unexpected OK').toBe(true);
    return;
  }
  const re = CLEAR[s.code];
  expect(re, `status ${grpc.status[s.code]}: ${s.details}`).toBeDefined();
  // Not "one line": "not authorized for entry <id>" echoes the caller's own
  // entry_id back to it, newlines included (see the report).
  expect(s.details).toMatch(re!);
}

const csrArb = fc.oneof(
  fc.constant(validCsr),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.array(mutationArb(), { minLength: 1, maxLength: 3 }).map((m) => Buffer.from(mutate(validCsr, m))),
  fc.constant(Buffer.alloc(0)),
);
const entryIdArb = () => fc.oneof(fc.constant(entryId), fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 10 }), fc.constant(''));

describe('fuzz: agent API requests (ca/agentapi/service.ts over real gRPC)', () => {
  afterAll(() => {
    // The server's own verdict: nothing reached the "unexpected error" path.
    expect(unexpected).toEqual([]);
  });

  it(
    'AttestAgent: random join tokens and CSRs are refused clearly and spend nothing',
    async () => {
      const tokenArb = fc.oneof(fc.string({ maxLength: 40 }), fc.stringMatching(/^[0-9a-f]{32}$/), fc.string({ unit: 'binary', maxLength: 40 }), fc.constant(''));
      await fc.assert(
        fc.asyncProperty(tokenArb, csrArb, async (join_token, csr) => {
          const s = await callStatus(attestCall(anon, join_token, csr));
          expectClear(s, false);
          if (join_token === '') expect(s.details).toBe('agent api: join_token is required');
        }),
        params(300),
      );
    },
    testTimeout(),
  );

  it(
    'BatchSignX509SVID: empty and huge batches, unknown entries and bad CSRs get clear statuses; good requests are signed',
    async () => {
      const batch = fc.oneof(
        { weight: 4, arbitrary: fc.array(fc.record({ entry_id: entryIdArb(), csr: csrArb }), { maxLength: 4 }) },
        { weight: 1, arbitrary: fc.integer({ min: 499, max: 2000 }).map((n) => Array.from({ length: n }, () => ({ entry_id: 'nope', csr: Buffer.alloc(1) }))) },
      );
      await fc.assert(
        fc.asyncProperty(batch, async (p) => {
          const s = await callStatus(unary((cb) => agent.BatchSignX509SVID({ params: p }, cb)));
          const good = p.length > 0 && p.length <= 500 && p.every((x) => x.entry_id === entryId && x.csr === validCsr);
          expectClear(s, good);
          if (good) expect(s.code).toBe(grpc.status.OK);
          else if (p.length === 0) expect(s.details).toBe('agent api: params must not be empty');
          else if (p.length > 500) expect(s.details).toBe('agent api: at most 500 csrs per call');
          else if (p.some((x) => x.entry_id !== entryId)) expect(s.code).toBe(grpc.status.PERMISSION_DENIED);
        }),
        params(300),
      );
    },
    testTimeout(),
  );

  it(
    'MintJWTSVID: odd audiences and unknown entries get clear statuses',
    async () => {
      const audArb = fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constant(''), fc.constant(' '), fc.integer({ min: 1020, max: 1030 }).map((n) => 'a'.repeat(n)), fc.string({ unit: 'binary', maxLength: 8 })), { maxLength: 5 });
      await fc.assert(
        fc.asyncProperty(entryIdArb(), audArb, async (entry_id, audience) => {
          const s = await callStatus(unary((cb) => agent.MintJWTSVID({ entry_id, audience }, cb)));
          const good = entry_id === entryId && audience.length > 0 && audience.every((a) => a.trim() !== '' && a.length <= 1024);
          expectClear(s, good);
          if (good) expect(s.code).toBe(grpc.status.OK);
          if (entry_id !== entryId) expect(s.code).toBe(grpc.status.PERMISSION_DENIED);
        }),
        params(300),
      );
    },
    testTimeout(),
  );

  it(
    'RenewAgent and the authenticated calls without a client certificate get clear statuses',
    async () => {
      await fc.assert(
        fc.asyncProperty(csrArb, fc.boolean(), async (csr, authenticated) => {
          const client = authenticated ? agent : anon;
          const s = await callStatus(unary((cb) => client.RenewAgent({ csr }, cb)));
          // A successful renewal would supersede the agent's SVID for the other properties: only refusals are sent.
          if (authenticated && csr === validCsr) return;
          expectClear(s, false);
          if (!authenticated) expect(s).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'agent api: this call needs the agent svid as client certificate' });
        }),
        params(200),
      );
    },
    testTimeout(),
  );

  it(
    'raw random protobuf bytes to every method: a clear status, or grpc-js\'s own "Error deserializing request"',
    async () => {
      const methods = ['AttestAgent', 'RenewAgent', 'BatchSignX509SVID', 'MintJWTSVID'];
      const raw = new grpc.Client(`127.0.0.1:${server.agentPort}`, grpc.credentials.createSsl(rootPem(), null, null, agentApiVerifyOptions(TD)));
      try {
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...methods), fc.uint8Array({ maxLength: 300 }), async (method, bytes) => {
            const s = await callStatus(
              new Promise((resolve, reject) =>
                raw.makeUnaryRequest(
                  `/anchorage.agent.v1.Agent/${method}`,
                  (b: Buffer) => b,
                  (b: Buffer) => b,
                  Buffer.from(bytes),
                  (err, res) => (err ? reject(err) : resolve(res)),
                ),
              ),
            );
            // grpc-js answers undecodable protobuf itself, before any handler runs (as grpc-go does).
            if (s.code === grpc.status.INTERNAL && s.details === 'Error deserializing request') return;
            expectClear(s, false);
          }),
          params(400),
        );
      } finally {
        raw.close();
      }
    },
    testTimeout(),
  );
});
