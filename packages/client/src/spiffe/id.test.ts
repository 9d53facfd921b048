import { describe, it, expect } from 'vitest';
import { AnchorageError } from '../common/errors.js';
import { SpiffeId, TrustDomain, MAX_SPIFFE_ID_BYTES, MAX_TRUST_DOMAIN_BYTES } from './id.js';

/** Runs fn and returns the AnchorageError it throws, failing the test if it does not. */
function thrown(fn: () => unknown): AnchorageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return err as AnchorageError;
  }
  throw new Error('expected an error, got none');
}

const TD_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789.-_';
const PATH_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_';

describe('SpiffeId.parse', () => {
  const good: Array<[string, string, string]> = [
    ['spiffe://example.org', 'example.org', ''],
    ['spiffe://example.org/workload', 'example.org', '/workload'],
    ['spiffe://example.org/ns/prod/sa/web', 'example.org', '/ns/prod/sa/web'],
    ['spiffe://a', 'a', ''],
    ['spiffe://under_score-dash.1/a', 'under_score-dash.1', '/a'],
    [`spiffe://${TD_CHARS}/${PATH_CHARS}`, TD_CHARS, `/${PATH_CHARS}`],
    // Segments that merely contain dots are not dot segments.
    ['spiffe://example.org/.../a.b/..c/.d', 'example.org', '/.../a.b/..c/.d'],
    ['spiffe://example.org/MixedCase/X', 'example.org', '/MixedCase/X'],
    [`spiffe://${'a'.repeat(MAX_TRUST_DOMAIN_BYTES)}`, 'a'.repeat(MAX_TRUST_DOMAIN_BYTES), ''],
  ];
  it.each(good)('accepts %s', (input, td, path) => {
    const id = SpiffeId.parse(input);
    expect(id.trustDomain.name).toBe(td);
    expect(id.path).toBe(path);
    expect(id.toString()).toBe(input);
    expect(id.isTrustDomainId()).toBe(path === '');
  });

  it('accepts an ID of exactly 2048 bytes and rejects 2049', () => {
    const prefix = 'spiffe://example.org/';
    const exact = prefix + 'a'.repeat(MAX_SPIFFE_ID_BYTES - prefix.length);
    expect(exact.length).toBe(2048);
    expect(SpiffeId.parse(exact).toString()).toBe(exact);
    expect(thrown(() => SpiffeId.parse(exact + 'a')).message).toBe('spiffeid: exceeds 2048 bytes');
  });

  const bad: Array<[string, string]> = [
    ['', 'spiffeid: cannot be empty'],
    ['example.org/workload', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['SPIFFE://example.org/workload', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['Spiffe://example.org', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['https://example.org/workload', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['spiffe:/example.org', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['spiffe:example.org', 'spiffeid: scheme must be "spiffe://" in lower case'],
    [' spiffe://example.org', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['spiffe://', 'spiffeid: trust domain is missing'],
    ['spiffe:///workload', 'spiffeid: trust domain is missing'],
    ['spiffe://Example.org/workload', 'spiffeid: trust domain contains an invalid character "E"'],
    ['spiffe://EXAMPLE.ORG', 'spiffeid: trust domain contains an invalid character "E"'],
    ['spiffe://exa mple.org', 'spiffeid: trust domain contains an invalid character " "'],
    ['spiffe://exämple.org', 'spiffeid: trust domain contains an invalid character "ä"'],
    ['spiffe://example.org\n', 'spiffeid: trust domain contains an invalid character "\\n"'],
    ['spiffe://example.org:8080/workload', 'spiffeid: trust domain must not include a port'],
    ['spiffe://example.org:/workload', 'spiffeid: trust domain must not include a port'],
    ['spiffe://user@example.org/workload', 'spiffeid: trust domain must not include userinfo'],
    ['spiffe://user:pass@example.org', 'spiffeid: trust domain must not include userinfo'],
    ['spiffe://ex%61mple.org', 'spiffeid: percent-encoding is not allowed'],
    ['spiffe://[::1]/workload', 'spiffeid: trust domain must not include a port'],
    ['spiffe://example.org?x=1', 'spiffeid: query is not allowed'],
    ['spiffe://example.org#frag', 'spiffeid: fragment is not allowed'],
    ['spiffe://example.org#a?b', 'spiffeid: fragment is not allowed'],
    ['spiffe://example.org/workload?x=1', 'spiffeid: query is not allowed'],
    ['spiffe://example.org/workload#frag', 'spiffeid: fragment is not allowed'],
    ['spiffe://example.org/workload?', 'spiffeid: query is not allowed'],
    ['spiffe://example.org/', 'spiffeid: path must not have a trailing slash'],
    ['spiffe://example.org/workload/', 'spiffeid: path must not have a trailing slash'],
    ['spiffe://example.org//workload', 'spiffeid: path must not contain empty segments'],
    ['spiffe://example.org/a//b', 'spiffeid: path must not contain empty segments'],
    ['spiffe://example.org/a//', 'spiffeid: path must not contain empty segments'],
    ['spiffe://example.org/.', 'spiffeid: path must not contain dot segments'],
    ['spiffe://example.org/..', 'spiffeid: path must not contain dot segments'],
    ['spiffe://example.org/a/./b', 'spiffeid: path must not contain dot segments'],
    ['spiffe://example.org/a/../b', 'spiffeid: path must not contain dot segments'],
    ['spiffe://example.org/a/..', 'spiffeid: path must not contain dot segments'],
    ['spiffe://example.org/a%2Fb', 'spiffeid: percent-encoding is not allowed'],
    ['spiffe://example.org/a b', 'spiffeid: path segment contains an invalid character " "'],
    ['spiffe://example.org/a:b', 'spiffeid: path segment contains an invalid character ":"'],
    ['spiffe://example.org/a@b', 'spiffeid: path segment contains an invalid character "@"'],
    ['spiffe://example.org/a+b', 'spiffeid: path segment contains an invalid character "+"'],
    ['spiffe://example.org/a~b', 'spiffeid: path segment contains an invalid character "~"'],
    ['spiffe://example.org/wörk', 'spiffeid: path segment contains an invalid character "ö"'],
    ['spiffe://example.org/a\\b', 'spiffeid: path segment contains an invalid character "\\\\"'],
    [`spiffe://${'a'.repeat(MAX_TRUST_DOMAIN_BYTES + 1)}`, 'spiffeid: trust domain exceeds 255 bytes'],
    [`spiffe://${'a'.repeat(MAX_TRUST_DOMAIN_BYTES + 1)}/workload`, 'spiffeid: trust domain exceeds 255 bytes'],
  ];
  it.each(bad)('rejects %j', (input, message) => {
    const err = thrown(() => SpiffeId.parse(input));
    expect(err.message).toBe(message);
    expect(err.code).toBe('invalid_argument');
  });

  it('measures the limit in UTF-8 bytes, not UTF-16 units', () => {
    // 1020 two-byte characters: 1020 UTF-16 units but 2040 bytes, plus the prefix > 2048.
    const id = 'spiffe://example.org/' + 'é'.repeat(1020);
    expect(id.length).toBeLessThan(MAX_SPIFFE_ID_BYTES);
    expect(thrown(() => SpiffeId.parse(id)).message).toBe('spiffeid: exceeds 2048 bytes');
  });

  it('rejects a non-string at runtime', () => {
    expect(thrown(() => SpiffeId.parse(42 as unknown as string)).message).toBe('spiffeid: must be a string');
  });
});

describe('SpiffeId.fromPath and fromSegments', () => {
  const td = TrustDomain.parse('example.org');

  it.each([
    ['', 'spiffe://example.org'],
    ['/a', 'spiffe://example.org/a'],
    ['/a/B/c-d_e.f', 'spiffe://example.org/a/B/c-d_e.f'],
  ])('builds from path %j', (path, want) => {
    const id = SpiffeId.fromPath(td, path);
    expect(id.toString()).toBe(want);
    expect(id.path).toBe(path);
    expect(id.equals(SpiffeId.parse(want))).toBe(true);
  });

  it.each([
    ['a', 'spiffeid: path must be empty or start with "/"'],
    ['/', 'spiffeid: path must not have a trailing slash'],
    ['/a/', 'spiffeid: path must not have a trailing slash'],
    ['//a', 'spiffeid: path must not contain empty segments'],
    ['/a/../b', 'spiffeid: path must not contain dot segments'],
    ['/a%20b', 'spiffeid: percent-encoding is not allowed'],
    ['/a?b', 'spiffeid: query is not allowed'],
    ['/a#b', 'spiffeid: fragment is not allowed'],
    ['/a*', 'spiffeid: path segment contains an invalid character "*"'],
    ['/' + 'a'.repeat(MAX_SPIFFE_ID_BYTES), 'spiffeid: exceeds 2048 bytes'],
  ])('rejects path %j', (path, message) => {
    expect(thrown(() => SpiffeId.fromPath(td, path)).message).toBe(message);
  });

  it('accepts a path that brings the ID to exactly 2048 bytes', () => {
    const path = '/' + 'a'.repeat(MAX_SPIFFE_ID_BYTES - 'spiffe://example.org/'.length);
    expect(SpiffeId.fromPath(td, path).toString().length).toBe(MAX_SPIFFE_ID_BYTES);
  });

  it.each([
    [[], 'spiffe://example.org'],
    [['ns', 'prod'], 'spiffe://example.org/ns/prod'],
  ])('builds from segments %j', (segments, want) => {
    expect(SpiffeId.fromSegments(td, ...segments).toString()).toBe(want);
  });

  it.each([
    [['a/b'], 'spiffeid: path segment contains an invalid character "/"'],
    [[''], 'spiffeid: path must not have a trailing slash'],
    [['a', '', 'b'], 'spiffeid: path must not contain empty segments'],
    [['..'], 'spiffeid: path must not contain dot segments'],
  ])('rejects segments %j', (segments, message) => {
    expect(thrown(() => SpiffeId.fromSegments(td, ...segments)).message).toBe(message);
  });
});

describe('SpiffeId comparisons', () => {
  it('equals compares the whole ID, case-sensitively in the path', () => {
    const a = SpiffeId.parse('spiffe://example.org/web');
    expect(a.equals(SpiffeId.parse('spiffe://example.org/web'))).toBe(true);
    expect(a.equals(SpiffeId.parse('spiffe://example.org/Web'))).toBe(false);
    expect(a.equals(SpiffeId.parse('spiffe://example.org/web/x'))).toBe(false);
    expect(a.equals(SpiffeId.parse('spiffe://other.org/web'))).toBe(false);
  });

  it('memberOf checks the trust domain only', () => {
    const id = SpiffeId.parse('spiffe://example.org/web');
    expect(id.memberOf(TrustDomain.parse('example.org'))).toBe(true);
    expect(id.memberOf(TrustDomain.parse('example.com'))).toBe(false);
    // A trust domain that is a prefix or suffix of another is not a member.
    expect(id.memberOf(TrustDomain.parse('example.or'))).toBe(false);
    expect(SpiffeId.parse('spiffe://sub.example.org/web').memberOf(TrustDomain.parse('example.org'))).toBe(false);
  });

  it('serialises to its string form in JSON', () => {
    const id = SpiffeId.parse('spiffe://example.org/web');
    expect(JSON.stringify({ id, td: id.trustDomain })).toBe('{"id":"spiffe://example.org/web","td":"example.org"}');
  });
});

describe('TrustDomain.parse', () => {
  it.each([
    ['example.org', 'example.org'],
    ['spiffe://example.org', 'example.org'],
    ['a-b_c.d0', 'a-b_c.d0'],
    ['x'.repeat(MAX_TRUST_DOMAIN_BYTES), 'x'.repeat(MAX_TRUST_DOMAIN_BYTES)],
  ])('accepts %s', (input, name) => {
    const td = TrustDomain.parse(input);
    expect(td.name).toBe(name);
    expect(td.toString()).toBe(name);
    expect(td.idString()).toBe(`spiffe://${name}`);
    expect(td.id().toString()).toBe(`spiffe://${name}`);
    expect(td.id().isTrustDomainId()).toBe(true);
    expect(td.id().trustDomain.equals(td)).toBe(true);
  });

  it.each([
    ['', 'spiffeid: trust domain is missing'],
    ['Example.org', 'spiffeid: trust domain contains an invalid character "E"'],
    ['example.org/', 'spiffeid: trust domain contains an invalid character "/"'],
    ['exa mple', 'spiffeid: trust domain contains an invalid character " "'],
    ['example.org:443', 'spiffeid: trust domain must not include a port'],
    ['user@example.org', 'spiffeid: trust domain must not include userinfo'],
    ['ex%41mple.org', 'spiffeid: percent-encoding is not allowed'],
    ['x'.repeat(MAX_TRUST_DOMAIN_BYTES + 1), 'spiffeid: trust domain exceeds 255 bytes'],
    ['spiffe://example.org/workload', 'spiffeid: trust domain must not have a path'],
    ['spiffe://example.org/', 'spiffeid: path must not have a trailing slash'],
    ['spiffe://', 'spiffeid: trust domain is missing'],
    ['SPIFFE://example.org', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['https://example.org', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['spiffe:example.org', 'spiffeid: scheme must be "spiffe://" in lower case'],
    ['spiffe://example.org?x', 'spiffeid: query is not allowed'],
  ])('rejects %j', (input, message) => {
    expect(thrown(() => TrustDomain.parse(input)).message).toBe(message);
  });

  it('compares by name', () => {
    expect(TrustDomain.parse('example.org').equals(TrustDomain.parse('spiffe://example.org'))).toBe(true);
    expect(TrustDomain.parse('example.org').equals(TrustDomain.parse('example.com'))).toBe(false);
  });
});
