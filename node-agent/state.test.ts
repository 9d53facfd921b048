import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

/** A state as the agent writes it: an identity, bundles, one entry and its SVID. */
const full: AgentState = {
  version: 1,
  trustDomain: TD,
  agent: { spiffeId: `spiffe://${TD}/anchorage/agent/join_token/abc`, keyPkcs8: 'AAAA', chain: ['MIIB', 'MIIC'], notBefore: 1, notAfter: 2 },
  bundle: '{"keys":[]}',
  federated: { 'other.org': '{"keys":[]}' },
  entries: [{ id: 'e1', spiffeId: `spiffe://${TD}/w`, selectors: ['unix:uid:0'], x509SvidTtl: 60, jwtSvidTtl: 0, dnsNames: ['w.example.org'], federatesWith: ['other.org'], hint: 'h', revision: 3 }],
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

  it('loads a state written before federation (no "federated") with none', () => {
    writeFileSync(file, edited((s) => delete s.federated));
    expect(loadState(dir, TD)).toEqual({ ...full, federated: {} });
  });

  it.each([
    ['null', 'null'],
    ['an array', '[]'],
    ['a number', '1'],
    ['another version', '{"version":2}'],
  ])('refuses %s as an unknown format', (_name, text) => {
    expect(refusal(text)).toBe(`agent: ${file} has an unknown format; move it away to start afresh`);
  });

  it.each<[string, (s: Record<string, any>) => void, string]>([
    ['svids: null', (s) => (s.svids = null), 'svids: expected record, received null'],
    ['entries missing', (s) => delete s.entries, 'entries: expected array, received undefined'],
    ['agent.chain: 1', (s) => (s.agent.chain = 1), 'agent.chain: expected array, received number'],
    ['agent: a string', (s) => (s.agent = 'x'), 'agent: expected object, received string'],
    ['an entry that is a number', (s) => (s.entries[0] = 7), 'entries[0]: expected object, received number'],
    ['an entry selector that is not a string', (s) => (s.entries[0].selectors = ['unix:uid:0', null]), 'entries[0].selectors[1]: expected string, received null'],
    ['an svid with no key', (s) => delete s.svids.e1.keyPkcs8, 'svids.e1.keyPkcs8: expected string, received undefined'],
    ['an infinite notAfter', (s) => (s.svids.e1.notAfter = 'INF'), 'svids.e1.notAfter: expected number, received Infinity'],
    ['a federated bundle that is not a string', (s) => (s.federated['other.org'] = {}), 'federated["other.org"]: expected string, received object'],
    ['a trust domain with ESC', (s) => (s.trustDomain = 'evil\u001b[2J'), 'trustDomain: not a trust domain name'],
    ['a number as trust domain', (s) => (s.trustDomain = 5), 'trustDomain: expected string, received number'],
  ])('refuses %s, naming the key path', (_name, edit, problem) => {
    // JSON has no Infinity: 1e999 parses as one.
    const text = edited(edit).replace('"INF"', '1e999');
    expect(refusal(text)).toBe(`agent: ${file} is not valid agent state (${problem}); move it away to start afresh`);
  });

  it('quotes key paths taken from the file: no control character reaches the message', () => {
    const text = edited((s) => (s.svids = { 'e\u001b[2J\n1': { ...s.svids.e1, chain: [1] } }));
    expect(refusal(text)).toBe(
      `agent: ${file} is not valid agent state (svids["e\\u001b[2J\\n1"].chain[0]: expected string, received number); move it away to start afresh`,
    );
  });

  it('refuses the state of another trust domain', () => {
    expect(refusal(edited((s) => (s.trustDomain = 'evil.org')))).toBe(`agent: ${file} belongs to trust domain "evil.org", not "${TD}"`);
  });
});
