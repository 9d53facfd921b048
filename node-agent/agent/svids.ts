// Workload SVID checks: what the server signed is verified (our key, the
// entry's SPIFFE ID, a chain to our bundle) before it reaches a workload, and
// its rotation time is set. Minting and its batching live in the NodeAgent
// (../agent.ts), which owns the connection and the retry state.
import { X509Certificate, type KeyObject } from 'node:crypto';
import { AnchorageError } from '@anchorage/client/errors';
import type { TrustDomain } from '@anchorage/client/spiffe/id';
import { uriSansOf, verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { rotationTime, type HeldSvid, type WorkloadCache } from '../cache.js';
import type { CachedEntry } from '../state.js';
import { b64 } from './persist.js';

/** CSRs per BatchSignX509SVID call (the server's limit). */
export const BATCH = 500;

/** What {@link checkWorkloadSvid} checks against. */
export interface SvidCheckContext {
  td: TrustDomain;
  cache: WorkloadCache;
  /** Milliseconds since the epoch. */
  nowMs: () => number;
  /**
   * Intermediates already verified against the bundle (base64 DER) and
   * their public keys; filled here, emptied by the agent when the bundles
   * change.
   */
  verifiedIssuers: Map<string, KeyObject>;
}

/** The workload key an SVID was asked for. */
export interface WorkloadKey {
  /** Unencrypted PKCS#8 DER, as the Workload API hands it out. */
  pkcs8: Buffer;
  privateKey: KeyObject;
}

/**
 * Checks what the server signed before handing it to workloads: our key,
 * the entry's SPIFFE ID, a chain to our bundle. The full chain check runs
 * once per intermediate; each leaf is then checked against its key.
 */
export function checkWorkloadSvid(ctx: SvidCheckContext, entry: CachedEntry, key: WorkloadKey, chain: Uint8Array[]): HeldSvid {
  if (chain.length === 0) throw new AnchorageError('internal', `agent: empty chain for entry ${entry.id}`);
  const leaf = new X509Certificate(chain[0]!);
  const issuerKey = chain.length > 1 ? b64(chain[1]!) : '';
  const issuer = ctx.verifiedIssuers.get(issuerKey);
  if (!issuer) {
    const own = ctx.cache.bundle(ctx.td.name);
    if (!own) throw new AnchorageError('failed_precondition', 'agent: no bundle yet to check svids against');
    verifyX509Svid(chain, (td) => (td.equals(ctx.td) ? own.x509 : undefined), new Date(ctx.nowMs()));
    if (ctx.verifiedIssuers.size > 16) ctx.verifiedIssuers.clear();
    if (issuerKey) ctx.verifiedIssuers.set(issuerKey, new X509Certificate(chain[1]!).publicKey);
  } else if (!leaf.verify(issuer)) {
    throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} is not signed by its intermediate`);
  }
  const uris = uriSansOf(leaf);
  if (uris.length !== 1 || uris[0] !== entry.spiffeId) {
    throw new AnchorageError('internal', `agent: the server signed ${leaf.subjectAltName} for entry ${entry.id} (${entry.spiffeId})`);
  }
  // The certificate's public key against our private key, without exporting either.
  if (!leaf.checkPrivateKey(key.privateKey)) throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} is not for our key`);
  const notBefore = Math.floor(Date.parse(leaf.validFrom) / 1000);
  const notAfter = Math.floor(Date.parse(leaf.validTo) / 1000);
  return {
    entryId: entry.id,
    revision: entry.revision,
    key: key.pkcs8,
    chain,
    notBefore,
    notAfter,
    // From now, not from notBefore: the server backdates notBefore for clock
    // skew, which would put the half-life of a short-lived SVID in the past.
    rotateAt: rotationTime(Math.max(notBefore, Math.floor(ctx.nowMs() / 1000)), notAfter),
  };
}
