import { describe, it, expect, beforeAll } from 'vitest';
import { generateKeyPairSync, X509Certificate, type JsonWebKey } from 'node:crypto';
import { AnchorageError } from '../common/errors.js';
import { TrustDomain } from './id.js';
import { DEFAULT_MAX_BUNDLE_BYTES, JwtBundle, SpiffeBundle, X509Bundle, type PublicJwk } from './bundle.js';
import { jwkOf } from '../../../../test/helpers/jwk.js';
import { makeRoot, newKeyPair, type TestCert } from '../../../../test/helpers/pki.js';

const td = TrustDomain.parse('example.org');

function thrown(fn: () => unknown): AnchorageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return err as AnchorageError;
  }
  throw new Error('expected an error, got none');
}

function b64(der: Uint8Array): string {
  return Buffer.from(der).toString('base64');
}

function publicJwkOf(der: Uint8Array): JsonWebKey {
  return new X509Certificate(Buffer.from(der)).publicKey.export({ format: 'jwk' });
}

function ecJwk(curve = 'P-256'): { pub: JsonWebKey; priv: JsonWebKey } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return { pub: jwkOf(publicKey), priv: jwkOf(privateKey) };
}

function rsa1024(): JsonWebKey {
  return jwkOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
}

function rsaJwk(): JsonWebKey {
  return jwkOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
}

let ecRoot: TestCert;
let rsaRoot: TestCert;
let otherRoot: TestCert;
let jwtEc: JsonWebKey;
let jwtRsa: JsonWebKey;

beforeAll(async () => {
  ecRoot = await makeRoot('example.org');
  rsaRoot = await makeRoot('example.org', { keys: await newKeyPair('rsa') });
  otherRoot = await makeRoot('example.org', { keys: await newKeyPair('ec-p384') });
  jwtEc = ecJwk().pub;
  jwtRsa = rsaJwk();
});

/** A well-formed x509-svid entry for `cert`, as a publisher would write it. */
function x509Entry(cert: TestCert, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...publicJwkOf(cert.der), use: 'x509-svid', x5c: [b64(cert.der)], ...extra };
}

function jwtEntry(jwk: JsonWebKey, kid: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...jwk, use: 'jwt-svid', kid, ...extra };
}

function doc(keys: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ keys, ...extra });
}

describe('SpiffeBundle.parse and marshal', () => {
  it('round-trips X.509 and JWT authorities, sequence and refresh hint', () => {
    const bundle = new SpiffeBundle(td, {
      x509Authorities: [ecRoot.der, rsaRoot.der],
      jwtAuthorities: [
        ['kid-ec', jwtEc],
        ['kid-rsa', jwtRsa],
      ],
      sequence: 42,
      refreshHint: 300,
    });
    const text = bundle.marshal();
    const parsed = SpiffeBundle.parse(td, text);
    expect(parsed.equals(bundle)).toBe(true);
    expect(parsed.sequence).toBe(42);
    expect(parsed.refreshHint).toBe(300);
    expect(parsed.x509.authorities()).toEqual([ecRoot.der, rsaRoot.der]);
    expect(parsed.jwt.findKey('kid-ec')).toEqual({ kty: 'EC', crv: 'P-256', x: jwtEc.x, y: jwtEc.y });
    expect(parsed.jwt.findKey('kid-rsa')).toEqual({ kty: 'RSA', n: jwtRsa.n, e: jwtRsa.e });
    expect(parsed.marshal()).toBe(text);
  });

  it('marshals the exact document shape the SPIFFE bundle format defines', () => {
    const bundle = new SpiffeBundle(td, {
      x509Authorities: [ecRoot.der, rsaRoot.der],
      jwtAuthorities: [['kid-ec', jwtEc]],
      sequence: 7,
      refreshHint: 60,
    });
    const ecKey = publicJwkOf(ecRoot.der);
    const rsaKey = publicJwkOf(rsaRoot.der);
    expect(JSON.parse(bundle.marshal())).toStrictEqual({
      keys: [
        { kty: 'EC', crv: 'P-256', x: ecKey.x, y: ecKey.y, use: 'x509-svid', x5c: [b64(ecRoot.der)] },
        { kty: 'RSA', n: rsaKey.n, e: rsaKey.e, use: 'x509-svid', x5c: [b64(rsaRoot.der)] },
        { kty: 'EC', crv: 'P-256', x: jwtEc.x, y: jwtEc.y, use: 'jwt-svid', kid: 'kid-ec' },
      ],
      spiffe_sequence: 7,
      spiffe_refresh_hint: 60,
    });
  });

  it('omits sequence and refresh hint when unset, and round-trips an empty bundle', () => {
    const empty = new SpiffeBundle(td);
    expect(empty.marshal()).toBe('{"keys":[]}');
    const parsed = SpiffeBundle.parse(td, '{"keys":[]}');
    expect(parsed.sequence).toBeUndefined();
    expect(parsed.refreshHint).toBeUndefined();
    expect(parsed.x509.size).toBe(0);
    expect(parsed.jwt.size).toBe(0);
    expect(parsed.trustDomain.equals(td)).toBe(true);
  });

  it('accepts a document given as bytes', () => {
    const text = doc([x509Entry(ecRoot)], { spiffe_sequence: 1 });
    const parsed = SpiffeBundle.parse(td, new TextEncoder().encode(text));
    expect(parsed.x509.has(ecRoot.der)).toBe(true);
    expect(parsed.sequence).toBe(1);
  });

  it('tolerates a kid and extra members on an x509-svid key, and unknown top-level members', () => {
    const parsed = SpiffeBundle.parse(
      td,
      doc([x509Entry(ecRoot, { kid: 'whatever', alg: 'ES256' })], { spiffe_future_field: true }),
    );
    expect(parsed.x509.authorities()).toEqual([ecRoot.der]);
    expect(parsed.jwt.size).toBe(0);
  });

  it('drops JWK members other than the key itself from jwt-svid keys', () => {
    const parsed = SpiffeBundle.parse(td, doc([jwtEntry(jwtEc, 'k1', { alg: 'ES256', key_ops: ['verify'] })]));
    expect(parsed.jwt.findKey('k1')).toStrictEqual({ kty: 'EC', crv: 'P-256', x: jwtEc.x, y: jwtEc.y });
  });

  it('de-duplicates an x509 authority listed twice', () => {
    const parsed = SpiffeBundle.parse(td, doc([x509Entry(ecRoot), x509Entry(ecRoot)]));
    expect(parsed.x509.size).toBe(1);
  });

  it('skips keys with an unknown or missing use, and keys of unsupported type', () => {
    const okp = jwkOf(generateKeyPairSync('ed25519').publicKey);
    const k256 = ecJwk('secp256k1').pub;
    const parsed = SpiffeBundle.parse(
      td,
      doc([
        { ...jwtEc, use: 'sig', kid: 'web' },
        { ...jwtEc, kid: 'no-use' },
        { ...jwtEc, use: 'wit-svid', kid: 'future' },
        { ...jwtEc, use: 'X509-SVID', x5c: ['garbage'] },
        { kty: 'oct', k: 'c2VjcmV0', use: 'jwt-svid', kid: 'hmac' },
        { ...okp, use: 'jwt-svid', kid: 'ed' },
        { ...k256, use: 'jwt-svid', kid: 'k1' },
        { ...okp, use: 'x509-svid', x5c: ['not even base64!'] },
        { kty: 'PQ', use: 'x509-svid' },
        x509Entry(ecRoot),
        jwtEntry(jwtEc, 'good'),
      ]),
    );
    expect(parsed.x509.authorities()).toEqual([ecRoot.der]);
    expect([...parsed.jwt.keys().keys()]).toEqual(['good']);
  });

  it('rejects a key with a known use whose x5c key does not match, even among skippable keys', () => {
    const mismatched = { ...publicJwkOf(rsaRoot.der), use: 'x509-svid', x5c: [b64(ecRoot.der)] };
    expect(thrown(() => SpiffeBundle.parse(td, doc([{ use: 'other' }, mismatched]))).message).toBe(
      'bundle: x509-svid key 1 key does not match its x5c certificate',
    );
  });

  describe('bad documents', () => {
    const cases: Array<[string, () => string | Uint8Array, string]> = [
      ['not JSON', () => '{"keys": [', 'bundle: document is not valid JSON'],
      ['empty', () => '', 'bundle: document is not valid JSON'],
      ['invalid UTF-8 bytes', () => new Uint8Array([0xff, 0xfe, 0x7b]), 'bundle: document is not valid JSON'],
      ['a JSON array', () => '[]', 'bundle: document must be a JSON object'],
      ['JSON null', () => 'null', 'bundle: document must be a JSON object'],
      ['a JSON string', () => '"keys"', 'bundle: document must be a JSON object'],
      ['no keys member', () => '{"spiffe_sequence":1}', 'bundle: document has no "keys" member'],
      ['keys not an array', () => '{"keys":{}}', 'bundle: "keys" must be an array'],
      ['keys null', () => '{"keys":null}', 'bundle: "keys" must be an array'],
      ['a key that is not an object', () => doc(['x']), 'bundle: key 0 is not a JSON object'],
      ['a key that is null', () => doc([x509Entry(ecRoot), null]), 'bundle: key 1 is not a JSON object'],
      [
        'x5c with two certificates',
        () => doc([x509Entry(ecRoot, { x5c: [b64(ecRoot.der), b64(rsaRoot.der)] })]),
        'bundle: x509-svid key 0 must have exactly one certificate in x5c, found 2',
      ],
      [
        'x5c empty',
        () => doc([x509Entry(ecRoot, { x5c: [] })]),
        'bundle: x509-svid key 0 must have exactly one certificate in x5c, found 0',
      ],
      [
        'x5c missing',
        () => doc([x509Entry(ecRoot, { x5c: undefined })]),
        'bundle: x509-svid key 0 must have exactly one certificate in x5c, found 0',
      ],
      [
        'x5c a string instead of an array',
        () => doc([x509Entry(ecRoot, { x5c: b64(ecRoot.der) })]),
        'bundle: x509-svid key 0 must have exactly one certificate in x5c, found 0',
      ],
      [
        'x5c not base64',
        () => doc([x509Entry(ecRoot, { x5c: ['not base64!'] })]),
        'bundle: x509-svid key 0 x5c is not valid base64',
      ],
      [
        'x5c base64url instead of base64',
        () => doc([x509Entry(ecRoot, { x5c: [b64(ecRoot.der).replace(/\+/g, '-').replace(/\//g, '_') + '-_'] })]),
        'bundle: x509-svid key 0 x5c is not valid base64',
      ],
      [
        'x5c entry not a string',
        () => doc([x509Entry(ecRoot, { x5c: [42] })]),
        'bundle: x509-svid key 0 x5c is not valid base64',
      ],
      [
        'x5c not a certificate',
        () => doc([x509Entry(ecRoot, { x5c: [Buffer.from('hello, world').toString('base64')] })]),
        'bundle: x509-svid key 0 x5c is not a DER certificate',
      ],
      [
        'x5c certificate with trailing bytes',
        () => doc([x509Entry(ecRoot, { x5c: [b64(new Uint8Array([...ecRoot.der, 0]))] })]),
        'bundle: x509-svid key 0 x5c is not a DER certificate',
      ],
      [
        'JWK point not on the curve',
        () => doc([x509Entry(ecRoot, { x: ecJwk().pub.x, y: ecJwk().pub.y })]),
        'bundle: x509-svid key 0 has invalid key material',
      ],
      [
        'x5c key mismatch (a different valid key)',
        () => doc([{ ...ecJwk().pub, use: 'x509-svid', x5c: [b64(ecRoot.der)] }]),
        'bundle: x509-svid key 0 key does not match its x5c certificate',
      ],
      [
        'x5c key mismatch (different key type)',
        () => doc([{ ...publicJwkOf(otherRoot.der), use: 'x509-svid', x5c: [b64(ecRoot.der)] }]),
        'bundle: x509-svid key 0 key does not match its x5c certificate',
      ],
      [
        'x509-svid key without kty',
        () => doc([x509Entry(ecRoot, { kty: undefined })]),
        'bundle: x509-svid key 0 has no kty',
      ],
      [
        'x509-svid key with garbage key material',
        () => doc([x509Entry(ecRoot, { x: 'AAAA' })]),
        'bundle: x509-svid key 0 has invalid key material',
      ],
      [
        'x509-svid key with private key material',
        () => doc([x509Entry(ecRoot, { d: 'AAAA' })]),
        'bundle: x509-svid key 0 must not contain private key material',
      ],
      // Found by test/fuzz/bundle.fuzz.test.ts: Node imports these leniently.
      ...(
        [
          ['padding', () => ({ x: `${jwtEc.x}=` }), 'x'],
          ['a space', () => ({ y: ` ${jwtEc.y}` }), 'y'],
          ['a leading zero byte', () => ({ x: Buffer.concat([Buffer.alloc(1), Buffer.from(jwtEc.x!, 'base64url')]).toString('base64url') }), 'x'],
        ] as const
      ).map(([what, member, m]): (typeof cases)[number] => [
        `jwt-svid EC key whose ${m} has ${what}`,
        () => doc([jwtEntry({ ...jwtEc, ...member() }, 'k')]),
        `bundle: jwt-svid key 0 (kid "k") member "${m}" is not the canonical unpadded base64url encoding`,
      ]),
      [
        'jwt-svid RSA key whose n has a leading zero byte',
        () => doc([jwtEntry({ ...jwtRsa, n: Buffer.concat([Buffer.alloc(1), Buffer.from(jwtRsa.n!, 'base64url')]).toString('base64url') }, 'r')]),
        'bundle: jwt-svid key 0 (kid "r") member "n" is not the canonical unpadded base64url encoding',
      ],
      [
        'jwt-svid RSA key whose e is not base64url ("__proto__")',
        () => doc([jwtEntry({ ...jwtRsa, e: '__proto__' }, 'r')]),
        'bundle: jwt-svid key 0 (kid "r") member "e" is not the canonical unpadded base64url encoding',
      ],
      ['jwt-svid RSA key with e = 1', () => doc([jwtEntry({ ...jwtRsa, e: 'AQ' }, 'r')]), 'bundle: jwt-svid key 0 (kid "r") has an invalid RSA public exponent'],
      ['jwt-svid RSA key with e = 65536', () => doc([jwtEntry({ ...jwtRsa, e: 'AQAA' }, 'r')]), 'bundle: jwt-svid key 0 (kid "r") has an invalid RSA public exponent'],
      [
        'x509-svid key whose n has a leading zero byte',
        () => {
          const e = x509Entry(rsaRoot);
          return doc([{ ...e, n: Buffer.concat([Buffer.alloc(1), Buffer.from(e.n as string, 'base64url')]).toString('base64url') }]);
        },
        'bundle: x509-svid key 0 member "n" is not the canonical unpadded base64url encoding',
      ],
      ['jwt-svid key without kid', () => doc([jwtEntry(jwtEc, 'x', { kid: undefined })]), 'bundle: jwt-svid key 0 has no kid'],
      ['jwt-svid key with empty kid', () => doc([jwtEntry(jwtEc, '')]), 'bundle: jwt-svid key 0 has no kid'],
      ['jwt-svid key with numeric kid', () => doc([jwtEntry(jwtEc, 'x', { kid: 1 })]), 'bundle: jwt-svid key 0 has no kid'],
      [
        'duplicate kid',
        () => doc([jwtEntry(jwtEc, 'dup'), jwtEntry(jwtRsa, 'dup')]),
        'bundle: duplicate jwt-svid kid "dup"',
      ],
      [
        'jwt-svid key with garbage key material',
        () => doc([jwtEntry(jwtRsa, 'r', { n: undefined })]),
        'bundle: jwt-svid key 0 (kid "r") has invalid key material',
      ],
      [
        'jwt-svid RSA key with a tiny modulus',
        () => doc([jwtEntry(jwtRsa, 'r', { n: 'AA' })]),
        'bundle: jwt-svid key 0 (kid "r") has an RSA key shorter than 2048 bits',
      ],
      [
        'jwt-svid RSA key of 1024 bits',
        () => doc([jwtEntry(rsa1024(), 'r')]),
        'bundle: jwt-svid key 0 (kid "r") has an RSA key shorter than 2048 bits',
      ],
      [
        'jwt-svid key with private key material',
        () => doc([jwtEntry(ecJwk().priv, 'p')]),
        'bundle: jwt-svid key 0 (kid "p") must not contain private key material',
      ],
      ['jwt-svid key without kty', () => doc([jwtEntry(jwtEc, 'k', { kty: undefined })]), 'bundle: jwt-svid key 0 has no kty'],
      ['negative sequence', () => doc([], { spiffe_sequence: -1 }), 'bundle: spiffe_sequence must be a non-negative integer'],
      ['fractional sequence', () => doc([], { spiffe_sequence: 1.5 }), 'bundle: spiffe_sequence must be a non-negative integer'],
      ['string sequence', () => doc([], { spiffe_sequence: '5' }), 'bundle: spiffe_sequence must be a non-negative integer'],
      ['null sequence', () => doc([], { spiffe_sequence: null }), 'bundle: spiffe_sequence must be a non-negative integer'],
      [
        'sequence of 2^53',
        () => '{"keys":[],"spiffe_sequence":9007199254740992}',
        'bundle: spiffe_sequence is larger than 2^53-1 and cannot be represented exactly',
      ],
      [
        'sequence of 2^64-1',
        () => '{"keys":[],"spiffe_sequence":18446744073709551615}',
        'bundle: spiffe_sequence is larger than 2^53-1 and cannot be represented exactly',
      ],
      [
        'sequence beyond float range',
        () => '{"keys":[],"spiffe_sequence":1e400}',
        'bundle: spiffe_sequence must be a non-negative integer',
      ],
      [
        'negative refresh hint',
        () => doc([], { spiffe_refresh_hint: -300 }),
        'bundle: spiffe_refresh_hint must be a non-negative integer',
      ],
      [
        'fractional refresh hint',
        () => doc([], { spiffe_refresh_hint: 0.5 }),
        'bundle: spiffe_refresh_hint must be a non-negative integer',
      ],
      [
        'string refresh hint',
        () => doc([], { spiffe_refresh_hint: '5m' }),
        'bundle: spiffe_refresh_hint must be a non-negative integer',
      ],
    ];
    it.each(cases)('rejects %s', (_name, make, message) => {
      const err = thrown(() => SpiffeBundle.parse(td, make()));
      expect(err.message).toBe(message);
      expect(err.code).toBe('invalid_argument');
    });
  });

  it('accepts sequence 0 and 2^53-1', () => {
    expect(SpiffeBundle.parse(td, doc([], { spiffe_sequence: 0 })).sequence).toBe(0);
    expect(SpiffeBundle.parse(td, '{"keys":[],"spiffe_sequence":9007199254740991}').sequence).toBe(9007199254740991);
    expect(SpiffeBundle.parse(td, doc([], { spiffe_refresh_hint: 0 })).refreshHint).toBe(0);
  });

  describe('size bound', () => {
    function padded(size: number): string {
      const base = '{"keys":[],"pad":""}';
      return base.replace('""', `"${'a'.repeat(size - base.length)}"`);
    }

    it('accepts a document of exactly the default limit', () => {
      const text = padded(DEFAULT_MAX_BUNDLE_BYTES);
      expect(text.length).toBe(1024 * 1024);
      expect(SpiffeBundle.parse(td, text).x509.size).toBe(0);
    });

    it('rejects a document one byte over the default limit', () => {
      expect(thrown(() => SpiffeBundle.parse(td, padded(DEFAULT_MAX_BUNDLE_BYTES + 1))).message).toBe(
        'bundle: document is 1048577 bytes, more than the limit of 1048576',
      );
    });

    it('applies a caller-supplied limit to strings (in UTF-8 bytes) and to bytes', () => {
      const text = '{"keys":[],"x":"ééé"}'; // 18 ASCII + 3 two-byte characters = 24 bytes
      expect(SpiffeBundle.parse(td, text, { maxBytes: 24 }).x509.size).toBe(0);
      expect(thrown(() => SpiffeBundle.parse(td, text, { maxBytes: 23 })).message).toBe(
        'bundle: document is 24 bytes, more than the limit of 23',
      );
      expect(thrown(() => SpiffeBundle.parse(td, new Uint8Array(11), { maxBytes: 10 })).message).toBe(
        'bundle: document is 11 bytes, more than the limit of 10',
      );
    });
  });
});

describe('SpiffeBundle', () => {
  it.each([
    [{ sequence: -1 }, 'bundle: spiffe_sequence must be a non-negative integer'],
    [{ sequence: 2 ** 53 }, 'bundle: spiffe_sequence is larger than 2^53-1 and cannot be represented exactly'],
    [{ sequence: Number.NaN }, 'bundle: spiffe_sequence must be a non-negative integer'],
    [{ refreshHint: 1.25 }, 'bundle: spiffe_refresh_hint must be a non-negative integer'],
  ])('constructor rejects %j', (options, message) => {
    expect(thrown(() => new SpiffeBundle(td, options)).message).toBe(message);
  });

  it('setters validate and accept undefined to clear', () => {
    const bundle = new SpiffeBundle(td, { sequence: 1, refreshHint: 5 });
    bundle.sequence = 2;
    expect(bundle.sequence).toBe(2);
    expect(thrown(() => (bundle.sequence = -2)).message).toBe('bundle: spiffe_sequence must be a non-negative integer');
    expect(bundle.sequence).toBe(2);
    bundle.refreshHint = undefined;
    expect(bundle.refreshHint).toBeUndefined();
    expect(bundle.marshal()).toBe('{"keys":[],"spiffe_sequence":2}');
  });

  it('equals notices each kind of difference, and clone is independent', () => {
    const a = new SpiffeBundle(td, { x509Authorities: [ecRoot.der], jwtAuthorities: [['k', jwtEc]], sequence: 1 });
    const b = a.clone();
    expect(b.equals(a)).toBe(true);
    b.sequence = 2;
    expect(b.equals(a)).toBe(false);
    const c = a.clone();
    c.x509.add(rsaRoot.der);
    expect(c.equals(a)).toBe(false);
    expect(a.x509.size).toBe(1);
    const d = a.clone();
    d.jwt.addKey('k', jwtRsa);
    expect(d.equals(a)).toBe(false);
    const e = new SpiffeBundle(TrustDomain.parse('other.org'), { x509Authorities: [ecRoot.der], jwtAuthorities: [['k', jwtEc]], sequence: 1 });
    expect(e.equals(a)).toBe(false);
    const f = a.clone();
    f.refreshHint = 10;
    expect(f.equals(a)).toBe(false);
  });
});

describe('X509Bundle', () => {
  it('adds, de-duplicates, finds and removes authorities by their exact bytes', () => {
    const bundle = new X509Bundle(td);
    bundle.add(ecRoot.der);
    bundle.add(new Uint8Array(ecRoot.der));
    bundle.add(rsaRoot.der);
    expect(bundle.size).toBe(2);
    expect(bundle.has(ecRoot.der)).toBe(true);
    expect(bundle.has(otherRoot.der)).toBe(false);
    expect(bundle.authorities()).toEqual([ecRoot.der, rsaRoot.der]);
    expect(bundle.certificates().map((c) => c.subject)).toEqual(['CN=root example.org', 'CN=root example.org']);
    expect(bundle.remove(ecRoot.der)).toBe(true);
    expect(bundle.remove(ecRoot.der)).toBe(false);
    expect(bundle.authorities()).toEqual([rsaRoot.der]);
  });

  it('hands out copies, so callers cannot change the bundle through them', () => {
    const bundle = new X509Bundle(td, [ecRoot.der]);
    const copy = bundle.authorities()[0]!;
    copy[copy.length - 1] ^= 0xff;
    expect(bundle.authorities()[0]).toEqual(ecRoot.der);
    const input = new Uint8Array(rsaRoot.der);
    bundle.add(input);
    input[10] ^= 0xff;
    expect(bundle.has(rsaRoot.der)).toBe(true);
  });

  it.each([
    ['empty', new Uint8Array()],
    ['garbage', new Uint8Array([1, 2, 3])],
    ['trailing bytes', null],
  ])('refuses a non-certificate (%s)', (_name, der) => {
    const bytes = der ?? new Uint8Array([...ecRoot.der, 0, 0]);
    expect(thrown(() => new X509Bundle(td).add(bytes)).message).toBe('bundle: x509 authority is not a DER certificate');
  });

  it('parses concatenated PEM', () => {
    const pem = [ecRoot, rsaRoot].map((c) => c.cert.toString('pem')).join('\n');
    const bundle = X509Bundle.parsePem(td, `comment line\n${pem}\n`);
    expect(bundle.authorities()).toEqual([ecRoot.der, rsaRoot.der]);
    expect(bundle.trustDomain.equals(td)).toBe(true);
  });

  it.each([
    ['no blocks', 'hello', 'bundle: no PEM certificates found'],
    ['a key block only', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----', 'bundle: no PEM certificates found'],
    ['a bad certificate body', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', 'bundle: x509 authority is not a DER certificate'],
  ])('parsePem rejects %s', (_name, pem, message) => {
    expect(thrown(() => X509Bundle.parsePem(td, pem)).message).toBe(message);
  });
});

describe('JwtBundle', () => {
  it('stores only the public members and finds keys by kid', () => {
    const bundle = new JwtBundle(td);
    bundle.addKey('a', { ...jwtEc, alg: 'ES256', use: 'sig' } as JsonWebKey);
    bundle.addKey('b', jwtRsa);
    expect(bundle.findKey('a')).toStrictEqual({ kty: 'EC', crv: 'P-256', x: jwtEc.x, y: jwtEc.y });
    expect(bundle.findKey('b')).toStrictEqual({ kty: 'RSA', n: jwtRsa.n, e: jwtRsa.e });
    expect(bundle.findKey('c')).toBeUndefined();
    expect(bundle.hasKey('a')).toBe(true);
    expect(bundle.removeKey('a')).toBe(true);
    expect(bundle.hasKey('a')).toBe(false);
    expect(bundle.size).toBe(1);
  });

  it('keys() is a snapshot', () => {
    const bundle = new JwtBundle(td, [['a', jwtEc]]);
    const snapshot = bundle.keys();
    snapshot.delete('a');
    expect(bundle.hasKey('a')).toBe(true);
  });

  it.each<[string, string, JsonWebKey | PublicJwk, string]>([
    ['empty kid', '', jwtEcLazy(), 'bundle: jwt authority must have a non-empty kid'],
    ['private key', 'p', { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', d: 'AA' }, 'bundle: jwt authority "p" must not contain private key material'],
    ['symmetric key', 's', { kty: 'oct', k: 'c2VjcmV0' } as JsonWebKey, 'bundle: jwt authority "s" must not contain private key material'],
    ['unsupported curve', 'c', { kty: 'EC', crv: 'P-192', x: 'AA', y: 'AA' }, 'bundle: jwt authority "c" has an unsupported key type'],
    ['Ed25519', 'e', { kty: 'OKP', crv: 'Ed25519', x: 'AA' } as JsonWebKey, 'bundle: jwt authority "e" has an unsupported key type'],
    ['bad point', 'b', { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }, 'bundle: jwt authority "b" has invalid key material'],
  ])('addKey rejects %s', (_name, kid, jwk, message) => {
    expect(thrown(() => new JwtBundle(td).addKey(kid, jwk)).message).toBe(message);
  });
});

/** A placeholder key for table rows built before beforeAll runs; the kid check fires first. */
function jwtEcLazy(): JsonWebKey {
  return { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' };
}
