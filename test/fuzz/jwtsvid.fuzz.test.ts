import { generateKeyPairSync, sign } from 'node:crypto';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { JwtBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyJwtSvid } from '@anchorage/client/spiffe/jwtsvid';
import { expectClearError, outcomeAsync, params, testTimeout } from './fuzz.js';

/**
 * JWT-SVIDs (spiffe/jwtsvid.ts): random compact strings and mutations of a
 * valid token. Nothing but the exact token signed by the trusted key may
 * validate; everything else is refused with invalid_argument "jwtsvid: ...".
 */

const td = TrustDomain.parse('fuzz.test');
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const bundle = new JwtBundle(td, [['k1', publicKey.export({ format: 'jwk' })]]);
const bundleFor = (t: TrustDomain) => (t.equals(td) ? bundle : undefined);
const NOW = new Date('2026-12-05T12:00:00Z');
const nowSec = Math.floor(NOW.getTime() / 1000);
let token: string;
let parts: [string, string, string];

const header = { alg: 'ES256', kid: 'k1', typ: 'JWT' };
const claims = { sub: 'spiffe://fuzz.test/workload', aud: ['svc'], exp: nowSec + 300, iat: nowSec - 10 };

function b64(v: unknown): string {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
}

/** Signs header.payload as jose would (ES256: raw r||s). */
function signParts(h: string, p: string): string {
  return sign('sha256', Buffer.from(`${h}.${p}`), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}

beforeAll(async () => {
  token = await new SignJWT(claims).setProtectedHeader(header).sign(privateKey);
  parts = token.split('.') as [string, string, string];
  // The fixture must validate, or every "never validates" below is vacuous.
  await verifyJwtSvid(token, bundleFor, ['svc'], NOW);
});

/** Decoded bytes of each part; equal decodings are the same token, whatever the spelling. */
function decoded(t: string): string[] | undefined {
  const p = t.split('.');
  if (p.length !== 3 || p.some((x) => !/^[A-Za-z0-9_-]*$/.test(x))) return undefined;
  return p.map((x) => Buffer.from(x, 'base64url').toString('hex'));
}

async function expectRefused(t: string): Promise<void> {
  const got = await outcomeAsync(() => verifyJwtSvid(t, bundleFor, ['svc'], NOW));
  if (got.ok) {
    // Only a re-spelling of the very same token may pass (base64url's spare bits).
    const same = JSON.stringify(decoded(t)) === JSON.stringify(decoded(token));
    expect(same, `validated a changed token: ${t}`).toBe(true);
    return;
  }
  expectClearError(got.err, 'invalid_argument', 'jwtsvid: ');
  expect(got.err.message).not.toContain('\n');
}

const b64Char = fc.constantFrom(...'ABCXYZabcxyz0129-_'.split(''), '=', '+', '/', '.', ' ', '\u0000', 'é');
const randomCompact = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.array(fc.string({ unit: b64Char, maxLength: 40 }), { minLength: 1, maxLength: 5 }).map((a) => a.join('.')),
  fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 }), fc.string({ unit: b64Char, maxLength: 90 })).map(([h, p, s]) => `${b64(h)}.${b64(p)}.${s}`),
);

/** Header changes an attacker would try. */
const headerArb = fc.oneof(
  fc.constantFrom<Record<string, unknown>>(
    { alg: 'none', kid: 'k1', typ: 'JWT' },
    { alg: 'HS256', kid: 'k1', typ: 'JWT' },
    { alg: 'ES256', typ: 'JWT' },
    { alg: 'ES256', kid: '', typ: 'JWT' },
    { alg: 'ES256', kid: 'k2', typ: 'JWT' },
    { alg: 'ES256', kid: 'k1', typ: 'at+jwt' },
    { alg: 'ES384', kid: 'k1' },
    { alg: 'RS256', kid: 'k1' },
    { alg: 'PS256', kid: 'k1' },
    { alg: 'EdDSA', kid: 'k1' },
    { alg: 'ES256', kid: 'k1', crit: ['exp'] },
    { alg: 'ES256', kid: 'k1', b64: false, crit: ['b64'] },
    { alg: 'ES256', kid: 'k1', jku: 'https://evil.test/jwks' },
    { alg: 'ES256', kid: 'k1', jwk: { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } },
    { alg: 'ES256', kid: ['k1'] },
    { alg: ['ES256'], kid: 'k1' },
  ),
  fc.record({ alg: fc.oneof(fc.constant('ES256'), fc.string({ maxLength: 6 })), kid: fc.oneof(fc.constant('k1'), fc.jsonValue({ maxDepth: 1 })), typ: fc.oneof(fc.constant('JWT'), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: [] }),
);

/** Claim changes. */
const claimsArb = fc.oneof(
  fc.constantFrom<Record<string, unknown>>(
    { ...claims, sub: 'spiffe://other.test/workload' },
    { ...claims, sub: 'spiffe://fuzz.test' },
    { ...claims, sub: 'spiffe://FUZZ.test/workload' },
    { ...claims, sub: undefined },
    { ...claims, aud: [] },
    { ...claims, aud: 'other' },
    { ...claims, aud: [1] },
    { ...claims, exp: undefined },
    { ...claims, exp: nowSec - 1 },
    { ...claims, exp: String(nowSec + 300) },
    { ...claims, exp: 1e308 },
    { ...claims, nbf: nowSec + 100 },
    { ...claims, iat: 'yesterday' },
  ),
  fc.record({ sub: fc.oneof(fc.constant(claims.sub), fc.jsonValue({ maxDepth: 1 })), aud: fc.oneof(fc.constant(claims.aud), fc.jsonValue({ maxDepth: 1 })), exp: fc.oneof(fc.constant(claims.exp), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: [] }),
);

describe('fuzz: JWT-SVIDs (spiffe/jwtsvid.ts)', () => {
  it(
    'random compact strings never validate and are refused with invalid_argument "jwtsvid: "',
    async () => {
      await fc.assert(fc.asyncProperty(randomCompact, expectRefused), params(2000));
    },
    testTimeout(),
  );

  it(
    'character mutations of a valid token (bad base64url, dots, truncation) never validate a changed token',
    async () => {
      const mut = fc.array(fc.tuple(fc.constantFrom('replace', 'insert', 'delete', 'truncate'), fc.nat(), b64Char), { minLength: 1, maxLength: 3 });
      await fc.assert(
        fc.asyncProperty(mut, async (muts) => {
          let t = token;
          for (const [kind, at0, c] of muts) {
            const at = at0 % (t.length || 1);
            if (kind === 'replace') t = t.slice(0, at) + c + t.slice(at + 1);
            else if (kind === 'insert') t = t.slice(0, at) + c + t.slice(at);
            else if (kind === 'delete') t = t.slice(0, at) + t.slice(at + 1);
            else t = t.slice(0, at);
          }
          await expectRefused(t);
        }),
        params(2000),
      );
    },
    testTimeout(),
  );

  it(
    'changed headers and claims never validate, with the original signature, no signature or a fresh valid one over a bad header',
    async () => {
      await fc.assert(
        fc.asyncProperty(headerArb, claimsArb, fc.constantFrom('original', 'empty', 'resigned'), async (h, c, sigKind) => {
          const hs = b64(h);
          const cs = b64(c);
          // Re-signing with the trusted key over a header or claims the profile refuses must still be refused;
          // only the unchanged header and claims may pass then.
          const sig = sigKind === 'original' ? parts[2] : sigKind === 'empty' ? '' : signParts(hs, cs);
          const t = `${hs}.${cs}.${sig}`;
          const got = await outcomeAsync(() => verifyJwtSvid(t, bundleFor, ['svc'], NOW));
          if (got.ok) {
            expect(sigKind).toBe('resigned');
            // A correctly signed token passes only if it meets the whole profile.
            expect(JWT_OK(h, c)).toBe(true);
            expect(got.value.spiffeId.toString()).toBe(c.sub);
            return;
          }
          expectClearError(got.err, 'invalid_argument', 'jwtsvid: ');
          if (sigKind === 'resigned') expect(JWT_OK(h, c), `refused a valid token: ${String(got.err)}`).toBe(false);
        }),
        params(1500),
      );
    },
    testTimeout(),
  );

  it('the profile errors are the specific ones', async () => {
    const cases: [Record<string, unknown>, Record<string, unknown>, string][] = [
      [{ alg: 'none', kid: 'k1' }, claims, 'jwtsvid: unsupported algorithm "none"'],
      [{ alg: 'ES256' }, claims, 'jwtsvid: token header has no kid'],
      [{ alg: 'ES256', kid: 'k1', typ: 'at+jwt' }, claims, 'jwtsvid: token header typ must be "JWT" or "JOSE"'],
      [{ alg: 'ES256', kid: 'k9' }, claims, 'jwtsvid: no key with kid "k9" for trust domain "fuzz.test"'],
      [header, { ...claims, exp: undefined }, 'jwtsvid: token has no exp claim'],
      [header, { ...claims, sub: 'spiffe://other.test/x' }, 'jwtsvid: no JWT bundle for trust domain "other.test"'],
    ];
    for (const [h, c, msg] of cases) {
      const got = await outcomeAsync(() => verifyJwtSvid(`${b64(h)}.${b64(c)}.${signParts(b64(h), b64(c))}`, bundleFor, ['svc'], NOW));
      expect(got.ok).toBe(false);
      if (!got.ok) expect((got.err as Error).message).toBe(msg);
    }
    const bad = await outcomeAsync(() => verifyJwtSvid(`${parts[0]}.${parts[1]}.${'A'.repeat(86)}`, bundleFor, ['svc'], NOW));
    expect(bad.ok ? 'accepted' : (bad.err as Error).message).toBe('jwtsvid: signature is invalid');
  });
});

/** The reference: does a correctly signed token with this header and these claims meet the JWT-SVID profile? */
function JWT_OK(h: Record<string, unknown>, c: Record<string, unknown>): boolean {
  const hKeys = Object.keys(h).filter((k) => h[k] !== undefined);
  if (h.alg !== 'ES256' || h.kid !== 'k1') return false;
  if (h.typ !== undefined && h.typ !== 'JWT' && h.typ !== 'JOSE') return false;
  if (hKeys.some((k) => !['alg', 'kid', 'typ', 'jku', 'jwk'].includes(k))) return false;
  // Any valid SPIFFE ID of the trust domain, its own ID included (as go-spiffe accepts it).
  if (typeof c.sub !== 'string' || !/^spiffe:\/\/fuzz\.test(\/[A-Za-z0-9._-]+)*$/.test(c.sub) || /\/\.\.?(\/|$)/.test(c.sub)) return false;
  const aud = typeof c.aud === 'string' ? [c.aud] : c.aud;
  if (!Array.isArray(aud) || !aud.every((a) => typeof a === 'string') || !aud.includes('svc')) return false;
  if (typeof c.exp !== 'number' || !(c.exp > nowSec)) return false;
  if (c.nbf !== undefined && !(typeof c.nbf === 'number' && c.nbf <= nowSec)) return false;
  if (c.iat !== undefined && typeof c.iat !== 'number') return false;
  return true;
}
