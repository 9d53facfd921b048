import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import type { NewEntry } from './datastore/DataStore.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteDataStore } from './datastore/sqlite/index.js';
import { checkFederatesWith, checkSelector, parseSelector, validateEntry } from './entries.js';

const td = TrustDomain.parse('example.org');
const base: NewEntry = {
  spiffeId: 'spiffe://example.org/web',
  parentId: 'spiffe://example.org/agent/1',
  selectors: [{ type: 'unix', value: 'uid:1000' }],
  x509SvidTtl: 0,
  jwtSvidTtl: 0,
  dnsNames: [],
  federatesWith: [],
  hint: '',
  admin: false,
  downstream: false,
};

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).code).toBe('invalid_argument');
    return (err as AnchorageError).message;
  }
  throw new Error('expected an error');
}

const controlTail = 'control and bidirectional formatting characters are not accepted';

describe('parseSelector', () => {
  it('splits at the first colon only', () => {
    expect(parseSelector('unix:uid:1000')).toEqual({ type: 'unix', value: 'uid:1000' });
    expect(parseSelector('k8s:ns:default')).toEqual({ type: 'k8s', value: 'ns:default' });
  });
  it('accepts printable Unicode, well-formed surrogate pairs and 1024 characters', () => {
    for (const value of ['café', 'x\u00a0y', '😀', 'v'.repeat(1024)]) expect(parseSelector(`unix:${value}`)).toEqual({ type: 'unix', value });
  });
  it('checks selectors given as parts (the admin API) the same way', () => {
    expect(message(() => checkSelector({ type: 'unix', value: 'a\u001b[31m' }))).toBe(`entry: selector value for type "unix" contains the control character U+001B; ${controlTail}`);
    expect(message(() => checkSelector({ type: 'x\ny', value: '1' }))).toBe('entry: selector type "x\\ny" must be 1-64 characters of a-z, 0-9, _ or -');
  });
  it.each([
    ['nocolon', 'entry: selector "nocolon" must be type:value (e.g. unix:uid:1000)'],
    [':value', 'entry: selector ":value" must be type:value (e.g. unix:uid:1000)'],
    ['unix:', 'entry: selector "unix:" must be type:value (e.g. unix:uid:1000)'],
    ['Unix:uid:1', 'entry: selector type "Unix" must be 1-64 characters of a-z, 0-9, _ or -'],
    ['unix:' + 'v'.repeat(1025), 'entry: selector value for type "unix" must be 1-1024 printable characters'],
    ['unix:uid\n1', `entry: selector value for type "unix" contains the control character U+000A; ${controlTail}`],
    ['unix:uid:1\u007f', `entry: selector value for type "unix" contains the control character U+007F; ${controlTail}`],
    ['unix:uid:1\u009b', `entry: selector value for type "unix" contains the control character U+009B; ${controlTail}`],
    ['unix:uid:\u202e1', `entry: selector value for type "unix" contains the control character U+202E; ${controlTail}`],
    ['unix:uid:\u061c1', `entry: selector value for type "unix" contains the control character U+061C; ${controlTail}`],
    ['unix:uid:\u200f1', `entry: selector value for type "unix" contains the control character U+200F; ${controlTail}`],
    ['unix:uid:\u20281', `entry: selector value for type "unix" contains the control character U+2028; ${controlTail}`],
    ['unix:uid:\u20671', `entry: selector value for type "unix" contains the control character U+2067; ${controlTail}`],
    ['unix:uid:\ud8001', 'entry: selector value for type "unix" contains the lone surrogate U+D800; text must be well-formed Unicode'],
    ['unix:uid:1\udc00', 'entry: selector value for type "unix" contains the lone surrogate U+DC00; text must be well-formed Unicode'],
    // Quoted, never raw: no line break, escape sequence or bidi override reaches the terminal.
    ['no\ncolon\u001b[2J', 'entry: selector "no\\ncolon\\u001b[2J" must be type:value (e.g. unix:uid:1000)'],
    ['Un\u202eix:uid:1', 'entry: selector type "Un\\u202eix" must be 1-64 characters of a-z, 0-9, _ or -'],
    ['\u0085\u2066x:1', 'entry: selector type "\\u0085\\u2066x" must be 1-64 characters of a-z, 0-9, _ or -'],
    ['\ud800:1', 'entry: selector type "\\ud800" must be 1-64 characters of a-z, 0-9, _ or -'],
    // Cut at 64 characters, with "..." after the quote.
    ['x'.repeat(1 << 20), `entry: selector "${'x'.repeat(64)}"... must be type:value (e.g. unix:uid:1000)`],
    ['T'.repeat(100) + ':v', `entry: selector type "${'T'.repeat(64)}"... must be 1-64 characters of a-z, 0-9, _ or -`],
    // A surrogate pair is not split into a lone half at the cut.
    ['y'.repeat(63) + '😀' + 'z', `entry: selector "${'y'.repeat(63)}"... must be type:value (e.g. unix:uid:1000)`],
  ])('rejects %j', (text, expected) => {
    expect(message(() => parseSelector(text))).toBe(expected);
  });
});

describe('validateEntry', () => {
  it('canonicalizes a good entry: deduplicated DNS names and trust domains', () => {
    const e = validateEntry(
      { ...base, dnsNames: ['a.example.org', 'a.example.org', '*.b.example.org'], federatesWith: ['spiffe://partner.org', 'partner.org'] },
      td,
      86400,
    );
    expect(e.dnsNames).toEqual(['a.example.org', '*.b.example.org']);
    expect(e.federatesWith).toEqual(['partner.org']);
  });

  it.each<[string, Partial<NewEntry>, string | RegExp]>([
    ['id in another trust domain', { spiffeId: 'spiffe://other.org/web' }, 'entry: spiffe id spiffe://other.org/web is not in trust domain example.org'],
    ['id without a path', { spiffeId: 'spiffe://example.org' }, 'entry: spiffe id spiffe://example.org has no path'],
    ['malformed id', { spiffeId: 'spiffe://example.org/a/../b' }, /^spiffeid: /],
    ['parent in another trust domain', { parentId: 'spiffe://other.org/agent' }, 'entry: parent id spiffe://other.org/agent is not in trust domain example.org'],
    ['own parent', { parentId: 'spiffe://example.org/web' }, 'entry: an entry cannot be its own parent'],
    ['no selectors', { selectors: [] }, 'entry: at least one selector is required'],
    ['repeated selector', { selectors: [{ type: 'unix', value: 'uid:1' }, { type: 'unix', value: 'uid:1' }] }, 'entry: selector "unix:uid:1" is repeated'],
    [
      'long repeated selector',
      { selectors: [{ type: 'unix', value: 'v'.repeat(1000) }, { type: 'unix', value: 'v'.repeat(1000) }] },
      `entry: selector "unix:${'v'.repeat(59)}"... is repeated`,
    ],
    ['ttl beyond the CA', { x509SvidTtl: 90000 }, 'entry: x509 ttl of 90000s goes beyond the CA lifetime of 86400s'],
    ['negative ttl', { jwtSvidTtl: -1 }, 'entry: jwt ttl must be a whole number of seconds'],
    ['bad dns name', { dnsNames: ['Upper.example.org'] }, 'entry: "Upper.example.org" is not a valid DNS name (lower-case letters, digits, hyphens; optional leading *.)'],
    ['dns name with ESC', { dnsNames: ['a\u001b[2J.example.org'] }, 'entry: "a\\u001b[2J.example.org" is not a valid DNS name (lower-case letters, digits, hyphens; optional leading *.)'],
    ['long dns name', { dnsNames: ['a'.repeat(5000)] }, `entry: "${'a'.repeat(64)}"... is not a valid DNS name (lower-case letters, digits, hyphens; optional leading *.)`],
    [
      'long id in another trust domain',
      { spiffeId: `spiffe://other.org/${'p'.repeat(2000)}` },
      `entry: spiffe id spiffe://other.org/${'p'.repeat(45)}... is not in trust domain example.org`,
    ],
    ['federates with itself', { federatesWith: ['example.org'] }, 'entry: an entry cannot federate with its own trust domain'],
    ['bad federated trust domain', { federatesWith: ['Bad!'] }, /^spiffeid: /],
    ['long hint', { hint: 'x'.repeat(257) }, 'entry: hint must be at most 256 characters'],
    ['hint with NUL', { hint: 'a\u0000' }, 'entry: hint contains the control character U+0000; control and bidirectional formatting characters are not accepted'],
    ['hint with ESC', { hint: '\u001b[31m' }, 'entry: hint contains the control character U+001B; control and bidirectional formatting characters are not accepted'],
    ['hint with a bidi override', { hint: 'exe.\u202egnp' }, 'entry: hint contains the control character U+202E; control and bidirectional formatting characters are not accepted'],
    ['hint with an isolate', { hint: '\u2068x' }, 'entry: hint contains the control character U+2068; control and bidirectional formatting characters are not accepted'],
    ['the server id', { spiffeId: 'spiffe://example.org/anchorage/server' }, 'entry: spiffe id spiffe://example.org/anchorage/server is in the namespace reserved for anchorage itself (/anchorage/...)'],
    ['an agent id', { spiffeId: 'spiffe://example.org/anchorage/agent/join_token/abc' }, 'entry: spiffe id spiffe://example.org/anchorage/agent/join_token/abc is in the namespace reserved for anchorage itself (/anchorage/...)'],
    ['the namespace itself', { spiffeId: 'spiffe://example.org/anchorage' }, 'entry: spiffe id spiffe://example.org/anchorage is in the namespace reserved for anchorage itself (/anchorage/...)'],
    ['an unknown id under it', { spiffeId: 'spiffe://example.org/anchorage/x/y' }, 'entry: spiffe id spiffe://example.org/anchorage/x/y is in the namespace reserved for anchorage itself (/anchorage/...)'],
  ])('rejects %s', (_name, patch, expected) => {
    const m = message(() => validateEntry({ ...base, ...patch }, td, 86400));
    if (typeof expected === 'string') expect(m).toBe(expected);
    else expect(m).toMatch(expected);
  });
});

describe('reserved namespace and parents', () => {
  it('takes agents and the server as parents, and IDs that only look alike', () => {
    for (const parentId of ['spiffe://example.org/anchorage/agent/join_token/abc', 'spiffe://example.org/anchorage/server']) {
      expect(validateEntry({ ...base, parentId }, td, 86400).parentId).toBe(parentId);
    }
    for (const spiffeId of ['spiffe://example.org/anchorage-ops/x', 'spiffe://example.org/Anchorage/server', 'spiffe://example.org/ns/anchorage/server']) {
      expect(validateEntry({ ...base, spiffeId }, td, 86400).spiffeId).toBe(spiffeId);
    }
  });
});

describe('checkFederatesWith', () => {
  let dir: string;
  let ds: SqliteDataStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'anchorage-entries-'));
    ds = SqliteDataStore.open(join(dir, 'ds.sqlite3'));
  });
  afterAll(async () => {
    await ds?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const refusal = (t: string) =>
    `entry: cannot federate with ${t}: this server holds no bundle of it and no federation relationship with it (add one first: anchorage bundle set, or anchorage federation create)`;

  it('needs a bundle or a relationship of each trust domain not federated with before', async () => {
    await expect(checkFederatesWith(ds, ['nowhere.test'])).rejects.toMatchObject({ code: 'invalid_argument', message: refusal('nowhere.test') });
    await ds.putBundle({ trustDomain: 'bundle.test', document: '{"keys":[]}', sequence: 0, refreshHint: 0, updatedAt: 1 });
    await ds.createRelationship({ trustDomain: 'rel.test', bundleEndpointUrl: 'https://rel.test/', profile: 'https_web', endpointSpiffeId: '', webCaPem: '' }, 1);
    await expect(checkFederatesWith(ds, ['bundle.test', 'rel.test'])).resolves.toBeUndefined();
    await expect(checkFederatesWith(ds, ['bundle.test', 'gone.test'])).rejects.toMatchObject({ message: refusal('gone.test') });
    // Kept from before (its bundle deleted since): not refused again.
    await expect(checkFederatesWith(ds, ['bundle.test', 'gone.test'], ['gone.test'])).resolves.toBeUndefined();
  });
});
