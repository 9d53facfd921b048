import type { AnchorageError } from '@anchorage/client/errors';
import type { Selector } from '../../common/selector.js';
import type { AuditRecord, ChainHead, TimedEvent } from '../audit/chain.js';
/**
 * The server's persistent state. Deliberately narrow and internal: it stores
 * records that the layers above have already validated (SPIFFE IDs arrive
 * here as canonical strings), so an implementation only has to be durable and
 * atomic. The SQLite implementation is the embedded default; the interface is
 * async so that a PostgreSQL implementation can follow without changing callers.
 *
 * Times are Unix seconds (integers) throughout.
 *
 * Every write either commits before its promise resolves or rejects with
 * `unavailable` (disk full, I/O error, lock timeout); a write that resolved is
 * durable, and one that rejected because the disk was full saved nothing.
 */
export interface DataStore {
  // --- registration entries -------------------------------------------------
  /** Fails with `already_exists` if an entry with the same spiffe_id, parent_id and selector set exists. */
  createEntry(entry: NewEntry): Promise<RegistrationEntry>;
  /**
   * Creates many entries in one transaction, with one result per entry in
   * order: the entry, or the `already_exists` error {@link createEntry}
   * would give (also for a duplicate within the list). Any other failure
   * (a full disk) fails the whole call and creates nothing.
   */
  createEntries(entries: NewEntry[]): Promise<Array<{ entry: RegistrationEntry } | { error: AnchorageError }>>;
  getEntry(id: string): Promise<RegistrationEntry | undefined>;
  listEntries(filter?: EntryFilter): Promise<RegistrationEntry[]>;
  /**
   * Replaces the mutable fields of an entry and raises its revision by one.
   * `not_found` if absent; `already_exists` if the change collides with another
   * entry; `failed_precondition` if `expectRevision` is given and differs.
   */
  updateEntry(id: string, fields: NewEntry, expectRevision?: number): Promise<RegistrationEntry>;
  /** Returns the deleted entry; `not_found` if absent. */
  deleteEntry(id: string): Promise<RegistrationEntry>;

  // --- join tokens ----------------------------------------------------------
  createJoinToken(token: JoinToken): Promise<void>;
  /**
   * Atomically removes and returns the token if it exists and `now` is before
   * its expiry; an expired token is removed and undefined returned. Single use.
   */
  consumeJoinToken(token: string, now: number): Promise<JoinToken | undefined>;
  /** Removes tokens that expired before `now`; returns how many. */
  pruneJoinTokens(now: number): Promise<number>;

  // --- attested agents ------------------------------------------------------
  putAgent(agent: AttestedAgent): Promise<void>;
  getAgent(spiffeId: string): Promise<AttestedAgent | undefined>;
  listAgents(): Promise<AttestedAgent[]>;
  deleteAgent(spiffeId: string): Promise<void>;
  /**
   * Records what an agent last reported (ReportState of the agent API) and
   * leaves the rest of its record alone; putAgent, in turn, keeps the report.
   * False if no such agent.
   */
  reportAgentState(spiffeId: string, report: AgentReport): Promise<boolean>;
  /**
   * Bans an agent ID from attesting (`anchorage agent ban`); kept apart from
   * the agent record, so a ban holds whether or not that agent ever attested
   * or its record was deleted. True when it was not banned before.
   */
  banAgent(spiffeId: string, at: number): Promise<boolean>;
  /** Lifts a ban; true when there was one. */
  unbanAgent(spiffeId: string): Promise<boolean>;
  /** True when the agent ID is banned. */
  isAgentBanned(spiffeId: string): Promise<boolean>;
  /** The banned agent IDs, sorted. */
  listBannedAgents(): Promise<string[]>;

  // --- bundles (own and federated) ------------------------------------------
  /** The stored bundle of a trust domain (name without scheme, e.g. "example.org"). */
  getBundle(trustDomain: string): Promise<StoredBundle | undefined>;
  listBundles(): Promise<StoredBundle[]>;
  /**
   * Stores a bundle. `failed_precondition` if a bundle is stored with a
   * sequence greater than or equal to the new one (sequences only increase).
   */
  putBundle(bundle: StoredBundle): Promise<void>;
  /**
   * When each trust anchor of a stored bundle first appeared: recorded by
   * putBundle and replaceBundle in the same transaction as the bundle, kept
   * when the anchor or the bundle goes (the record of what was trusted).
   */
  listAnchorSightings(): Promise<AnchorSighting[]>;
  deleteBundle(trustDomain: string): Promise<void>;
  /**
   * Replaces a bundle whose document carries no spiffe_sequence (stored as 0)
   * with another without one: no order can be checked, so the caller decides.
   * `failed_precondition` if the stored bundle's sequence is not `expectSequence`.
   */
  replaceBundle(bundle: StoredBundle, expectSequence: number): Promise<void>;

  // --- federation relationships ---------------------------------------------
  /** `already_exists` if a relationship with that trust domain exists. */
  createRelationship(r: NewRelationship, now: number): Promise<FederationRelationship>;
  getRelationship(trustDomain: string): Promise<FederationRelationship | undefined>;
  listRelationships(): Promise<FederationRelationship[]>;
  /** Replaces the configured fields (status is kept); `not_found` if absent. */
  updateRelationship(r: NewRelationship, now: number): Promise<FederationRelationship>;
  /** Returns the deleted relationship; `not_found` if absent. */
  deleteRelationship(trustDomain: string): Promise<FederationRelationship>;
  /** Records the outcome of a refresh; false if the relationship is gone. */
  setRelationshipStatus(trustDomain: string, status: RelationshipStatus): Promise<boolean>;

  // --- CA journal -----------------------------------------------------------
  listJournal(): Promise<JournalEntry[]>;
  /** Inserts or replaces by id. */
  putJournal(entry: JournalEntry): Promise<void>;
  deleteJournal(id: string): Promise<void>;
  /**
   * Sets a row's publishedSequence if it has none yet, and nothing else: a
   * server may stamp another server's row without overwriting its changes.
   */
  stampJournalPublished(id: string, sequence: number): Promise<void>;

  // --- server metadata (e.g. the trust domain fixed at first start) ----------
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;

  close(): Promise<void>;

  // --- audit log (ca/audit/log.ts; the chain is checked there, not here) ----
  /**
   * Appends records in ONE transaction: all are stored or none. The first
   * record's seq must be one past the stored head and the rest contiguous,
   * else `failed_precondition` and nothing is stored (another writer, or a
   * bug); no record is ever updated or deleted through this interface.
   */
  appendAuditRecords(records: AuditRecord[]): Promise<void>;
  /**
   * Appends events as the records that follow `prev` (the stored head), in
   * ONE transaction, with the same checks as appendAuditRecords. The records
   * are those of ca/audit/chain.ts chainEvents(prev, events), computed where
   * they are stored (SQLite: on its writer thread, off the caller's event
   * loop). Resolves with the hash of the last one.
   */
  appendAuditEvents(prev: ChainHead, events: TimedEvent[]): Promise<string>;
  /** Records in ascending seq that match every given condition, at most `limit`. */
  listAuditRecords(query: AuditQuery): Promise<AuditRecord[]>;
  /** The record with the highest seq; undefined for an empty log. */
  lastAuditRecord(): Promise<AuditRecord | undefined>;
}

/** Which audit records {@link DataStore.listAuditRecords} returns. */
export interface AuditQuery {
  /** Only records with seq greater than this (paging, following). */
  afterSeq?: number;
  /** Only records with time (milliseconds) at or after this. */
  sinceMs?: number;
  /** Only records about this SPIFFE ID. */
  spiffeId?: string;
  /** Only records with this X.509 serial (lowercase hex) or JWT jti. */
  serial?: string;
  /** At most this many (1..10,000). */
  limit: number;
}

/** Defined with the other types every layer shares (common/selector.ts). */
export type { Selector } from '../../common/selector.js';

export interface NewEntry {
  spiffeId: string;
  parentId: string;
  selectors: Selector[];
  /** 0 means the server default */
  x509SvidTtl: number;
  /** 0 means the server default */
  jwtSvidTtl: number;
  dnsNames: string[];
  /** trust domain names, e.g. "partner.example" */
  federatesWith: string[];
  hint: string;
  admin: boolean;
  downstream: boolean;
}

export interface RegistrationEntry extends NewEntry {
  id: string;
  revision: number;
  createdAt: number;
}

export interface EntryFilter {
  parentId?: string;
  spiffeId?: string;
}

export interface JoinToken {
  token: string;
  /** The SPIFFE ID an agent attesting with this token should alias to, if any. */
  spiffeId?: string;
  expiresAt: number;
}

export interface AttestedAgent {
  spiffeId: string;
  attestationType: string;
  /** Serial number (hex) of the agent's current SVID. */
  certSerial: string;
  certNotAfter: number;
  selectors: Selector[];
  evicted: boolean;
  createdAt: number;
  updatedAt: number;
  /** The agent's last report; absent until its first. Written only by reportAgentState. */
  report?: AgentReport;
}

/** The first appearance of a trust anchor in a trust domain's stored bundle. */
export interface AnchorSighting {
  trustDomain: string;
  /** `x509:<sha-256 of the certificate, hex>` or `jwt:<kid>` (./anchor-ids.ts). */
  anchor: string;
  /** updatedAt of the first bundle that had it. */
  firstSeenAt: number;
  /** That bundle's sequence. */
  firstSequence: number;
}

/** What an agent says it holds, and when the server heard it. */
export interface AgentReport {
  /** Server time of the report, Unix seconds. */
  seenAt: number;
  /** spiffe_sequence of the trust domain's bundle the agent holds. */
  bundleSequence: number;
  /** The agent's clock minus the server's at the report, milliseconds. */
  clockSkewMs: number;
}

export interface StoredBundle {
  trustDomain: string;
  /** The SPIFFE bundle document (JWKS JSON) as served. */
  document: string;
  sequence: number;
  refreshHint: number;
  updatedAt: number;
}

export type FederationProfile = 'https_spiffe' | 'https_web';

/** A federation relationship as configured by an operator. */
export interface NewRelationship {
  /** The peer trust domain (name without scheme). */
  trustDomain: string;
  bundleEndpointUrl: string;
  profile: FederationProfile;
  /** https_spiffe: the SPIFFE ID the endpoint's X509-SVID must carry; '' for https_web. */
  endpointSpiffeId: string;
  /** https_web: PEM CA certificates to verify the endpoint with; '' means the system roots. */
  webCaPem: string;
}

/** What the federation client last saw of a relationship's endpoint. */
export interface RelationshipStatus {
  /** Unix seconds; 0 = never. */
  lastAttemptAt: number;
  lastSuccessAt: number;
  /** The last failure ('' after a success) and its reason (tls, http, malformed, ...). */
  lastError: string;
  lastErrorReason: string;
  lastErrorAt: number;
  consecutiveFailures: number;
  /** When the client will fetch next (Unix seconds; 0 = not scheduled). */
  nextRefreshAt: number;
}

export interface FederationRelationship extends NewRelationship, RelationshipStatus {
  createdAt: number;
  updatedAt: number;
}

export type JournalKind = 'root' | 'x509' | 'jwt';
export type JournalStatus = 'preparing' | 'prepared' | 'active' | 'old';

/**
 * One piece of CA key material. The row is written (status `preparing`)
 * before its key is generated, so a restart finds the key again by `keyId`
 * instead of generating a second one.
 */
export interface JournalEntry {
  id: string;
  kind: JournalKind;
  status: JournalStatus;
  /** The KeyManager key id (PKCS#11 label). */
  keyId: string;
  /** DER certificate for root and x509 rows, once issued. */
  certDer?: Uint8Array;
  /** DER SPKI of the public key, once generated. */
  publicKeySpki?: Uint8Array;
  /** For jwt rows: the key id published in the bundle. */
  kid?: string;
  notBefore: number;
  notAfter: number;
  createdAt: number;
  /** x509 rows: the journal id of the root that signed it ('' = unknown: made before this was recorded). */
  issuerId?: string;
  /** Unix seconds an operator tainted it (anchorage authority ... taint); 0 or absent = not tainted. */
  taintedAt?: number;
  /** Unix seconds it was revoked: out of the bundle, key destroyed; the row stays for the record. */
  revokedAt?: number;
  /** root and jwt rows: the first bundle sequence that held it (0 or absent = not published yet). */
  publishedSequence?: number;
  /**
   * x509 and jwt rows: the server that owns the key and signs with it, when
   * several servers share the datastore ('' or absent: a lone server's).
   */
  serverId?: string;
}
