import { X509Certificate } from 'node:crypto';
import { AnchorageError, errorMessage, invalid } from '@anchorage/client/errors';
import { SpiffeId, type TrustDomain } from '@anchorage/client/spiffe/id';
import type { FederationRelationship as RelationshipProto } from '../../proto/gen/anchorage/admin/v1/FederationRelationship.js';
import type { FederatedBundle } from '../../proto/gen/anchorage/admin/v1/FederatedBundle.js';
import type { FederationProfile, FederationRelationship, NewRelationship } from '../datastore/DataStore.js';
import { parseEndpointUrl } from './fetch.js';
import { federatedTrustDomain } from './static.js';

/**
 * Federation relationships as an operator configures them: the peer trust
 * domain, its bundle endpoint URL and profile, and what authenticates the
 * endpoint (https_spiffe: its SPIFFE ID, checked against the peer's bundle;
 * https_web: Web PKI, optionally with a given CA).
 */

const PROFILES: readonly FederationProfile[] = ['https_spiffe', 'https_web'];
/** A PEM CA file is a handful of certificates; anything this large is not one. */
const MAX_WEB_CA_BYTES = 256 * 1024;

/** Checks what an operator sent and returns it in canonical form; every problem is one `invalid_argument` line. */
export function checkRelationship(
  input: { trust_domain: string; bundle_endpoint_url: string; profile: string; endpoint_spiffe_id: string; web_ca_pem: string },
  own: TrustDomain,
): NewRelationship {
  const td = federatedTrustDomain(input.trust_domain, own);
  if (!input.bundle_endpoint_url) throw invalid('federation: bundle_endpoint_url is required');
  const url = parseEndpointUrl(input.bundle_endpoint_url).href;
  if (!input.profile) throw invalid('federation: profile is required (https_spiffe or https_web)');
  if (!PROFILES.includes(input.profile as FederationProfile)) {
    throw invalid(`federation: profile "${input.profile}" is not one of https_spiffe, https_web`);
  }
  const profile = input.profile as FederationProfile;
  if (profile === 'https_spiffe') {
    if (input.web_ca_pem) throw invalid('federation: web_ca_pem is only for profile https_web (https_spiffe authenticates with the peer bundle)');
    if (!input.endpoint_spiffe_id) throw invalid('federation: endpoint_spiffe_id is required for profile https_spiffe');
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(input.endpoint_spiffe_id);
    } catch (err) {
      throw invalid(`federation: endpoint_spiffe_id: ${errorMessage(err)}`, err);
    }
    // The endpoint is authenticated with the bundle of the relationship's
    // trust domain, so its SVID can only be of that trust domain.
    if (!id.memberOf(td)) {
      throw invalid(`federation: endpoint_spiffe_id ${id.toString()} is not in trust domain ${td.name}, whose bundle authenticates the endpoint`);
    }
    return { trustDomain: td.name, bundleEndpointUrl: url, profile, endpointSpiffeId: id.toString(), webCaPem: '' };
  }
  if (input.endpoint_spiffe_id) throw invalid('federation: endpoint_spiffe_id is only for profile https_spiffe');
  return { trustDomain: td.name, bundleEndpointUrl: url, profile, endpointSpiffeId: '', webCaPem: checkWebCa(input.web_ca_pem) };
}

/** '' (system roots) or PEM text holding at least one parseable certificate and nothing else. */
function checkWebCa(pem: string): string {
  if (!pem) return '';
  if (Buffer.byteLength(pem) > MAX_WEB_CA_BYTES) throw invalid(`federation: web_ca_pem is larger than ${MAX_WEB_CA_BYTES} bytes`);
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw invalid('federation: web_ca_pem holds no PEM certificate');
  blocks.forEach((b, i) => {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw invalid(`federation: web_ca_pem: certificate ${i + 1} does not parse: ${errorMessage(err)}`, err);
    }
  });
  return `${blocks.join('\n')}\n`;
}

export function relationshipNotFound(td: string): AnchorageError {
  return new AnchorageError('not_found', `federation: no federation relationship with ${td}`);
}

export function toRelationshipProto(r: FederationRelationship, bundle: FederatedBundle | undefined): RelationshipProto {
  return {
    trust_domain: r.trustDomain,
    bundle_endpoint_url: r.bundleEndpointUrl,
    profile: r.profile,
    endpoint_spiffe_id: r.endpointSpiffeId,
    web_ca_pem: r.webCaPem,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    last_attempt_at: r.lastAttemptAt,
    last_success_at: r.lastSuccessAt,
    last_error: r.lastError,
    last_error_reason: r.lastErrorReason,
    last_error_at: r.lastErrorAt,
    consecutive_failures: r.consecutiveFailures,
    next_refresh_at: r.nextRefreshAt,
    ...(bundle && { bundle }),
  };
}
