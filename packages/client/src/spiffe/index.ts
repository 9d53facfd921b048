/**
 * SPIFFE value types shared by every part of Anchorage: identities, trust
 * bundles, and verification of both kinds of SVID. This is the folder's
 * public surface (what the client library re-exports); code inside the
 * repository still imports the individual files (`spiffe/id.js`, …).
 */
export { MAX_SPIFFE_ID_BYTES, MAX_TRUST_DOMAIN_BYTES, SpiffeId, TrustDomain } from './id.js';
export {
  DEFAULT_MAX_BUNDLE_BYTES,
  JwtBundle,
  MIN_RSA_BITS,
  SpiffeBundle,
  X509Bundle,
  type ParseBundleOptions,
  type PublicJwk,
  type SpiffeBundleOptions,
} from './bundle.js';
export { parseSpiffeIdFromCert, verifyX509Svid, type VerifiedX509Svid, type X509BundleSource } from './x509svid.js';
export { JWT_SVID_ALGORITHMS, verifyJwtSvid, type JwtBundleSource, type VerifiedJwtSvid } from './jwtsvid.js';
