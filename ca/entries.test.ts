import { describe, expect, it } from 'vitest';
import { AnchorageError } from '../common/errors.js';
import { TrustDomain } from '../spiffe/id.js';
import type { NewEntry } from './datastore/DataStore.js';
import { parseSelector, validateEntry } from './entries.js';

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

describe('parseSelector', () => {
  it('splits at the first colon only', () => {
    expect(parseSelector('unix:uid:1000')).toEqual({ type: 'unix', value: 'uid:1000' });
    expect(parseSelector('k8s:ns:default')).toEqual({ type: 'k8s', value: 'ns:default' });
  });
  it.each([
    ['nocolon', 'entry: selector "nocolon" must be type:value (e.g. unix:uid:1000)'],
    [':value', 'entry: selector ":value" must be type:value (e.g. unix:uid:1000)'],
    ['unix:', 'entry: selector "unix:" must be type:value (e.g. unix:uid:1000)'],
    ['Unix:uid:1', 'entry: selector type "Unix" must be 1-64 characters of a-z, 0-9, _ or -'],
    ['unix:uid\n1', 'entry: selector value for type "unix" must be 1-1024 printable characters'],
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
    ['repeated selector', { selectors: [{ type: 'unix', value: 'uid:1' }, { type: 'unix', value: 'uid:1' }] }, 'entry: selector unix:uid:1 is repeated'],
    ['ttl beyond the CA', { x509SvidTtl: 90000 }, 'entry: x509 ttl of 90000s goes beyond the CA lifetime of 86400s'],
    ['negative ttl', { jwtSvidTtl: -1 }, 'entry: jwt ttl must be a whole number of seconds'],
    ['bad dns name', { dnsNames: ['Upper.example.org'] }, 'entry: "Upper.example.org" is not a valid DNS name (lower-case letters, digits, hyphens; optional leading *.)'],
    ['federates with itself', { federatesWith: ['example.org'] }, 'entry: an entry cannot federate with its own trust domain'],
    ['bad federated trust domain', { federatesWith: ['Bad!'] }, /^spiffeid: /],
    ['long hint', { hint: 'x'.repeat(257) }, 'entry: hint must be at most 256 characters'],
  ])('rejects %s', (_name, patch, expected) => {
    const m = message(() => validateEntry({ ...base, ...patch }, td, 86400));
    if (typeof expected === 'string') expect(m).toBe(expected);
    else expect(m).toMatch(expected);
  });
});
