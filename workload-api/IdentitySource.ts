import type { Selector } from '../common/selector.js';
import type { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import type { SpiffeId } from '@anchorage/client/spiffe/id';

/** One X509-SVID a workload is entitled to, ready to hand over. */
export interface X509Identity {
  spiffeId: SpiffeId;
  /** DER, leaf first. */
  chain: Uint8Array[];
  /** Unencrypted PKCS#8 DER. */
  privateKey: Uint8Array;
  hint: string;
  /** Trust domain names whose bundles this identity's workload should also get. */
  federatesWith: string[];
  /** Unix seconds. */
  notAfter: number;
}

export interface JwtIdentity {
  spiffeId: SpiffeId;
  token: string;
  hint: string;
}

/**
 * What the Workload API needs from the agent: the identities matching a
 * caller's selectors and the bundles it should trust. The agent's cache
 * implements it; the API handler only reads and subscribes.
 */
export interface IdentitySource {
  /** The agent's own trust domain name. */
  readonly trustDomain: string;
  /**
   * X509-SVIDs of every entry whose selectors are all among `selectors`,
   * ordered so that the first is the default. Empty: the caller has no identity.
   */
  x509Identities(selectors: Selector[]): X509Identity[];
  /** The bundle of a trust domain (own or federated), if the agent has it. */
  bundle(trustDomain: string): SpiffeBundle | undefined;
  /** Every bundle the agent has: its own and the federated ones. */
  bundles(): SpiffeBundle[];
  /**
   * JWT-SVIDs for the caller's identities (or only `spiffeId`) and audience.
   * May be served from a cache until half-life.
   */
  jwtSvids(selectors: Selector[], audience: string[], spiffeId?: SpiffeId): Promise<JwtIdentity[]>;
  /**
   * Called after anything changed that may change some caller's answer: an
   * SVID rotated, an entry came or went, a bundle changed. Returns a function
   * that unsubscribes.
   */
  onChange(listener: () => void): () => void;
}
