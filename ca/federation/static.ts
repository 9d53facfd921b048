import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension, X509Certificate as PeculiarCertificate } from '@peculiar/x509';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { controlMessage, escapeControls, findControl } from '../admin/text.js';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import type { FederatedBundle } from '../../proto/gen/anchorage/admin/v1/FederatedBundle.js';
import type { DataStore, FederationRelationship, StoredBundle } from '../datastore/DataStore.js';

/**
 * Bundles of other trust domains, set by an operator (static federation).
 * Each is checked as a SPIFFE bundle document of exactly that trust domain
 * and stored apart from the own bundle: trust domains are never merged.
 */

/** Parses and checks a trust domain name given for federation. */
export function federatedTrustDomain(name: string, own: TrustDomain): TrustDomain {
  if (!name) throw invalid('federation: trust_domain is required');
  const td = TrustDomain.parse(name);
  if (td.equals(own)) throw invalid(`federation: ${td.name} is this server's own trust domain, not a federated one`);
  return td;
}

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

/**
 * Checks that every X.509 authority an operator hands in can be one: a CA
 * certificate (basicConstraints cA true, keyUsage with keyCertSign, as RFC
 * 5280 §4.2.1.3 and X509-SVID.md require of signing certificates) that has
 * not expired at `now` (Unix seconds). A leaf or an expired root would be
 * stored and pushed to every agent and validate nothing, or worse, make an
 * operator believe federation is set up when it is not.
 *
 * A certificate that is not valid *yet* is accepted: publishing the next root
 * before it comes into use is how a peer announces a rotation, and path
 * validation ignores it until its notBefore.
 *
 * Bundles fetched from a peer's endpoint are not held to this: refusing a
 * whole fetched bundle because one old root just expired would freeze the
 * trust domain on an older bundle instead.
 */
export function checkAuthorities(bundle: SpiffeBundle, now: number): void {
  const td = bundle.trustDomain.name;
  bundle.x509.authorities().forEach((der, i) => {
    let cert: PeculiarCertificate;
    let node: X509Certificate;
    try {
      cert = new PeculiarCertificate(Buffer.from(der));
      node = new X509Certificate(der);
    } catch (err) {
      throw invalid(`federation: bundle for ${td}: x509 authority ${i + 1} does not parse`, err);
    }
    // Named as `anchorage bundle list` names keys.
    const name = `x509 authority ${i + 1} (${escapeControls(authorityId(node))})`;
    const ext = (oid: string) => cert.extensions.filter((e) => e.type === oid);
    const bcs = ext(OID_BASIC_CONSTRAINTS);
    const kus = ext(OID_KEY_USAGE);
    let isCa: boolean;
    let usages: number;
    try {
      // Exactly one of each: with two, parsers could each pick another and disagree (as in @anchorage/client/spiffe/x509svid).
      isCa = bcs.length === 1 && new BasicConstraintsExtension(bcs[0]!.rawData).ca;
      usages = kus.length === 1 ? new KeyUsagesExtension(kus[0]!.rawData).usages : 0;
    } catch (err) {
      throw invalid(`federation: bundle for ${td}: ${name} has a malformed extension`, err);
    }
    if (!isCa) {
      throw invalid(`federation: bundle for ${td}: ${name} is not a CA certificate (basicConstraints cA is not true)`);
    }
    if (!(usages & KeyUsageFlags.keyCertSign)) {
      throw invalid(`federation: bundle for ${td}: ${name} may not sign certificates (keyUsage lacks keyCertSign)`);
    }
    const notAfter = Math.floor(cert.notAfter.getTime() / 1000);
    if (notAfter <= now) {
      throw invalid(`federation: bundle for ${td}: ${name} expired at ${cert.notAfter.toISOString()}`);
    }
  });
  for (const kid of bundle.jwt.keys().keys()) {
    const c = findControl(kid);
    if (c !== undefined) throw invalid(controlMessage('federation', `bundle for ${td}: jwt-svid kid`, c));
  }
}

/**
 * Stores `document` as the bundle of `trustDomain`. Refused: a document
 * that does not parse, holds no keys, holds an X.509 authority that is no CA
 * or has expired ({@link checkAuthorities}), or whose spiffe_sequence is
 * lower than the stored one (an older bundle would bring back removed
 * authorities; delete first to go back on purpose).
 */
export async function setFederatedBundle(ds: DataStore, own: TrustDomain, trustDomain: string, document: string, now: number): Promise<StoredBundle> {
  const td = federatedTrustDomain(trustDomain, own);
  if (!document) throw invalid('federation: document is required');
  let bundle: SpiffeBundle;
  try {
    bundle = SpiffeBundle.parse(td, document);
  } catch (err) {
    throw invalid(`federation: bundle for ${td.name}: ${(err as Error).message}`, err);
  }
  if (bundle.x509.size === 0 && bundle.jwt.size === 0) throw invalid(`federation: bundle for ${td.name} holds no keys`);
  checkAuthorities(bundle, now);
  const old = await ds.getBundle(td.name);
  if (old && bundle.sequence !== undefined && bundle.sequence < old.sequence) {
    throw new AnchorageError(
      'failed_precondition',
      `federation: bundle for ${td.name} has spiffe_sequence ${bundle.sequence}, lower than the stored ${old.sequence}; delete the stored one first to go back`,
    );
  }
  const stored: StoredBundle = {
    trustDomain: td.name,
    document: bundle.marshal(),
    sequence: bundle.sequence ?? 0,
    refreshHint: bundle.refreshHint ?? 0,
    updatedAt: now,
  };
  await ds.putBundle(stored);
  return stored;
}

/** Every stored bundle of another trust domain. */
export async function listFederatedBundles(ds: DataStore, own: TrustDomain): Promise<StoredBundle[]> {
  return (await ds.listBundles()).filter((b) => b.trustDomain !== own.name).sort((a, b) => a.trustDomain.localeCompare(b.trustDomain));
}

export async function deleteFederatedBundle(ds: DataStore, own: TrustDomain, trustDomain: string): Promise<StoredBundle> {
  const td = federatedTrustDomain(trustDomain, own);
  const old = await ds.getBundle(td.name);
  if (!old) throw new AnchorageError('not_found', `federation: no bundle for ${td.name}`);
  await ds.deleteBundle(td.name);
  return old;
}

/** How an X.509 authority is named to operators: subject and serial. */
function authorityId(c: X509Certificate): string {
  return `${c.subject.replace(/\n/g, ', ')} serial ${c.serialNumber}`;
}

/**
 * The admin API's view of a stored bundle, with every key and its expiry;
 * with `relationship`, where it is fetched from and how the last fetch went.
 */
export function toFederatedBundle(b: StoredBundle, relationship?: FederationRelationship): FederatedBundle {
  const parsed = SpiffeBundle.parse(TrustDomain.parse(b.trustDomain), b.document);
  const keys = [
    ...parsed.x509.certificates().map((c) => ({
      use: 'x509-svid',
      id: authorityId(c),
      not_after: Math.floor(Date.parse(c.validTo) / 1000),
    })),
    ...[...parsed.jwt.keys().keys()].map((kid) => ({ use: 'jwt-svid', id: kid, not_after: 0 })),
  ];
  return {
    trust_domain: b.trustDomain,
    document: b.document,
    sequence: b.sequence,
    refresh_hint: b.refreshHint,
    updated_at: b.updatedAt,
    keys,
    source: relationship ? 'endpoint' : 'static',
    last_refresh: relationship?.lastSuccessAt ?? 0,
    last_error: relationship?.lastError ?? '',
    last_error_at: relationship?.lastErrorAt ?? 0,
  };
}
