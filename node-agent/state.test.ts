import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { STATE_FILE, emptyState, loadState, saveState, type AgentState } from './state.js';

const TD = 'example.org';
let dir: string;
let file: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-state-'));
  file = join(dir, STATE_FILE);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A state as the agent writes it: an identity and bundles. */
const full: AgentState = {
  version: 2,
  trustDomain: TD,
  agent: { spiffeId: `spiffe://${TD}/anchorage/agent/join_token/abc`, keyPkcs8: 'AAAA', chain: ['MIIB', 'MIIC'], notBefore: 1, notAfter: 2 },
  bundle: '{"keys":[]}',
  federated: { 'other.org': '{"keys":[]}' },
};

/** What an older version wrote: the same, plus every entry and workload SVID with its private key. */
const version1 = {
  ...full,
  version: 1,
  entries: [{ id: 'e1', spiffeId: `spiffe://${TD}/w`, selectors: ['unix:uid:0'], x509SvidTtl: 60, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: 'h', revision: 3 }],
  svids: { e1: { entryId: 'e1', revision: 3, keyPkcs8: 'AAAA', chain: ['MIIB'], notBefore: 1, notAfter: 2, rotateAt: 1 } },
};

/** The refusal loadState gives for the file holding `text`. */
function refusal(text: string): string {
  writeFileSync(file, text);
  try {
    loadState(dir, TD);
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).code).toBe('failed_precondition');
    return (err as AnchorageError).message;
  }
  throw new Error(`expected a refusal of ${text}`);
}

/** `full` as JSON, with `edit` applied to a copy of it. */
function edited(edit: (s: Record<string, any>) => void): string {
  const s = JSON.parse(JSON.stringify(full)) as Record<string, any>;
  edit(s);
  return JSON.stringify(s);
}

describe('loadState', () => {
  it('loads back what saveState wrote: a full state, an empty one, one without an identity', () => {
    for (const s of [full, emptyState(TD), { ...full, agent: undefined, bundle: undefined }]) {
      saveState(dir, s);
      expect(loadState(dir, TD)).toEqual(JSON.parse(JSON.stringify(s)));
    }
  });

  it('writes the identity and bundles alone: no workload key, whatever the caller passes', () => {
    saveState(dir, version1 as unknown as AgentState);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(full);
  });

  it('reads a version 1 file for its identity and bundles, drops its entries and workload svids, and marks it to be rewritten', () => {
    writeFileSync(file, JSON.stringify(version1));
    expect(loadState(dir, TD)).toEqual({ ...full, legacy: true });
  });

  it('loads a state written before federation (no "federated") with none', () => {
    writeFileSync(file, edited((s) => delete s.federated));
    expect(loadState(dir, TD)).toEqual({ ...full, federated: {} });
  });

  it.each([
    ['null', 'null'],
    ['an array', '[]'],
    ['a number', '1'],
    ['another version', '{"version":3}'],
  ])('refuses %s as an unknown format', (_name, text) => {
    expect(refusal(text)).toBe(`agent: ${file} has an unknown format; move it away to start afresh`);
  });

  it.each<[string, (s: Record<string, any>) => void, string]>([
    ['federated: null', (s) => (s.federated = null), 'federated: expected record, received null'],
    ['a bundle that is a number', (s) => (s.bundle = 5), 'bundle: expected string, received number'],
    ['agent.chain: 1', (s) => (s.agent.chain = 1), 'agent.chain: expected array, received number'],
    ['agent: a string', (s) => (s.agent = 'x'), 'agent: expected object, received string'],
    ['an agent with no key', (s) => delete s.agent.keyPkcs8, 'agent.keyPkcs8: expected string, received undefined'],
    ['an agent chain member that is not a string', (s) => (s.agent.chain = ['MIIB', null]), 'agent.chain[1]: expected string, received null'],
    ['an infinite notAfter', (s) => (s.agent.notAfter = 'INF'), 'agent.notAfter: expected number, received Infinity'],
    ['a federated bundle that is not a string', (s) => (s.federated['other.org'] = {}), 'federated["other.org"]: expected string, received object'],
    ['a trust domain with ESC', (s) => (s.trustDomain = 'evil\u001b[2J'), 'trustDomain: not a trust domain name'],
    ['a number as trust domain', (s) => (s.trustDomain = 5), 'trustDomain: expected string, received number'],
  ])('refuses %s, naming the key path', (_name, edit, problem) => {
    // JSON has no Infinity: 1e999 parses as one.
    const text = edited(edit).replace('"INF"', '1e999');
    expect(refusal(text)).toBe(`agent: ${file} is not valid agent state (${problem}); move it away to start afresh`);
  });

  it('quotes key paths taken from the file: no control character reaches the message', () => {
    const text = edited((s) => (s.federated = { 'e\u001b[2J\n1': 1 }));
    expect(refusal(text)).toBe(
      `agent: ${file} is not valid agent state (federated["e\\u001b[2J\\n1"]: expected string, received number); move it away to start afresh`,
    );
  });

  it('refuses the state of another trust domain', () => {
    expect(refusal(edited((s) => (s.trustDomain = 'evil.org')))).toBe(`agent: ${file} belongs to trust domain "evil.org", not "${TD}"`);
  });
});
