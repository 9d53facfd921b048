import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATE_FILE, loadState, saveState, type AgentState } from '../../node-agent/state.js';
import { expectClearError, mutate, mutationArb, outcome, params, testTimeout } from './fuzz.js';

/**
 * The agent's state file (node-agent/state.ts): random, truncated and
 * mutated JSON. loadState either returns a state the agent can restore
 * (the shape NodeAgent.#restore relies on) or refuses with
 * failed_precondition "agent: ... move it away to start afresh".
 */

const TD = 'example.org';
let dir: string;
let validText: string;
let validState: AgentState;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-fuzz-state-'));
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64');
  validState = {
    version: 2,
    trustDomain: TD,
    agent: { spiffeId: `spiffe://${TD}/anchorage/agent/join_token/abc`, keyPkcs8: key, chain: ['MIIB'], notBefore: 1, notAfter: 2 },
    bundle: '{"keys":[]}',
    federated: { 'other.org': '{"keys":[]}' },
  };
  // Through the real writer, so the mutations start from what the agent writes.
  saveState(dir, validState);
  validText = readFileSync(join(dir, STATE_FILE), 'utf8');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStrArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);
const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** What NodeAgent.#restore dereferences without checking: the loader must guarantee it. */
function restorable(s: AgentState): string | undefined {
  if (s.agent !== undefined) {
    const a = s.agent as unknown;
    if (!isRecord(a) || !isStr(a.spiffeId) || !isStr(a.keyPkcs8) || !isStrArray(a.chain) || !isNum(a.notBefore) || !isNum(a.notAfter)) return 'agent';
  }
  if (s.bundle !== undefined && !isStr(s.bundle)) return 'bundle';
  if (!isRecord(s.federated) || !Object.values(s.federated).every(isStr)) return 'federated';
  return undefined;
}

function load(text: string | Uint8Array) {
  writeFileSync(join(dir, STATE_FILE), text);
  return outcome(() => loadState(dir, TD));
}

function expectRefusedClearly(err: unknown): void {
  expectClearError(err, 'failed_precondition', `agent: ${join(dir, STATE_FILE)} `);
  expect((err as Error).message).toMatch(/(move it away to start afresh|belongs to trust domain "[^"]*", not "example\.org")$/);
}

type Path = (string | number)[];
function paths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (isRecord(v)) for (const k of Object.keys(v)) paths(v[k], [...at, k], out);
  return out;
}

const wrongValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom<unknown>(null, 0, -1, 1e308, '', 'x', [], {}, [1], { a: 1 }, true));

const mutatedState = fc.array(fc.tuple(fc.nat(), fc.oneof(fc.record({ del: fc.constant(true) }), fc.record({ value: wrongValue }))), { minLength: 1, maxLength: 3 }).map((ops) => {
  const doc = JSON.parse(validText) as unknown;
  for (const [i, op] of ops) {
    const ps = paths(doc).filter((p) => p.length > 0);
    const p = ps[i % ps.length]!;
    // version and trustDomain are checked and have their own refusal; leave them to the other properties.
    if (p[0] === 'version' || p[0] === 'trustDomain') continue;
    const parent = p.slice(0, -1).reduce<Record<string | number, unknown>>((o, k) => o[k] as Record<string | number, unknown>, doc as Record<string, unknown>);
    const k = p[p.length - 1]!;
    if ('del' in op) {
      if (Array.isArray(parent)) parent.splice(k as number, 1);
      else delete parent[k];
    } else parent[k] = op.value;
  }
  return JSON.stringify(doc);
});

describe('fuzz: agent state file (node-agent/state.ts)', () => {
  it(
    'random bytes, random JSON (but a bare null, below) and truncated state files are refused with failed_precondition "agent: "',
    () => {
      const input = fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.string({ unit: 'binary', maxLength: 100 }),
        fc.jsonValue({ maxDepth: 3 }).filter((v) => v !== null).map((v) => JSON.stringify(v)),
        fc.nat().map((n) => validText.slice(0, n % validText.length)),
        fc.array(mutationArb(), { minLength: 1, maxLength: 3 }).map((m) => mutate(Buffer.from(validText), m)),
      );
      fc.assert(
        fc.property(input, (text) => {
          const got = load(text);
          if (got.ok) {
            expect(got.value.version).toBe(2);
            expect(got.value.trustDomain).toBe(TD);
          } else {
            expectRefusedClearly(got.err);
          }
        }),
        params(1000),
      );
    },
    testTimeout(),
  );

  it('the state the agent wrote loads back as it was', () => {
    const got = load(validText);
    expect(got.ok && got.value).toEqual(validState);
    const other = load(validText.replace(`"trustDomain":"${TD}"`, '"trustDomain":"evil.org"'));
    expect(other.ok).toBe(false);
    if (!other.ok) expect((other.err as Error).message).toBe(`agent: ${join(dir, STATE_FILE)} belongs to trust domain "evil.org", not "${TD}"`);
  });

  // Was a bug: `parsed.version` on JSON null threw "TypeError: Cannot read
  // properties of null", and `svids: null` loaded. Fixed in loadState.
  it.each(['null', '{"version":1,"trustDomain":"example.org","entries":[],"svids":null}'])('a state file holding %s is refused clearly', (text) => {
    const got = load(text);
    if (got.ok) {
      // Loaded: then what the agent restores must be usable (svids: null is not).
      expect(restorable(got.value)).toBeUndefined();
    } else {
      expectRefusedClearly(got.err);
    }
  });

  // Was a bug: loadState checked only version, trustDomain, that entries
  // was an array and that svids was an object, so a state with a wrong type
  // inside (agent.chain: 1, svids: null, an entry that is a number) was
  // returned, and NodeAgent.#restore then failed with a TypeError instead of
  // "move it away to start afresh". Fixed: loadState validates the whole
  // shape with a zod schema and names the key path.
  it(
    'mutated state (wrong types, deleted members) is either refused clearly or has the shape the agent restores',
    () => {
      fc.assert(
        fc.property(mutatedState, (text) => {
          const got = load(text);
          if (!got.ok) return expectRefusedClearly(got.err);
          const bad = restorable(got.value);
          expect(bad, `loaded a state with a bad ${bad}: ${text.slice(0, 300)}`).toBeUndefined();
        }),
        params(1000),
      );
    },
    testTimeout(),
  );
});
