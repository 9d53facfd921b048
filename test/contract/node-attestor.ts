// The contract every node attestor pair (server side in ca/nodeattestor/,
// agent side in node-agent/nodeattestor/) must keep, run by each
// implementation's own test file. The stream, its bounds and the CSR belong
// to the agent API (ca/agentapi/attest.test.ts); this is about the evidence.
import { describe, expect, it } from 'vitest';
import { AnchorageError, isAnchorageError } from '@anchorage/client/errors';
import { ATTESTATION_LIMITS } from '../../ca/agentapi/attest.js';
import type { Challenge, NodeAttestor } from '../../ca/nodeattestor/NodeAttestor.js';
import type { NodeAttestor as AgentNodeAttestor } from '../../node-agent/nodeattestor/NodeAttestor.js';

/** One fresh pair: the agent's evidence is good exactly once. */
export interface NodeAttestorFixture {
  server: NodeAttestor;
  agent: AgentNodeAttestor;
  /** The agent ID path the server must give this agent. */
  expectedAgentIdPath: string;
  cleanup?(): Promise<void>;
}

export interface NodeAttestorPair {
  /** Makes a fresh fixture; called once per check. */
  setup(): Promise<NodeAttestorFixture>;
  /** True when the server side asks challenges (tpm, x509pop); join_token asks none. */
  challenges: boolean;
  /** Trust domain for the agent's `expects` check. */
  trustDomain: string;
}

/** What the attestor's `challenge` calls looked like. */
interface Rounds {
  count: number;
}

/** Runs one attestation the way the agent API and the agent do, without the network. */
async function attestOnce(
  f: NodeAttestorFixture,
  opts: { rounds?: Rounds; tamper?: (answer: Buffer) => Buffer } = {},
): Promise<{ agentIdPath: string; expects: (id: string) => boolean }> {
  const attempt = await f.agent.begin();
  const challenge: Challenge = async (c) => {
    if (opts.rounds) opts.rounds.count++;
    expect(c.length).toBeLessThanOrEqual(ATTESTATION_LIMITS.maxChallengeBytes);
    const answer = await attempt.respond(c);
    return opts.tamper ? opts.tamper(answer) : answer;
  };
  try {
    f.server.precheck?.(attempt.payload);
    const r = await f.server.attest(attempt.payload, challenge);
    return { agentIdPath: r.agentIdPath, expects: attempt.expects };
  } catch (err) {
    if (isAnchorageError(err, 'permission_denied')) attempt.refused();
    throw err;
  }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err, String(err)).toBeInstanceOf(AnchorageError);
    return (err as AnchorageError).code;
  }
}

async function withFixture(pair: NodeAttestorPair, fn: (f: NodeAttestorFixture) => Promise<void>): Promise<void> {
  const f = await pair.setup();
  try {
    await fn(f);
  } finally {
    await f.cleanup?.();
  }
}

/** Registers the shared checks for one node attestor pair. */
export function nodeAttestorContract(name: string, pair: NodeAttestorPair): void {
  describe(`node attestor contract: ${name}`, () => {
    it('server and agent sides have the same type', async () => {
      await withFixture(pair, async (f) => {
        expect(f.server.type).toBe(f.agent.type);
        expect(f.server.type).toMatch(/^[a-z0-9_]{1,64}$/);
      });
    });

    it('the happy path gives the expected agent ID, under /anchorage/agent/<type>/, and the agent recognises it', async () => {
      await withFixture(pair, async (f) => {
        const rounds = { count: 0 };
        const r = await attestOnce(f, { rounds });
        expect(r.agentIdPath).toBe(f.expectedAgentIdPath);
        expect(r.agentIdPath.startsWith(`/anchorage/agent/${f.server.type}/`)).toBe(true);
        expect(r.expects(`spiffe://${pair.trustDomain}${r.agentIdPath}`)).toBe(true);
        expect(r.expects(`spiffe://${pair.trustDomain}/anchorage/agent/${f.server.type}/someone-else`)).toBe(false);
        if (pair.challenges) expect(rounds.count).toBeGreaterThan(0);
        else expect(rounds.count).toBe(0);
        expect(rounds.count).toBeLessThanOrEqual(ATTESTATION_LIMITS.maxRounds);
      });
    });

    it('evidence that was used is refused when replayed (permission_denied)', async () => {
      await withFixture(pair, async (f) => {
        const attempt = await f.agent.begin();
        const answers: Buffer[] = [];
        const first = await f.server.attest(attempt.payload, async (c) => {
          const a = await attempt.respond(c);
          answers.push(a);
          return a;
        });
        expect(first.agentIdPath).toBe(f.expectedAgentIdPath);
        // The same bytes again, answers included: a recorded exchange played back.
        let i = 0;
        const replay = f.server.attest(attempt.payload, async () => answers[i++] ?? Buffer.alloc(0));
        expect(await codeOf(replay)).toBe('permission_denied');
      });
    });

    it('a wrong challenge response is refused (permission_denied), and an attestor without challenges never asks one', async () => {
      await withFixture(pair, async (f) => {
        const rounds = { count: 0 };
        const flip = (a: Buffer) => {
          const b = Buffer.from(a.length > 0 ? a : Buffer.alloc(1));
          b[0]! ^= 0x01;
          return b;
        };
        const p = attestOnce(f, { rounds, tamper: flip });
        if (pair.challenges) {
          expect(await codeOf(p)).toBe('permission_denied');
        } else {
          expect((await p).agentIdPath).toBe(f.expectedAgentIdPath);
          expect(rounds.count).toBe(0);
        }
      });
    });

    it('an oversize or garbage payload is refused (invalid_argument or permission_denied), spending nothing', async () => {
      await withFixture(pair, async (f) => {
        const big = Buffer.alloc(ATTESTATION_LIMITS.maxPayloadBytes + 1, 0x61);
        const never: Challenge = () => Promise.reject(new AnchorageError('invalid_argument', 'contract: no challenge expected for garbage'));
        for (const bad of [big, Buffer.from('not evidence'), Buffer.alloc(0)]) {
          const code = await codeOf(
            (async () => {
              f.server.precheck?.(bad);
              return f.server.attest(bad, never);
            })(),
          );
          expect(['invalid_argument', 'permission_denied']).toContain(code);
        }
        // The agent's good evidence is still good.
        expect((await attestOnce(f)).agentIdPath).toBe(f.expectedAgentIdPath);
      });
    });
  });
}
