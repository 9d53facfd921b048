import type { KeyObject, X509Certificate } from 'node:crypto';
import { invalid } from './common/errors.js';
import type { JwtBundle, X509Bundle } from './spiffe/bundle.js';
import { TrustDomain, type SpiffeId } from './spiffe/id.js';

/** One X509-SVID as the Workload API handed it over, checked for internal consistency. */
export interface X509Svid {
  readonly spiffeId: SpiffeId;
  /** The certificate chain, leaf first (`cert.raw` is the DER). */
  readonly chain: readonly X509Certificate[];
  /** The leaf's private key. */
  readonly privateKey: KeyObject;
  /** Operator-assigned hint to tell several SVIDs apart (`""` when none). */
  readonly hint: string;
  /** The leaf's notAfter. */
  readonly expiresAt: Date;
}

/** Everything FetchX509SVID delivers: the caller's SVIDs (default first) and the bundles to verify peers with. */
export interface X509Context {
  readonly svids: readonly X509Svid[];
  /** The SVIDs' own trust domain(s) and every federated one. */
  readonly bundles: BundleSet<X509Bundle>;
}

/** One JWT-SVID. The claims are read without verification: the token came from our own agent. */
export interface JwtSvid {
  readonly spiffeId: SpiffeId;
  /** The compact JWS, to put in an `Authorization: Bearer` header. */
  readonly token: string;
  readonly hint: string;
  readonly audience: readonly string[];
  readonly expiresAt: Date;
  readonly claims: Readonly<Record<string, unknown>>;
}

/** The answer of ValidateJWTSVID (validation done by the agent). */
export interface ValidatedJwtSvid {
  readonly spiffeId: SpiffeId;
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * Bundles keyed by trust domain, at most one per trust domain. Immutable:
 * sources replace the whole set on every update.
 */
export class BundleSet<B extends { readonly trustDomain: TrustDomain }> implements Iterable<B> {
  readonly #byName: ReadonlyMap<string, B>;

  constructor(bundles: Iterable<B> = []) {
    const m = new Map<string, B>();
    for (const b of bundles) {
      if (m.has(b.trustDomain.name)) throw invalid(`workloadapi: two bundles for trust domain "${b.trustDomain.name}"`);
      m.set(b.trustDomain.name, b);
    }
    this.#byName = m;
  }

  /** The bundle of a trust domain, given as a TrustDomain, a name or `spiffe://name`. */
  get(td: TrustDomain | string): B | undefined {
    const name = typeof td === 'string' ? TrustDomain.parse(td).name : td.name;
    return this.#byName.get(name);
  }

  has(td: TrustDomain | string): boolean {
    return this.get(td) !== undefined;
  }

  get size(): number {
    return this.#byName.size;
  }

  trustDomains(): TrustDomain[] {
    return [...this.#byName.values()].map((b) => b.trustDomain);
  }

  [Symbol.iterator](): Iterator<B> {
    return this.#byName.values();
  }
}

export type X509BundleSet = BundleSet<X509Bundle>;
export type JwtBundleSet = BundleSet<JwtBundle>;
