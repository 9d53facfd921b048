// Workload SVID checks: what the server signed is verified (our key, the
// entry's SPIFFE ID, a chain to our bundle) before it reaches a workload, and
// its rotation time is set. Minting and its batching live in the NodeAgent
// (../agent.ts), which owns the connection and the retry state.
import { X509Certificate, type KeyObject } from 'node:crypto';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { childList, readWhole, TAG } from '@anchorage/client/der';
import type { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { rotationTime, type HeldSvid, type WorkloadCache } from '../cache.js';
import type { CachedEntry } from '../state.js';
import { ecdsaHashOf, ecdsaLeafSignatureValid, KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, readLeaf, type LeafFields } from './leaf.js';
import { DerCache } from './der-cache.js';

/** CSRs per BatchSignX509SVID call (the server's limit). */
export const BATCH = 500;

/** An intermediate already verified against the bundle: its key and its subject Name (DER). */
export interface VerifiedIssuer {
  key: KeyObject;
  subject: Buffer;
}

/** What {@link checkWorkloadSvid} checks against. */
export interface SvidCheckContext {
  td: TrustDomain;
  cache: WorkloadCache;
  /** Milliseconds since the epoch. */
  nowMs: () => number;
  /**
   * Intermediates already verified against the bundle (by their DER), with
   * their keys and names; filled here (see {@link verifiedIssuerCache}),
   * emptied by the agent when the bundles change.
   */
  verifiedIssuers: DerCache<VerifiedIssuer>;
}

/** The workload key an SVID was asked for. */
export interface WorkloadKey {
  /** Unencrypted PKCS#8 DER, as the Workload API hands it out. */
  pkcs8: Buffer;
  /** Its public half, SubjectPublicKeyInfo DER: what the CSR carried and the certificate must carry, byte for byte. */
  spki: Buffer;
}

/** The cache of {@link SvidCheckContext.verifiedIssuers}: a handful of intermediates (a rotation or two). */
export function verifiedIssuerCache(): DerCache<VerifiedIssuer> {
  return new DerCache(16);
}

/** The subject Name (DER) of a certificate OpenSSL has parsed. */
function subjectOf(der: Uint8Array): Buffer {
  const cert = readWhole(der, TAG.SEQUENCE, 'certificate');
  const tbs = childList(der, cert)[0]!;
  const f = childList(der, tbs);
  const subject = f[f[0]?.tag === 0xa0 ? 5 : 4]!;
  return Buffer.from(der.subarray(subject.start, subject.end));
}

/** The intermediate of `chain` checked against our bundle (the whole chain, with the leaf, by verifyX509Svid); cached. */
function verifyIssuer(ctx: SvidCheckContext, chain: Uint8Array[]): void {
  const own = ctx.cache.bundle(ctx.td.name);
  if (!own) throw new AnchorageError('failed_precondition', 'agent: no bundle yet to check svids against');
  verifyX509Svid(chain, (td) => (td.equals(ctx.td) ? own.x509 : undefined), new Date(ctx.nowMs()));
  if (chain.length < 2) return; // a leaf signed by an authority itself: checked in full each time
  ctx.verifiedIssuers.set(chain[1]!, { key: new X509Certificate(chain[1]!).publicKey, subject: subjectOf(chain[1]!) });
}

/**
 * Checks what the server signed before handing it to workloads: a chain to
 * our bundle, the entry's SPIFFE ID as the only URI SAN, our key, a leaf
 * (not a CA, digitalSignature, neither keyCertSign nor cRLSign) valid now.
 * The full chain check (verifyX509Svid) runs once per intermediate; each
 * later leaf is read with the DER reader (leaf.ts) and its signature checked
 * against the intermediate's key, its issuer Name against the
 * intermediate's subject.
 */
export function checkWorkloadSvid(ctx: SvidCheckContext, entry: CachedEntry, key: WorkloadKey, chain: Uint8Array[]): HeldSvid {
  if (chain.length === 0) throw new AnchorageError('internal', `agent: empty chain for entry ${entry.id}`);
  let leaf: LeafFields;
  try {
    leaf = readLeaf(chain[0]!);
  } catch (err) {
    throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} is not a well-formed certificate: ${errorMessage(err)}`, { cause: err });
  }
  const cached = chain.length > 1 ? ctx.verifiedIssuers.get(chain[1]!) : undefined;
  if (!cached) {
    verifyIssuer(ctx, chain);
  } else {
    if (Buffer.compare(leaf.issuer, cached.subject) !== 0) {
      throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} does not name its intermediate as issuer`);
    }
    if (!leafSignedBy(chain[0]!, leaf, cached.key)) {
      throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} is not signed by its intermediate`);
    }
  }
  if (leaf.uris.length !== 1 || leaf.uris[0] !== entry.spiffeId) {
    throw new AnchorageError('internal', `agent: the server signed ${leaf.uris.map((u) => `URI:${u}`).join(', ') || 'no URI SAN'} for entry ${entry.id} (${entry.spiffeId})`);
  }
  // The certificate's key against the one we made and sent in the CSR.
  if (Buffer.compare(leaf.spki, key.spki) !== 0) throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} is not for our key`);
  if (leaf.ca === true || leaf.keyUsage === undefined || !(leaf.keyUsage & KU_DIGITAL_SIGNATURE) || leaf.keyUsage & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) {
    throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} is not a leaf certificate (X509-SVID §4.3)`);
  }
  const nowMs = ctx.nowMs();
  if (nowMs < leaf.notBefore) throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} is not yet valid`);
  if (nowMs > leaf.notAfter) throw new AnchorageError('internal', `agent: the svid for entry ${entry.id} has expired`);
  const notBefore = Math.floor(leaf.notBefore / 1000);
  const notAfter = Math.floor(leaf.notAfter / 1000);
  return {
    entryId: entry.id,
    revision: entry.revision,
    key: key.pkcs8,
    chain,
    notBefore,
    notAfter,
    // From now, not from notBefore: the server backdates notBefore for clock
    // skew, which would put the half-life of a short-lived SVID in the past.
    rotateAt: rotationTime(Math.max(notBefore, Math.floor(nowMs / 1000)), notAfter),
  };
}

/** The leaf's signature with the intermediate's key: ECDSA over the TBS bytes, any other algorithm through OpenSSL's certificate check. */
function leafSignedBy(der: Uint8Array, leaf: LeafFields, issuerKey: KeyObject): boolean {
  const hash = ecdsaHashOf(leaf.signatureAlgorithm);
  if (hash !== undefined) return ecdsaLeafSignatureValid(leaf, hash, issuerKey);
  try {
    return new X509Certificate(der).verify(issuerKey);
  } catch {
    return false;
  }
}
