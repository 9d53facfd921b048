import { describe, it, expect, beforeAll } from 'vitest';
import { SignJWT, base64url, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';
import { AnchorageError } from '../common/errors.js';
import { TrustDomain } from './id.js';
import { JwtBundle } from './bundle.js';
import { verifyJwtSvid, type JwtBundleSource } from './jwtsvid.js';

const td = TrustDomain.parse('example.org');
const SUB = 'spiffe://example.org/workload';
const nowSec = () => Math.floor(Date.now() / 1000);

async function rejection(p: Promise<unknown>): Promise<AnchorageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return err as AnchorageError;
  }
  throw new Error('expected an error, got none');
}

interface Signer {
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

async function signer(alg: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, privateKey, publicKey };
}

interface TokenOptions {
  header?: Record<string, unknown>;
  claims?: JWTPayload;
  /** Drop these claims from the defaults. */
  omit?: string[];
  key?: CryptoKey | Uint8Array;
  /** Extension headers the signer should allow to be marked critical. */
  crit?: Record<string, boolean>;
}

/** Signs a token that is valid unless the options say otherwise. */
async function token(s: Signer, opts: TokenOptions = {}): Promise<string> {
  const claims: JWTPayload = { sub: SUB, aud: ['spiffe://example.org/server'], exp: nowSec() + 300, iat: nowSec(), ...opts.claims };
  for (const k of opts.omit ?? []) delete claims[k];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: s.alg, kid: 'key-1', typ: 'JWT', ...opts.header } as { alg: string })
    .sign(opts.key ?? s.privateKey, opts.crit ? { crit: opts.crit } : undefined);
}

/** An unsigned token with the given header, as an attacker would craft it. */
function unsigned(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
  return `${enc(header)}.${enc(claims)}.`;
}

let es256: Signer;
let bundle: JwtBundle;
let source: JwtBundleSource;
const AUD = ['spiffe://example.org/server'];

beforeAll(async () => {
  es256 = await signer('ES256');
  bundle = new JwtBundle(td, [['key-1', await exportJWK(es256.publicKey)]]);
  source = (want) => (want.equals(td) ? bundle : undefined);
});

describe('verifyJwtSvid accepts', () => {
  it.each(['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'])('a token signed with %s', async (alg) => {
    const s = await signer(alg);
    const b = new JwtBundle(td, [['key-1', await exportJWK(s.publicKey)]]);
    const exp = nowSec() + 120;
    const got = await verifyJwtSvid(await token(s, { claims: { exp, extra: 'x' } }), () => b, AUD);
    expect(got.spiffeId.toString()).toBe(SUB);
    expect(got.audience).toEqual(AUD);
    expect(got.expiry).toEqual(new Date(exp * 1000));
    expect(got.claims).toMatchObject({ sub: SUB, exp, extra: 'x' });
  });

  it('aud as a single string, typ JOSE, and typ absent', async () => {
    const t1 = await token(es256, { claims: { aud: 'spiffe://example.org/server' }, header: { typ: 'JOSE' } });
    expect((await verifyJwtSvid(t1, source, AUD)).audience).toEqual(['spiffe://example.org/server']);
    const t2 = await token(es256, { header: { typ: undefined } });
    expect((await verifyJwtSvid(t2, source, AUD)).spiffeId.toString()).toBe(SUB);
  });

  it('when any one expected audience is in aud', async () => {
    const t = await token(es256, { claims: { aud: ['a', 'b', 'c'] } });
    expect((await verifyJwtSvid(t, source, ['x', 'c'])).audience).toEqual(['a', 'b', 'c']);
  });

  it('judged at the given time', async () => {
    const exp = nowSec() - 3600;
    const t = await token(es256, { claims: { exp, iat: exp - 300 } });
    expect((await verifyJwtSvid(t, source, AUD, new Date((exp - 60) * 1000))).expiry).toEqual(new Date(exp * 1000));
  });
});

describe('verifyJwtSvid rejects', () => {
  const cases: Array<[string, () => Promise<{ token: string; source?: JwtBundleSource; audience?: string[] }>, string]> = [
    ['an expired token', async () => ({ token: await token(es256, { claims: { exp: nowSec() - 60 } }) }), 'jwtsvid: token has expired'],
    ['a token that expired a second ago', async () => ({ token: await token(es256, { claims: { exp: nowSec() - 1 } }) }), 'jwtsvid: token has expired'],
    ['a token without exp', async () => ({ token: await token(es256, { omit: ['exp'] }) }), 'jwtsvid: token has no exp claim'],
    ['a token with a string exp', async () => ({ token: await token(es256, { claims: { exp: 'tomorrow' as unknown as number } }) }), 'jwtsvid: claim exp is invalid'],
    ['a token not valid yet', async () => ({ token: await token(es256, { claims: { nbf: nowSec() + 120 } }) }), 'jwtsvid: token is not yet valid'],
    [
      'a token for another audience',
      async () => ({ token: await token(es256, { claims: { aud: ['spiffe://example.org/other'] } }) }),
      'jwtsvid: token audience does not include any expected audience',
    ],
    ['a token without aud', async () => ({ token: await token(es256, { omit: ['aud'] }) }), 'jwtsvid: token has no aud claim'],
    ['a token with an empty aud', async () => ({ token: await token(es256, { claims: { aud: [] } }) }), 'jwtsvid: token has no aud claim'],
    [
      'a token with a non-string aud entry',
      async () => ({ token: await token(es256, { claims: { aud: [42] as unknown as string[] } }) }),
      'jwtsvid: aud claim must be a string or an array of strings',
    ],
    ['a token without kid', async () => ({ token: await token(es256, { header: { kid: undefined } }) }), 'jwtsvid: token header has no kid'],
    ['a token with an empty kid', async () => ({ token: await token(es256, { header: { kid: '' } }) }), 'jwtsvid: token header has no kid'],
    [
      'a token with an unknown kid',
      async () => ({ token: await token(es256, { header: { kid: 'key-2' } }) }),
      'jwtsvid: no key with kid "key-2" for trust domain "example.org"',
    ],
    [
      'alg none',
      async () => ({ token: unsigned({ alg: 'none', kid: 'key-1' }, { sub: SUB, aud: AUD, exp: nowSec() + 60 }) }),
      'jwtsvid: unsupported algorithm "none"',
    ],
    [
      'HS256 keyed with a guessable secret',
      async () => ({
        token: await token({ ...es256, alg: 'HS256' }, { key: new TextEncoder().encode('a'.repeat(32)) }),
      }),
      'jwtsvid: unsupported algorithm "HS256"',
    ],
    ['EdDSA', async () => ({ token: await token(await signer('EdDSA')) }), 'jwtsvid: unsupported algorithm "EdDSA"'],
    [
      'a header without alg',
      async () => ({ token: unsigned({ kid: 'key-1' }, { sub: SUB }) }),
      'jwtsvid: token header has no alg',
    ],
    ['typ at+jwt', async () => ({ token: await token(es256, { header: { typ: 'at+jwt' } }) }), 'jwtsvid: token header typ must be "JWT" or "JOSE"'],
    ['typ in lower case', async () => ({ token: await token(es256, { header: { typ: 'jwt' } }) }), 'jwtsvid: token header typ must be "JWT" or "JOSE"'],
    [
      'sub that is not a SPIFFE ID',
      async () => ({ token: await token(es256, { claims: { sub: 'workload@example.org' } }) }),
      'jwtsvid: sub is not a valid SPIFFE ID: spiffeid: scheme must be "spiffe://" in lower case',
    ],
    [
      'sub with a trailing slash',
      async () => ({ token: await token(es256, { claims: { sub: 'spiffe://example.org/workload/' } }) }),
      'jwtsvid: sub is not a valid SPIFFE ID: spiffeid: path must not have a trailing slash',
    ],
    ['a token without sub', async () => ({ token: await token(es256, { omit: ['sub'] }) }), 'jwtsvid: token has no sub claim'],
    [
      'a signature by another key under a trusted kid',
      async () => ({ token: await token(es256, { key: (await signer('ES256')).privateKey }) }),
      'jwtsvid: signature is invalid',
    ],
    [
      'a tampered payload',
      async () => {
        const [h, , s] = (await token(es256)).split('.');
        const forged = base64url.encode(JSON.stringify({ sub: 'spiffe://example.org/admin', aud: AUD, exp: nowSec() + 60 }));
        return { token: `${h}.${forged}.${s}` };
      },
      'jwtsvid: signature is invalid',
    ],
    [
      'a sub in a trust domain with no bundle',
      async () => ({ token: await token(es256, { claims: { sub: 'spiffe://other.org/workload' } }) }),
      'jwtsvid: no JWT bundle for trust domain "other.org"',
    ],
    [
      'a sub in another trust domain when the source hands back the wrong bundle',
      async () => ({ token: await token(es256, { claims: { sub: 'spiffe://other.org/workload' } }), source: () => bundle }),
      'jwtsvid: bundle for trust domain "example.org" offered for "other.org"',
    ],
    [
      'an alg that the named key cannot verify',
      async () => ({ token: await token(await signer('ES384')) }),
      'jwtsvid: key "key-1" cannot verify ES384 signatures',
    ],
    [
      'an RSA alg against an EC key',
      async () => ({ token: await token(await signer('RS256')) }),
      'jwtsvid: key "key-1" cannot verify RS256 signatures',
    ],
    ['two segments', async () => ({ token: 'abc.def' }), 'jwtsvid: token is not a compact JWS'],
    ['a JWE-shaped token', async () => ({ token: 'a.b.c.d.e' }), 'jwtsvid: token is not a compact JWS'],
    ['an empty token', async () => ({ token: '' }), 'jwtsvid: token is not a compact JWS'],
    ['a header that is not JSON', async () => ({ token: 'bm90IGpzb24.e30.' }), 'jwtsvid: token header is malformed'],
    // Found by test/fuzz/jwtsvid.fuzz.test.ts: jose skips whitespace and
    // padding, so these re-spellings of a valid token used to validate.
    ...[
      ['a space', ' '],
      ['a line break', '\n'],
      ['padding', '='],
    ].map(([what, extra]): (typeof cases)[number] => [
      `a valid token re-spelled with ${what} before its signature`,
      async () => {
        const [h, p, sig] = (await token(es256)).split('.');
        return { token: `${h}.${p}${extra}.${sig}` };
      },
      'jwtsvid: token is not a compact JWS',
    ]),
    ['a token with a base64 "+" in its header', async () => ({ token: `eyJ+${(await token(es256)).slice(3)}` }), 'jwtsvid: token is not a compact JWS'],
    [
      'a payload that is not JSON',
      async () => ({ token: `${base64url.encode('{"alg":"ES256","kid":"key-1"}')}.${base64url.encode('nope')}.c2ln` }),
      'jwtsvid: token payload is malformed',
    ],
    [
      'an unknown critical header',
      async () => ({ token: await token(es256, { header: { crit: ['x-anchorage'], 'x-anchorage': true }, crit: { 'x-anchorage': true } }) }),
      'jwtsvid: token could not be verified: Extension Header Parameter "x-anchorage" is not recognized',
    ],
    ['an empty expected audience list', async () => ({ token: await token(es256), audience: [] }), 'jwtsvid: at least one expected audience is required'],
  ];

  it.each(cases)('%s', async (_name, make, message) => {
    const c = await make();
    const err = await rejection(verifyJwtSvid(c.token, c.source ?? source, c.audience ?? AUD));
    expect(err.message).toBe(message);
    expect(err.code).toBe('invalid_argument');
  });
});
