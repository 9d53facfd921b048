import { decodeJwt, decodeProtectedHeader, errors as joseErrors, importJWK, jwtVerify } from 'jose';
import { AnchorageError, errorMessage, invalid } from '../common/errors.js';
import type { JwtBundle, PublicJwk } from './bundle.js';
import { SpiffeId, type TrustDomain } from './id.js';

/**
 * JWT-SVID verification (JWT-SVID.md).
 *
 * jose does the signature and time checks; the SPIFFE profile on top of it
 * (which algorithms, a mandatory kid, `typ`, `sub` as a SPIFFE ID, `aud`
 * and `exp` required) is enforced here, because a generic JWT library
 * accepts tokens that SPIFFE relying parties such as go-spiffe refuse, and
 * a token valid here must be valid everywhere.
 */

/** Looks up the JWT authorities of a trust domain; undefined when not trusted at all. */
export type JwtBundleSource = (td: TrustDomain) => JwtBundle | undefined;

/** The outcome of a successful verification. */
export interface VerifiedJwtSvid {
  spiffeId: SpiffeId;
  /** The token's audience, always as an array. */
  audience: string[];
  expiry: Date;
  /** Every claim of the token, for the Workload API's ValidateJWTSVID response. */
  claims: Record<string, unknown>;
}

/**
 * JWT-SVID.md §3: asymmetric algorithms only. `none` and HMAC are
 * excluded: a shared secret cannot be published in a bundle, and `none`
 * proves nothing.
 */
export const JWT_SVID_ALGORITHMS: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
];

/** Three base64url parts without padding; the signature may be empty only to be refused later with a clearer error. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const EC_CURVE_FOR_ALG: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

/**
 * True when the key can verify tokens of `alg`. Checked before jose sees
 * the key so the error names the mismatch instead of a generic failure.
 */
function keyFitsAlg(jwk: PublicJwk, alg: string): boolean {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return jwk.kty === 'RSA';
  return jwk.kty === 'EC' && jwk.crv === EC_CURVE_FOR_ALG[alg];
}

/** Translates jose's failures into stable, module-prefixed messages. */
function joseFailure(err: unknown): AnchorageError {
  if (err instanceof joseErrors.JWTExpired) return invalid('jwtsvid: token has expired', err);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return invalid('jwtsvid: signature is invalid', err);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' && err.reason === 'check_failed') return invalid('jwtsvid: token is not yet valid', err);
    return invalid(`jwtsvid: claim ${err.claim} is invalid`, err);
  }
  return invalid(`jwtsvid: token could not be verified: ${errorMessage(err)}`, err);
}

/**
 * Verifies a JWT-SVID and returns its identity and claims.
 *
 * The signing key is looked up by the header `kid` in the bundle of the
 * trust domain named by `sub`, never in any other: a key trusted for one
 * trust domain must not be able to mint identities in another.
 *
 * @param audience the audiences this relying party answers to; at least
 *   one must appear in the token's `aud`. An empty list is refused rather
 *   than treated as "any audience", which would accept tokens meant for
 *   other services.
 */
export async function verifyJwtSvid(
  token: string,
  bundleFor: JwtBundleSource,
  audience: string[],
  now: Date = new Date(),
): Promise<VerifiedJwtSvid> {
  if (audience.length === 0) throw invalid('jwtsvid: at least one expected audience is required');
  // RFC 7515 §7.1: three unpadded base64url parts. jose's decoder skips
  // whitespace and tolerates other spellings, so without this check a token
  // with a space or a line break in it validated here while go-spiffe and
  // other verifiers refuse it, and one token had many accepted spellings.
  if (typeof token !== 'string' || !COMPACT_JWS.test(token)) throw invalid('jwtsvid: token is not a compact JWS');

  let header: Record<string, unknown>;
  let unverified: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
  } catch (err) {
    throw invalid('jwtsvid: token header is malformed', err);
  }
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === '') throw invalid('jwtsvid: token header has no alg');
  if (!JWT_SVID_ALGORITHMS.includes(alg)) throw invalid(`jwtsvid: unsupported algorithm ${JSON.stringify(alg)}`);
  const kid = header.kid;
  if (typeof kid !== 'string' || kid === '') throw invalid('jwtsvid: token header has no kid');
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    throw invalid('jwtsvid: token header typ must be "JWT" or "JOSE"');
  }

  try {
    unverified = decodeJwt(token) as Record<string, unknown>;
  } catch (err) {
    throw invalid('jwtsvid: token payload is malformed', err);
  }
  // `sub` is read before the signature is checked only to choose which
  // trust domain's keys to check it with; nothing else is trusted yet.
  if (typeof unverified.sub !== 'string' || unverified.sub === '') throw invalid('jwtsvid: token has no sub claim');
  let spiffeId: SpiffeId;
  try {
    spiffeId = SpiffeId.parse(unverified.sub);
  } catch (err) {
    throw invalid(`jwtsvid: sub is not a valid SPIFFE ID: ${errorMessage(err)}`, err);
  }

  const td = spiffeId.trustDomain;
  const bundle = bundleFor(td);
  if (!bundle) throw invalid(`jwtsvid: no JWT bundle for trust domain "${td.name}"`);
  if (!bundle.trustDomain.equals(td)) {
    throw invalid(`jwtsvid: bundle for trust domain "${bundle.trustDomain.name}" offered for "${td.name}"`);
  }
  const jwk = bundle.findKey(kid);
  if (!jwk) throw invalid(`jwtsvid: no key with kid ${JSON.stringify(kid)} for trust domain "${td.name}"`);
  if (!keyFitsAlg(jwk, alg)) throw invalid(`jwtsvid: key ${JSON.stringify(kid)} cannot verify ${alg} signatures`);

  let claims: Record<string, unknown>;
  try {
    const key = await importJWK({ ...jwk }, alg);
    const result = await jwtVerify(token, key, { algorithms: [...JWT_SVID_ALGORITHMS], currentDate: now });
    claims = result.payload as Record<string, unknown>;
  } catch (err) {
    throw joseFailure(err);
  }

  if (claims.exp === undefined) throw invalid('jwtsvid: token has no exp claim');
  // jose has already checked that a present exp is a number in the future.
  const expiry = new Date((claims.exp as number) * 1000);

  const aud = claims.aud;
  const tokenAudience = typeof aud === 'string' ? [aud] : aud;
  if (tokenAudience === undefined || (Array.isArray(tokenAudience) && tokenAudience.length === 0)) {
    throw invalid('jwtsvid: token has no aud claim');
  }
  if (!Array.isArray(tokenAudience) || !tokenAudience.every((a): a is string => typeof a === 'string')) {
    throw invalid('jwtsvid: aud claim must be a string or an array of strings');
  }
  if (!audience.some((a) => tokenAudience.includes(a))) {
    throw invalid('jwtsvid: token audience does not include any expected audience');
  }

  return { spiffeId, audience: [...tokenAudience], expiry, claims };
}
