// The rows both datastores read back and how each becomes a DataStore
// record. SQLite and PostgreSQL name their columns alike and hold the same
// values, but for booleans: SQLite stores 0 and 1, PostgreSQL true and false,
// so those are read with Boolean().
import type { AttestedAgent, FederationProfile, FederationRelationship, JournalEntry, JournalKind, JournalStatus, RegistrationEntry, Selector, StoredBundle } from './DataStore.js';

export interface EntryRow {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: string;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string;
  federates_with: string;
  hint: string;
  admin: boolean | number;
  downstream: boolean | number;
  revision: number;
  created_at: number;
}

export function entryFromRow(r: EntryRow): RegistrationEntry {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    parentId: r.parent_id,
    selectors: JSON.parse(r.selectors) as Selector[],
    x509SvidTtl: r.x509_svid_ttl,
    jwtSvidTtl: r.jwt_svid_ttl,
    dnsNames: JSON.parse(r.dns_names) as string[],
    federatesWith: JSON.parse(r.federates_with) as string[],
    hint: r.hint,
    admin: Boolean(r.admin),
    downstream: Boolean(r.downstream),
    revision: r.revision,
    createdAt: r.created_at,
  };
}

export interface JoinTokenRow {
  token: string;
  spiffe_id: string | null;
  expires_at: number;
}

export interface AgentRow {
  spiffe_id: string;
  attestation_type: string;
  cert_serial: string;
  cert_not_after: number;
  selectors: string;
  evicted: boolean | number;
  created_at: number;
  updated_at: number;
  last_seen_at: number;
  bundle_sequence: number;
  clock_skew_ms: number;
}

export function agentFromRow(r: AgentRow): AttestedAgent {
  return {
    spiffeId: r.spiffe_id,
    attestationType: r.attestation_type,
    certSerial: r.cert_serial,
    certNotAfter: r.cert_not_after,
    selectors: JSON.parse(r.selectors) as Selector[],
    evicted: Boolean(r.evicted),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(r.last_seen_at > 0 ? { report: { seenAt: r.last_seen_at, bundleSequence: r.bundle_sequence, clockSkewMs: r.clock_skew_ms } } : {}),
  };
}

export interface BundleRow {
  trust_domain: string;
  document: string;
  sequence: number;
  refresh_hint: number;
  updated_at: number;
}

export function bundleFromRow(r: BundleRow): StoredBundle {
  return {
    trustDomain: r.trust_domain,
    document: r.document,
    sequence: r.sequence,
    refreshHint: r.refresh_hint,
    updatedAt: r.updated_at,
  };
}

export interface JournalRow {
  id: string;
  kind: JournalKind;
  status: JournalStatus;
  key_id: string;
  cert_der: Buffer | null;
  public_key_spki: Buffer | null;
  kid: string | null;
  not_before: number;
  not_after: number;
  created_at: number;
  issuer_id: string;
  tainted_at: number;
  revoked_at: number;
  published_sequence: number;
  server_id: string;
}

export function journalFromRow(r: JournalRow): JournalEntry {
  const entry: JournalEntry = {
    id: r.id,
    kind: r.kind,
    status: r.status,
    keyId: r.key_id,
    notBefore: r.not_before,
    notAfter: r.not_after,
    createdAt: r.created_at,
  };
  // The lifecycle fields only when set: a row written without them reads back equal.
  if (r.issuer_id) entry.issuerId = r.issuer_id;
  if (Number(r.tainted_at)) entry.taintedAt = Number(r.tainted_at);
  if (Number(r.revoked_at)) entry.revokedAt = Number(r.revoked_at);
  if (Number(r.published_sequence)) entry.publishedSequence = Number(r.published_sequence);
  if (r.server_id) entry.serverId = r.server_id;
  // Copies into plain Uint8Arrays: callers compare and hash these, and a
  // Buffer's pooled backing store would surprise anyone reading `.buffer`.
  if (r.cert_der !== null) entry.certDer = new Uint8Array(r.cert_der);
  if (r.public_key_spki !== null) entry.publicKeySpki = new Uint8Array(r.public_key_spki);
  if (r.kid !== null) entry.kid = r.kid;
  return entry;
}

export function toBuffer(bytes: Uint8Array | undefined): Buffer | null {
  if (bytes === undefined) return null;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export interface RelationshipRow {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: FederationProfile;
  endpoint_spiffe_id: string;
  web_ca_pem: string;
  created_at: number;
  updated_at: number;
  last_attempt_at: number;
  last_success_at: number;
  last_error: string;
  last_error_reason: string;
  last_error_at: number;
  consecutive_failures: number;
  next_refresh_at: number;
}

export function relationshipFromRow(r: RelationshipRow): FederationRelationship {
  return {
    trustDomain: r.trust_domain,
    bundleEndpointUrl: r.bundle_endpoint_url,
    profile: r.profile,
    endpointSpiffeId: r.endpoint_spiffe_id,
    webCaPem: r.web_ca_pem,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastAttemptAt: r.last_attempt_at,
    lastSuccessAt: r.last_success_at,
    lastError: r.last_error,
    lastErrorReason: r.last_error_reason,
    lastErrorAt: r.last_error_at,
    consecutiveFailures: r.consecutive_failures,
    nextRefreshAt: r.next_refresh_at,
  };
}
