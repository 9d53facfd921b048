import type { X509Certificate } from 'node:crypto';
import { AnchorageError } from './common/errors.js';
import { SpiffeId, TrustDomain } from './spiffe/id.js';

/**
 * Decides whether a TLS peer whose X509-SVID has already been verified may
 * talk to us. It throws (an `AnchorageError('permission_denied')` saying
 * who was refused and why) to refuse; returning means yes. Authorization is
 * by SPIFFE ID only: host names play no part.
 */
export type Authorizer = (peer: SpiffeId, chain: readonly X509Certificate[]) => void;

function denied(peer: SpiffeId, want: string): AnchorageError {
  return new AnchorageError('permission_denied', `spiffetls: peer ${peer.toString()} is not authorized: want ${want}`);
}

function toId(id: SpiffeId | string): SpiffeId {
  return typeof id === 'string' ? SpiffeId.parse(id) : id;
}

/** Any peer with a valid SVID of a trusted trust domain. */
export function authorizeAny(): Authorizer {
  return () => undefined;
}

/** Exactly this SPIFFE ID. */
export function authorizeId(id: SpiffeId | string): Authorizer {
  const want = toId(id);
  return (peer) => {
    if (!peer.equals(want)) throw denied(peer, want.toString());
  };
}

/** Any of these SPIFFE IDs. */
export function authorizeOneOf(ids: Iterable<SpiffeId | string>): Authorizer {
  const want = [...ids].map(toId);
  const names = new Set(want.map((i) => i.toString()));
  const described = `one of ${[...names].join(', ')}`;
  return (peer) => {
    if (!names.has(peer.toString())) throw denied(peer, described);
  };
}

/** Any workload of this trust domain. */
export function authorizeMemberOf(td: TrustDomain | string): Authorizer {
  const want = typeof td === 'string' ? TrustDomain.parse(td) : td;
  return (peer) => {
    if (!peer.memberOf(want)) throw denied(peer, `a member of trust domain "${want.name}"`);
  };
}

/** Any SPIFFE ID for which `predicate` holds; `description` completes "want …" in the refusal. */
export function authorizeIf(predicate: (peer: SpiffeId) => boolean, description: string): Authorizer {
  return (peer) => {
    if (!predicate(peer)) throw denied(peer, description);
  };
}
