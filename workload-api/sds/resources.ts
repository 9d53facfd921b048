// Which secret a resource name means for one caller, as SPIRE's agent names
// them (so Envoy configs written for SPIRE work unchanged): the default SVID,
// an SVID by SPIFFE ID, the own bundle, all bundles, one trust domain's bundle.
import { createHash } from 'node:crypto';
import { toPem } from '../../common/pem.js';
import type { SpiffeBundle } from '../../spiffe/bundle.js';
import { SpiffeId } from '../../spiffe/id.js';
import type { X509Identity } from '../IdentitySource.js';
import { tlsCertificateSecret, validationContextSecret, type EncodedSecret, type NodeInfo } from './proto.js';

/** The configurable names (agent.yaml `sds.*`) and the validation switch. */
export interface SdsNames {
  /** The caller's default X509-SVID. SPIRE: `default`. */
  defaultSvidName: string;
  /** The own trust domain's bundle. SPIRE: `ROOTCA`. */
  defaultBundleName: string;
  /** The own bundle and every federated one the caller may see. SPIRE: `ALL`. */
  defaultAllBundlesName: string;
  /** Validation contexts as plain `trusted_ca` instead of a SPIFFECertValidatorConfig. */
  disableSpiffeCertValidation: boolean;
}

export const DEFAULT_SDS_NAMES: SdsNames = {
  defaultSvidName: 'default',
  defaultBundleName: 'ROOTCA',
  defaultAllBundlesName: 'ALL',
  disableSpiffeCertValidation: false,
};

/** What the caller may be served, resolved once per render. */
export interface CallerView {
  /** The caller's SVIDs, default first; never empty. */
  identities: X509Identity[];
  /** `spiffe://<td>` → bundle: own trust domain first, then those the identities federate with that the agent has. */
  bundles: Map<string, SpiffeBundle>;
  ownTrustDomain: string;
}

/** One resolved resource: the secret it becomes and a digest of everything that goes into it. */
export interface Resolved {
  name: string;
  digest: string;
  encode(): EncodedSecret;
}

/** Why a requested name is not served. */
export type Unresolved = { name: string; reason: string };

/**
 * Encoded secrets by digest. A rotation pushes the same secret to every
 * stream of that identity (an Envoy opens one per secret, a node may run
 * hundreds): it is encoded once. Bounded; cleared when full.
 */
const encodedByDigest = new Map<string, EncodedSecret>();
const MAX_ENCODED = 4096;

function memo(digest: string, encode: () => EncodedSecret): () => EncodedSecret {
  return () => {
    let e = encodedByDigest.get(digest);
    if (e === undefined) {
      if (encodedByDigest.size >= MAX_ENCODED) encodedByDigest.clear();
      e = encode();
      encodedByDigest.set(digest, e);
    }
    return e;
  };
}

function pemChain(ders: Uint8Array[]): string {
  return ders.map((d) => toPem('CERTIFICATE', d)).join('');
}

function svid(name: string, id: X509Identity): Resolved {
  const h = createHash('sha256').update(`svid\0${name}\0`);
  // The key is not hashed: a new key always comes with a new leaf.
  for (const c of id.chain) h.update(c);
  const digest = h.digest('hex');
  return { name, digest, encode: memo(digest, () => tlsCertificateSecret(name, pemChain(id.chain), toPem('PRIVATE KEY', id.privateKey))) };
}

function bundles(name: string, list: SpiffeBundle[], spiffe: boolean): Resolved {
  const h = createHash('sha256').update(`bundles\0${name}\0${spiffe}\0`);
  const parts = list.map((b) => {
    const ders = b.x509.authorities();
    h.update(`${b.trustDomain.name}\0`);
    for (const d of ders) h.update(d);
    return { trustDomain: b.trustDomain.name, ders };
  });
  const digest = h.digest('hex');
  return { name, digest, encode: memo(digest, () => validationContextSecret(name, parts.map((p) => ({ trustDomain: p.trustDomain, pem: pemChain(p.ders) })), spiffe)) };
}

/**
 * Whether this Envoy gets SPIFFECertValidatorConfig: on unless the agent's
 * switch is set, which a node may override either way through its metadata
 * key `disable_spiffe_cert_validation` (as SPIRE allows); never for an Envoy
 * that says it is older than 1.18, which lacks the validator.
 */
export function useSpiffeValidator(names: SdsNames, node: NodeInfo | undefined): boolean {
  const disabled = node?.disableSpiffeCertValidation ?? names.disableSpiffeCertValidation;
  if (disabled) return false;
  const v = node?.version;
  return v === undefined || v.major > 1 || (v.major === 1 && v.minor >= 18);
}

/**
 * Resolves each requested name for this caller. A name the caller cannot
 * have (not one of its SPIFFE IDs, a trust domain it does not federate with,
 * a name we do not know) is returned as unresolved, never as someone else's
 * secret.
 */
export function resolveNames(requested: Iterable<string>, view: CallerView, names: SdsNames, spiffe: boolean): { resolved: Resolved[]; unresolved: Unresolved[] } {
  const resolved: Resolved[] = [];
  const unresolved: Unresolved[] = [];
  const ownKey = `spiffe://${view.ownTrustDomain}`;
  for (const name of requested) {
    if (name === names.defaultSvidName) {
      resolved.push(svid(name, view.identities[0]!));
    } else if (name === names.defaultBundleName) {
      resolved.push(bundles(name, [view.bundles.get(ownKey)!], spiffe));
    } else if (name === names.defaultAllBundlesName) {
      // Plain trusted_ca cannot keep trust domains apart: one CA list would
      // let any federated CA vouch for IDs of any trust domain.
      if (!spiffe) unresolved.push({ name, reason: 'all bundles need the SPIFFE certificate validator, which is disabled for this Envoy' });
      else resolved.push(bundles(name, [...view.bundles.values()], true));
    } else if (name.startsWith('spiffe://')) {
      const r = byId(name, view, spiffe);
      if (typeof r === 'string') unresolved.push({ name, reason: r });
      else resolved.push(r);
    } else {
      unresolved.push({ name, reason: 'not a resource name this agent serves' });
    }
  }
  return { resolved, unresolved };
}

/** `spiffe://<td>`: that bundle; `spiffe://<td>/<path>`: that SVID of the caller's. */
function byId(name: string, view: CallerView, spiffe: boolean): Resolved | string {
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(name);
  } catch (err) {
    return `not a SPIFFE ID: ${(err as Error).message}`;
  }
  if (id.path === '') {
    const b = view.bundles.get(id.trustDomain.idString());
    return b === undefined ? 'no bundle of that trust domain for this caller' : bundles(name, [b], spiffe);
  }
  const match = view.identities.find((i) => i.spiffeId.equals(id));
  return match === undefined ? 'not an identity of this caller' : svid(name, match);
}
