/**
 * The Node client of the SPIFFE Workload API: sources that keep a
 * workload's SVIDs and bundles current, a low-level client, and mutual TLS
 * helpers that authorize peers by SPIFFE ID. See README.md.
 */
export { ENDPOINT_SOCKET_ENV, parseWorkloadApiAddress, resolveWorkloadApiAddress, type ParseAddressOptions, type WorkloadApiAddress } from './address.js';
export { Backoff, type BackoffOptions } from './common/backoff.js';
export {
  SECURITY_HEADER,
  WorkloadApiClient,
  type CallOptions,
  type Watch,
  type WatchErrorInfo,
  type Watcher,
  type WatchOptions,
  type WorkloadApiClientOptions,
} from './client.js';
export { isWorkloadApiError, WorkloadApiError, type WorkloadApiLogger } from './errors.js';
export { DEFAULT_READY_TIMEOUT_MS, type ReadyOptions, type SourceOptions } from './source.js';
export { X509Source, type SvidPicker, type X509SourceEvents, type X509SourceOptions } from './x509source.js';
export { JWTSource, type JWTSourceEvents, type JWTSourceOptions } from './jwtsource.js';
export { authorizeAny, authorizeId, authorizeIf, authorizeMemberOf, authorizeOneOf, type Authorizer } from './authorizer.js';
export {
  connectMtls,
  createMtlsServer,
  guardTlsServer,
  peerIdentity,
  peerSpiffeId,
  tlsClientOptions,
  tlsServerOptions,
  verifyPeerCertificate,
  verifyTlsPeer,
  type GuardOptions,
  type PeerIdentity,
  type SvidSecureContextOptions,
  type X509SvidSource,
} from './tls.js';
export { BundleSet, type JwtBundleSet, type JwtSvid, type ValidatedJwtSvid, type X509BundleSet, type X509Context, type X509Svid } from './types.js';
// The value types the API speaks in, so users need only this entry point.
export { AnchorageError, isAnchorageError, type ErrorCode } from './common/errors.js';
export { JwtBundle, X509Bundle } from './spiffe/bundle.js';
export { SpiffeId, TrustDomain } from './spiffe/id.js';
export { verifyJwtSvid, type VerifiedJwtSvid } from './spiffe/jwtsvid.js';
export { verifyX509Svid, type VerifiedX509Svid } from './spiffe/x509svid.js';
