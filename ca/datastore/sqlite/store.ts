import { randomUUID } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase, Statement } from 'better-sqlite3';
import { AnchorageError, errorMessage } from '../../../common/errors.js';
import type {
  AttestedAgent,
  DataStore,
  EntryFilter,
  FederationProfile,
  FederationRelationship,
  JoinToken,
  JournalEntry,
  JournalKind,
  JournalStatus,
  NewEntry,
  NewRelationship,
  RegistrationEntry,
  RelationshipStatus,
  Selector,
  StoredBundle,
} from '../DataStore.js';

/**
 * Connection settings applied at every open, in this order. Exported so that
 * the durability test can drive a separate process with exactly the settings
 * the server uses.
 *
 * - WAL lets readers proceed while a write commits.
 * - `synchronous = FULL` fsyncs the WAL at every commit: with the default
 *   (NORMAL) in WAL mode a committed CA journal row could vanish on power loss,
 *   and a lost journal row means a second key generated for the same slot.
 * - Foreign keys are off by default in SQLite; we want them enforced for any
 *   future relation.
 * - busy_timeout makes a second process (the CLI against a running server)
 *   wait for the writer instead of failing at once with SQLITE_BUSY.
 */
export const SQLITE_PRAGMAS: readonly string[] = [
  'journal_mode = WAL',
  'synchronous = FULL',
  'foreign_keys = ON',
  'busy_timeout = 5000',
];

/**
 * Ordered schema steps; step i brings the schema to version i + 1. Steps are
 * append-only: a released step is never edited, a change is a new step, so a
 * database's recorded version always names exactly the SQL that built it.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE entries (
    id             TEXT    PRIMARY KEY,
    spiffe_id      TEXT    NOT NULL,
    parent_id      TEXT    NOT NULL,
    -- canonical JSON of the sorted, de-duplicated selector set: equal sets
    -- have equal text, so the UNIQUE constraint below enforces the rule
    selectors      TEXT    NOT NULL,
    x509_svid_ttl  INTEGER NOT NULL DEFAULT 0,
    jwt_svid_ttl   INTEGER NOT NULL DEFAULT 0,
    dns_names      TEXT    NOT NULL DEFAULT '[]',
    federates_with TEXT    NOT NULL DEFAULT '[]',
    hint           TEXT    NOT NULL DEFAULT '',
    admin          INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    downstream     INTEGER NOT NULL DEFAULT 0 CHECK (downstream IN (0, 1)),
    revision       INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    UNIQUE (spiffe_id, parent_id, selectors)
  );
  CREATE INDEX entries_parent_id ON entries (parent_id);
  CREATE INDEX entries_spiffe_id ON entries (spiffe_id);

  CREATE TABLE join_tokens (
    token      TEXT    PRIMARY KEY,
    spiffe_id  TEXT,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

  CREATE TABLE agents (
    spiffe_id        TEXT    PRIMARY KEY,
    attestation_type TEXT    NOT NULL,
    cert_serial      TEXT    NOT NULL,
    cert_not_after   INTEGER NOT NULL,
    selectors        TEXT    NOT NULL,
    evicted          INTEGER NOT NULL DEFAULT 0 CHECK (evicted IN (0, 1)),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
  );

  CREATE TABLE bundles (
    trust_domain TEXT    PRIMARY KEY,
    document     TEXT    NOT NULL,
    sequence     INTEGER NOT NULL,
    refresh_hint INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
  );

  CREATE TABLE ca_journal (
    id              TEXT    PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('root', 'x509', 'jwt')),
    status          TEXT    NOT NULL CHECK (status IN ('preparing', 'prepared', 'active', 'old')),
    key_id          TEXT    NOT NULL,
    cert_der        BLOB,
    public_key_spki BLOB,
    kid             TEXT,
    not_before      INTEGER NOT NULL,
    not_after       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
  );

  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 2: federation relationships, with the federation client's last outcome.
  `
  CREATE TABLE federation_relationships (
    trust_domain           TEXT    PRIMARY KEY,
    bundle_endpoint_url    TEXT    NOT NULL,
    profile                TEXT    NOT NULL CHECK (profile IN ('https_spiffe', 'https_web')),
    endpoint_spiffe_id     TEXT    NOT NULL DEFAULT '',
    web_ca_pem             TEXT    NOT NULL DEFAULT '',
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    last_attempt_at        INTEGER NOT NULL DEFAULT 0,
    last_success_at        INTEGER NOT NULL DEFAULT 0,
    last_error             TEXT    NOT NULL DEFAULT '',
    last_error_reason      TEXT    NOT NULL DEFAULT '',
    last_error_at          INTEGER NOT NULL DEFAULT 0,
    consecutive_failures   INTEGER NOT NULL DEFAULT 0,
    next_refresh_at        INTEGER NOT NULL DEFAULT 0
  );
  `,
];

/** The schema version this code writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Options for {@link SqliteDataStore.open}. */
export interface SqliteDataStoreOptions {
  /**
   * Clock for `createdAt` of new entries, in Unix seconds. Injectable so tests
   * can assert timestamps; defaults to the wall clock.
   */
  now?: () => number;
}

interface EntryRow {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: string;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string;
  federates_with: string;
  hint: string;
  admin: number;
  downstream: number;
  revision: number;
  created_at: number;
}

interface JoinTokenRow {
  token: string;
  spiffe_id: string | null;
  expires_at: number;
}

interface AgentRow {
  spiffe_id: string;
  attestation_type: string;
  cert_serial: string;
  cert_not_after: number;
  selectors: string;
  evicted: number;
  created_at: number;
  updated_at: number;
}

interface BundleRow {
  trust_domain: string;
  document: string;
  sequence: number;
  refresh_hint: number;
  updated_at: number;
}

interface RelationshipRow {
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

interface JournalRow {
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
}

/** Named parameters of the entry insert/update statements. */
interface EntryParams {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: string;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string;
  federates_with: string;
  hint: string;
  admin: number;
  downstream: number;
}

// Prepared once per connection; the SQL lives here so that the constructor
// reads as a list of names.
const SQL = {
  entryInsert: `INSERT INTO entries (id, spiffe_id, parent_id, selectors, x509_svid_ttl, jwt_svid_ttl,
      dns_names, federates_with, hint, admin, downstream, revision, created_at)
    VALUES (@id, @spiffe_id, @parent_id, @selectors, @x509_svid_ttl, @jwt_svid_ttl,
      @dns_names, @federates_with, @hint, @admin, @downstream, 1, @created_at)
    RETURNING *`,
  entryGet: 'SELECT * FROM entries WHERE id = ?',
  entryListAll: 'SELECT * FROM entries ORDER BY spiffe_id, parent_id, id',
  entryListByParent: 'SELECT * FROM entries WHERE parent_id = ? ORDER BY spiffe_id, parent_id, id',
  entryListBySpiffe: 'SELECT * FROM entries WHERE spiffe_id = ? ORDER BY spiffe_id, parent_id, id',
  entryListByBoth:
    'SELECT * FROM entries WHERE parent_id = ? AND spiffe_id = ? ORDER BY spiffe_id, parent_id, id',
  entryUpdate: `UPDATE entries SET spiffe_id = @spiffe_id, parent_id = @parent_id, selectors = @selectors,
      x509_svid_ttl = @x509_svid_ttl, jwt_svid_ttl = @jwt_svid_ttl, dns_names = @dns_names,
      federates_with = @federates_with, hint = @hint, admin = @admin, downstream = @downstream,
      revision = revision + 1
    WHERE id = @id
    RETURNING *`,
  entryDelete: 'DELETE FROM entries WHERE id = ? RETURNING *',

  tokenInsert: 'INSERT INTO join_tokens (token, spiffe_id, expires_at) VALUES (?, ?, ?)',
  tokenTake: 'DELETE FROM join_tokens WHERE token = ? RETURNING *',
  tokenPrune: 'DELETE FROM join_tokens WHERE expires_at <= ?',

  agentPut: `INSERT INTO agents (spiffe_id, attestation_type, cert_serial, cert_not_after, selectors,
      evicted, created_at, updated_at)
    VALUES (@spiffe_id, @attestation_type, @cert_serial, @cert_not_after, @selectors,
      @evicted, @created_at, @updated_at)
    ON CONFLICT (spiffe_id) DO UPDATE SET attestation_type = excluded.attestation_type,
      cert_serial = excluded.cert_serial, cert_not_after = excluded.cert_not_after,
      selectors = excluded.selectors, evicted = excluded.evicted,
      created_at = excluded.created_at, updated_at = excluded.updated_at`,
  agentGet: 'SELECT * FROM agents WHERE spiffe_id = ?',
  agentList: 'SELECT * FROM agents ORDER BY spiffe_id',
  agentDelete: 'DELETE FROM agents WHERE spiffe_id = ?',

  bundleGet: 'SELECT * FROM bundles WHERE trust_domain = ?',
  bundleList: 'SELECT * FROM bundles ORDER BY trust_domain',
  // The WHERE on the upsert makes the sequence check and the write one
  // statement, so two writers cannot both pass the check.
  bundlePut: `INSERT INTO bundles (trust_domain, document, sequence, refresh_hint, updated_at)
    VALUES (@trust_domain, @document, @sequence, @refresh_hint, @updated_at)
    ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document,
      sequence = excluded.sequence, refresh_hint = excluded.refresh_hint,
      updated_at = excluded.updated_at
    WHERE excluded.sequence > bundles.sequence`,
  bundleDelete: 'DELETE FROM bundles WHERE trust_domain = ?',
  bundleReplace: `UPDATE bundles SET document = @document, sequence = @sequence, refresh_hint = @refresh_hint,
      updated_at = @updated_at
    WHERE trust_domain = @trust_domain AND sequence = @expect_sequence`,

  relInsert: `INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile,
      endpoint_spiffe_id, web_ca_pem, created_at, updated_at)
    VALUES (@trust_domain, @bundle_endpoint_url, @profile, @endpoint_spiffe_id, @web_ca_pem, @now, @now)
    RETURNING *`,
  relGet: 'SELECT * FROM federation_relationships WHERE trust_domain = ?',
  relList: 'SELECT * FROM federation_relationships ORDER BY trust_domain',
  relUpdate: `UPDATE federation_relationships SET bundle_endpoint_url = @bundle_endpoint_url,
      profile = @profile, endpoint_spiffe_id = @endpoint_spiffe_id, web_ca_pem = @web_ca_pem,
      updated_at = @now
    WHERE trust_domain = @trust_domain
    RETURNING *`,
  relDelete: 'DELETE FROM federation_relationships WHERE trust_domain = ? RETURNING *',
  relStatus: `UPDATE federation_relationships SET last_attempt_at = @last_attempt_at,
      last_success_at = @last_success_at, last_error = @last_error,
      last_error_reason = @last_error_reason, last_error_at = @last_error_at,
      consecutive_failures = @consecutive_failures, next_refresh_at = @next_refresh_at
    WHERE trust_domain = @trust_domain`,

  journalList: 'SELECT * FROM ca_journal ORDER BY created_at, id',
  journalPut: `INSERT INTO ca_journal (id, kind, status, key_id, cert_der, public_key_spki, kid,
      not_before, not_after, created_at)
    VALUES (@id, @kind, @status, @key_id, @cert_der, @public_key_spki, @kid,
      @not_before, @not_after, @created_at)
    ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, status = excluded.status,
      key_id = excluded.key_id, cert_der = excluded.cert_der,
      public_key_spki = excluded.public_key_spki, kid = excluded.kid,
      not_before = excluded.not_before, not_after = excluded.not_after,
      created_at = excluded.created_at`,
  journalDelete: 'DELETE FROM ca_journal WHERE id = ?',

  metaGet: 'SELECT value FROM meta WHERE key = ?',
  metaSet: `INSERT INTO meta (key, value) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value`,

  // Every write runs between these two (see SqliteDataStore.write).
  begin: 'BEGIN IMMEDIATE',
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
} as const;

type Statements = Record<keyof typeof SQL, Statement>;

/**
 * The embedded {@link DataStore}: one SQLite file, opened by one server
 * process (other processes may read or write briefly; busy_timeout serialises
 * them). better-sqlite3 is synchronous, so every method finishes its work
 * before its promise settles; the async surface exists for the interface, and
 * because calls never interleave inside a method, a multi-statement method is
 * atomic with respect to other calls in this process as well as to other
 * processes (it runs in a transaction).
 */
export class SqliteDataStore implements DataStore {
  readonly path: string;
  private readonly db: SqliteDatabase;
  private readonly stmt: Statements;
  private readonly now: () => number;
  private closed = false;

  private constructor(path: string, db: SqliteDatabase, now: () => number) {
    this.path = path;
    this.db = db;
    this.now = now;
    const stmt: Partial<Statements> = {};
    for (const [name, sql] of Object.entries(SQL) as [keyof typeof SQL, string][]) {
      stmt[name] = db.prepare(sql);
    }
    this.stmt = stmt as Statements;
  }

  /**
   * Opens (creating if needed) the database at `path` and brings its schema up
   * to {@link SCHEMA_VERSION}. The directory is created 0700 and the file 0600
   * because the journal names HSM keys and the entries describe every workload:
   * nothing other users should read.
   *
   * Fails with `unavailable` if the file cannot be opened or is not a SQLite
   * database, and with `failed_precondition` if it was written by a newer
   * version of this code (downgrading would silently drop its changes).
   */
  static open(path: string, options: SqliteDataStoreOptions = {}): SqliteDataStore {
    const file = resolve(path);
    prepareFile(file);
    let db: SqliteDatabase | undefined;
    try {
      db = new Database(file, { fileMustExist: true });
      for (const pragma of SQLITE_PRAGMAS) db.pragma(pragma);
      // journal_mode silently stays as it was if WAL cannot be enabled (e.g. on
      // some network file systems); we rely on it, so check.
      const mode = db.pragma('journal_mode', { simple: true });
      if (mode !== 'wal') {
        throw new AnchorageError('unavailable', `datastore: ${file}: cannot enable WAL journal (mode is ${String(mode)})`);
      }
      migrate(db, file);
      restrictSidecars(file);
      return new SqliteDataStore(file, db, options.now ?? (() => Math.floor(Date.now() / 1000)));
    } catch (err) {
      db?.close();
      if (err instanceof AnchorageError) throw err;
      throw new AnchorageError('unavailable', `datastore: cannot open ${file}: ${errorMessage(err)}`, { cause: err });
    }
  }

  // --- registration entries -------------------------------------------------

  async createEntry(entry: NewEntry): Promise<RegistrationEntry> {
    return this.write('create entry', () => {
      const params = entryParams(randomUUID(), entry);
      try {
        const row = returned<EntryRow>(this.stmt.entryInsert, { ...params, created_at: this.now() });
        if (row === undefined) throw new AnchorageError('internal', 'datastore: entry insert returned no row');
        return entryFromRow(row);
      } catch (err) {
        throw duplicateEntry(err, entry) ?? err;
      }
    });
  }

  async getEntry(id: string): Promise<RegistrationEntry | undefined> {
    return this.run('get entry', () => {
      const row = this.stmt.entryGet.get(id) as EntryRow | undefined;
      return row === undefined ? undefined : entryFromRow(row);
    });
  }

  async listEntries(filter: EntryFilter = {}): Promise<RegistrationEntry[]> {
    return this.run('list entries', () => {
      const { parentId, spiffeId } = filter;
      let rows: unknown[];
      if (parentId !== undefined && spiffeId !== undefined) {
        rows = this.stmt.entryListByBoth.all(parentId, spiffeId);
      } else if (parentId !== undefined) {
        rows = this.stmt.entryListByParent.all(parentId);
      } else if (spiffeId !== undefined) {
        rows = this.stmt.entryListBySpiffe.all(spiffeId);
      } else {
        rows = this.stmt.entryListAll.all();
      }
      return (rows as EntryRow[]).map(entryFromRow);
    });
  }

  async updateEntry(id: string, fields: NewEntry, expectRevision?: number): Promise<RegistrationEntry> {
    return this.write('update entry', () => {
      const current = this.stmt.entryGet.get(id) as EntryRow | undefined;
      if (current === undefined) {
        throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
      }
      if (expectRevision !== undefined && current.revision !== expectRevision) {
        throw new AnchorageError(
          'failed_precondition',
          `datastore: entry ${id} is at revision ${current.revision}, not ${expectRevision}`,
        );
      }
      try {
        const row = returned<EntryRow>(this.stmt.entryUpdate, entryParams(id, fields));
        if (row === undefined) throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
        return entryFromRow(row);
      } catch (err) {
        throw duplicateEntry(err, fields) ?? err;
      }
    });
  }

  async deleteEntry(id: string): Promise<RegistrationEntry> {
    return this.write('delete entry', () => {
      const row = returned<EntryRow>(this.stmt.entryDelete, id);
      if (row === undefined) throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
      return entryFromRow(row);
    });
  }

  // --- join tokens ----------------------------------------------------------

  async createJoinToken(token: JoinToken): Promise<void> {
    this.write('create join token', () => {
      try {
        this.stmt.tokenInsert.run(token.token, token.spiffeId ?? null, token.expiresAt);
      } catch (err) {
        // The token itself is a secret: do not put it in the message.
        if (isSqliteCode(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
          throw new AnchorageError('already_exists', 'datastore: join token already exists', { cause: err });
        }
        throw err;
      }
    });
  }

  async consumeJoinToken(token: string, now: number): Promise<JoinToken | undefined> {
    // DELETE ... RETURNING is one statement, so two concurrent consumers
    // (even in different processes) cannot both receive the row.
    return this.write('consume join token', () => {
      const row = returned<JoinTokenRow>(this.stmt.tokenTake, token);
      if (row === undefined || now >= row.expires_at) return undefined;
      const taken: JoinToken = { token: row.token, expiresAt: row.expires_at };
      if (row.spiffe_id !== null) taken.spiffeId = row.spiffe_id;
      return taken;
    });
  }

  /** Also removes tokens expiring exactly at `now`: {@link consumeJoinToken} already refuses them. */
  async pruneJoinTokens(now: number): Promise<number> {
    return this.write('prune join tokens', () => this.stmt.tokenPrune.run(now).changes);
  }

  // --- attested agents ------------------------------------------------------

  async putAgent(agent: AttestedAgent): Promise<void> {
    this.write('put agent', () => {
      this.stmt.agentPut.run({
        spiffe_id: agent.spiffeId,
        attestation_type: agent.attestationType,
        cert_serial: agent.certSerial,
        cert_not_after: agent.certNotAfter,
        selectors: selectorsToJson(agent.selectors),
        evicted: agent.evicted ? 1 : 0,
        created_at: agent.createdAt,
        updated_at: agent.updatedAt,
      });
    });
  }

  async getAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    return this.run('get agent', () => {
      const row = this.stmt.agentGet.get(spiffeId) as AgentRow | undefined;
      return row === undefined ? undefined : agentFromRow(row);
    });
  }

  async listAgents(): Promise<AttestedAgent[]> {
    return this.run('list agents', () => (this.stmt.agentList.all() as AgentRow[]).map(agentFromRow));
  }

  async deleteAgent(spiffeId: string): Promise<void> {
    this.write('delete agent', () => {
      this.stmt.agentDelete.run(spiffeId);
    });
  }

  // --- bundles --------------------------------------------------------------

  async getBundle(trustDomain: string): Promise<StoredBundle | undefined> {
    return this.run('get bundle', () => {
      const row = this.stmt.bundleGet.get(trustDomain) as BundleRow | undefined;
      return row === undefined ? undefined : bundleFromRow(row);
    });
  }

  async listBundles(): Promise<StoredBundle[]> {
    return this.run('list bundles', () => (this.stmt.bundleList.all() as BundleRow[]).map(bundleFromRow));
  }

  async putBundle(bundle: StoredBundle): Promise<void> {
    this.write('put bundle', () => {
      const { changes } = this.stmt.bundlePut.run({
        trust_domain: bundle.trustDomain,
        document: bundle.document,
        sequence: bundle.sequence,
        refresh_hint: bundle.refreshHint,
        updated_at: bundle.updatedAt,
      });
      if (changes === 0) {
        throw new AnchorageError(
          'failed_precondition',
          `datastore: bundle of ${bundle.trustDomain} is already at sequence ${bundle.sequence} or later`,
        );
      }
    });
  }

  async deleteBundle(trustDomain: string): Promise<void> {
    this.write('delete bundle', () => {
      this.stmt.bundleDelete.run(trustDomain);
    });
  }

  async replaceBundle(bundle: StoredBundle, expectSequence: number): Promise<void> {
    this.write('replace bundle', () => {
      const { changes } = this.stmt.bundleReplace.run({
        trust_domain: bundle.trustDomain,
        document: bundle.document,
        sequence: bundle.sequence,
        refresh_hint: bundle.refreshHint,
        updated_at: bundle.updatedAt,
        expect_sequence: expectSequence,
      });
      if (changes === 0) {
        throw new AnchorageError('failed_precondition', `datastore: bundle of ${bundle.trustDomain} is no longer at sequence ${expectSequence}`);
      }
    });
  }

  // --- federation relationships ---------------------------------------------

  async createRelationship(r: NewRelationship, now: number): Promise<FederationRelationship> {
    return this.write('create relationship', () => {
      try {
        const row = returned<RelationshipRow>(this.stmt.relInsert, relationshipParams(r, now));
        if (row === undefined) throw new AnchorageError('internal', 'datastore: relationship insert returned no row');
        return relationshipFromRow(row);
      } catch (err) {
        if (isSqliteCode(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
          throw new AnchorageError('already_exists', `datastore: a federation relationship with ${r.trustDomain} already exists`, { cause: err });
        }
        throw err;
      }
    });
  }

  async getRelationship(trustDomain: string): Promise<FederationRelationship | undefined> {
    return this.run('get relationship', () => {
      const row = this.stmt.relGet.get(trustDomain) as RelationshipRow | undefined;
      return row === undefined ? undefined : relationshipFromRow(row);
    });
  }

  async listRelationships(): Promise<FederationRelationship[]> {
    return this.run('list relationships', () => (this.stmt.relList.all() as RelationshipRow[]).map(relationshipFromRow));
  }

  async updateRelationship(r: NewRelationship, now: number): Promise<FederationRelationship> {
    return this.write('update relationship', () => {
      const row = returned<RelationshipRow>(this.stmt.relUpdate, relationshipParams(r, now));
      if (row === undefined) throw new AnchorageError('not_found', `datastore: no federation relationship with ${r.trustDomain}`);
      return relationshipFromRow(row);
    });
  }

  async deleteRelationship(trustDomain: string): Promise<FederationRelationship> {
    return this.write('delete relationship', () => {
      const row = returned<RelationshipRow>(this.stmt.relDelete, trustDomain);
      if (row === undefined) throw new AnchorageError('not_found', `datastore: no federation relationship with ${trustDomain}`);
      return relationshipFromRow(row);
    });
  }

  async setRelationshipStatus(trustDomain: string, st: RelationshipStatus): Promise<boolean> {
    return this.write('set relationship status', () => {
      const { changes } = this.stmt.relStatus.run({
        trust_domain: trustDomain,
        last_attempt_at: st.lastAttemptAt,
        last_success_at: st.lastSuccessAt,
        last_error: st.lastError,
        last_error_reason: st.lastErrorReason,
        last_error_at: st.lastErrorAt,
        consecutive_failures: st.consecutiveFailures,
        next_refresh_at: st.nextRefreshAt,
      });
      return changes > 0;
    });
  }

  // --- CA journal -----------------------------------------------------------

  async listJournal(): Promise<JournalEntry[]> {
    return this.run('list journal', () => (this.stmt.journalList.all() as JournalRow[]).map(journalFromRow));
  }

  async putJournal(entry: JournalEntry): Promise<void> {
    this.write('put journal', () => {
      this.stmt.journalPut.run({
        id: entry.id,
        kind: entry.kind,
        status: entry.status,
        key_id: entry.keyId,
        cert_der: toBuffer(entry.certDer),
        public_key_spki: toBuffer(entry.publicKeySpki),
        kid: entry.kid ?? null,
        not_before: entry.notBefore,
        not_after: entry.notAfter,
        created_at: entry.createdAt,
      });
    });
  }

  async deleteJournal(id: string): Promise<void> {
    this.write('delete journal', () => {
      this.stmt.journalDelete.run(id);
    });
  }

  // --- server metadata ------------------------------------------------------

  async getMeta(key: string): Promise<string | undefined> {
    return this.run('get meta', () => {
      const row = this.stmt.metaGet.get(key) as { value: string } | undefined;
      return row?.value;
    });
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.write('set meta', () => {
      this.stmt.metaSet.run(key, value);
    });
  }

  /** Idempotent, so shutdown paths need not track whether they already closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /**
   * Runs one operation, turning SQLite failures into coded errors so callers
   * never branch on driver error classes.
   */
  private run<T>(op: string, fn: () => T): T {
    if (this.closed) throw new AnchorageError('failed_precondition', `datastore: ${op}: the datastore is closed`);
    try {
      return fn();
    } catch (err) {
      if (err instanceof AnchorageError) throw err;
      throw new AnchorageError(codeForSqliteError(err), `datastore: ${op}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Runs one write in an explicit IMMEDIATE transaction and returns only once
   * COMMIT has succeeded.
   *
   * Why not autocommit: in autocommit mode SQLite commits when a statement is
   * reset, and better-sqlite3's `.get()` resets a RETURNING statement after the
   * first row without looking at the result. On a full disk the commit then
   * fails unseen and the caller gets a row that was never saved (issue 10: 100
   * entries "created", 2 stored). An explicit COMMIT reports its failure.
   *
   * On any failure the transaction is rolled back here, so the connection is
   * never left inside a dead transaction and the next write starts clean once
   * the disk has room again.
   */
  private write<T>(op: string, fn: () => T): T {
    if (this.closed) throw new AnchorageError('failed_precondition', `datastore: ${op}: the datastore is closed`);
    try {
      this.stmt.begin.run();
      const result = fn();
      this.stmt.commit.run();
      return result;
    } catch (err) {
      if (this.db.inTransaction) {
        try {
          this.stmt.rollback.run();
        } catch {
          // SQLite has already rolled back after some I/O errors; the
          // original failure is the one worth reporting.
        }
      }
      if (err instanceof AnchorageError) throw err;
      throw writeError(op, err);
    }
  }
}

/**
 * Steps a RETURNING statement to completion (`.all()`, never `.get()`, which
 * stops after the first row) and returns its first row.
 */
function returned<Row>(stmt: Statement, ...params: unknown[]): Row | undefined {
  return (stmt.all(...params) as Row[])[0];
}

// --- opening ------------------------------------------------------------------

/** Creates the directory (0700) and an empty file (0600) before SQLite sees them. */
function prepareFile(file: string): void {
  const dir = dirname(file);
  try {
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700); // mkdir's mode is filtered by the umask
    }
    if (!existsSync(file)) {
      // SQLite would create the file with 0644 under a usual umask; create it
      // ourselves so it is never readable by others, even briefly. A zero-length
      // file is a valid empty database.
      closeSync(openSync(file, 'wx', 0o600));
    }
  } catch (err) {
    throw new AnchorageError('unavailable', `datastore: cannot create ${file}: ${errorMessage(err)}`, { cause: err });
  }
  if (!statSync(file).isFile()) {
    throw new AnchorageError('unavailable', `datastore: ${file} is not a regular file`);
  }
  try {
    restrictMode(file);
  } catch (err) {
    throw new AnchorageError('unavailable', `datastore: cannot restrict ${file} to mode 0600: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * SQLite creates -wal and -shm with the mode of the main file, so they follow
 * once the main file is 0600; this only repairs files left by an older setup.
 */
function restrictSidecars(file: string): void {
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(file + suffix)) restrictMode(file + suffix);
  }
}

function restrictMode(file: string): void {
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
}

function migrate(db: SqliteDatabase, file: string): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
  )`);
  const currentVersion = (): number =>
    (db.prepare('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as { v: number }).v;

  const found = currentVersion();
  if (found > MIGRATIONS.length) {
    throw new AnchorageError(
      'failed_precondition',
      `datastore: ${file} has schema version ${found} but this build knows only up to ${MIGRATIONS.length}; ` +
        'upgrade anchorage or restore a matching backup',
    );
  }
  const record = db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
  for (let version = found + 1; version <= MIGRATIONS.length; version++) {
    // IMMEDIATE takes the write lock before re-reading the version, so two
    // processes opening a fresh file do not both apply the same step.
    db.transaction(() => {
      if (currentVersion() >= version) return;
      db.exec(MIGRATIONS[version - 1]!);
      record.run(version, Math.floor(Date.now() / 1000));
    }).immediate();
  }
}

// --- row mapping -------------------------------------------------------------

/**
 * Sorted by type then value (code-unit order, independent of locale) and
 * de-duplicated, so that equal sets serialise to equal text.
 */
function normalizeSelectors(selectors: readonly Selector[]): Selector[] {
  const sorted = selectors
    .map((s) => ({ type: s.type, value: s.value }))
    .sort((a, b) => cmp(a.type, b.type) || cmp(a.value, b.value));
  return sorted.filter((s, i) => i === 0 || s.type !== sorted[i - 1]!.type || s.value !== sorted[i - 1]!.value);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function selectorsToJson(selectors: readonly Selector[]): string {
  return JSON.stringify(normalizeSelectors(selectors));
}

function entryParams(id: string, e: NewEntry): EntryParams {
  return {
    id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    selectors: selectorsToJson(e.selectors),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: JSON.stringify(e.dnsNames),
    federates_with: JSON.stringify(e.federatesWith),
    hint: e.hint,
    admin: e.admin ? 1 : 0,
    downstream: e.downstream ? 1 : 0,
  };
}

function entryFromRow(r: EntryRow): RegistrationEntry {
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
    admin: r.admin === 1,
    downstream: r.downstream === 1,
    revision: r.revision,
    createdAt: r.created_at,
  };
}

function agentFromRow(r: AgentRow): AttestedAgent {
  return {
    spiffeId: r.spiffe_id,
    attestationType: r.attestation_type,
    certSerial: r.cert_serial,
    certNotAfter: r.cert_not_after,
    selectors: JSON.parse(r.selectors) as Selector[],
    evicted: r.evicted === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function bundleFromRow(r: BundleRow): StoredBundle {
  return {
    trustDomain: r.trust_domain,
    document: r.document,
    sequence: r.sequence,
    refreshHint: r.refresh_hint,
    updatedAt: r.updated_at,
  };
}

function relationshipParams(r: NewRelationship, now: number): Record<string, string | number> {
  return {
    trust_domain: r.trustDomain,
    bundle_endpoint_url: r.bundleEndpointUrl,
    profile: r.profile,
    endpoint_spiffe_id: r.endpointSpiffeId,
    web_ca_pem: r.webCaPem,
    now,
  };
}

function relationshipFromRow(r: RelationshipRow): FederationRelationship {
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

function journalFromRow(r: JournalRow): JournalEntry {
  const entry: JournalEntry = {
    id: r.id,
    kind: r.kind,
    status: r.status,
    keyId: r.key_id,
    notBefore: r.not_before,
    notAfter: r.not_after,
    createdAt: r.created_at,
  };
  // Copies into plain Uint8Arrays: callers compare and hash these, and a
  // Buffer's pooled backing store would surprise anyone reading `.buffer`.
  if (r.cert_der !== null) entry.certDer = new Uint8Array(r.cert_der);
  if (r.public_key_spki !== null) entry.publicKeySpki = new Uint8Array(r.public_key_spki);
  if (r.kid !== null) entry.kid = r.kid;
  return entry;
}

function toBuffer(bytes: Uint8Array | undefined): Buffer | null {
  if (bytes === undefined) return null;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// --- errors ------------------------------------------------------------------

function isSqliteCode(err: unknown, code: string): boolean {
  return err instanceof Database.SqliteError && err.code === code;
}

function duplicateEntry(err: unknown, e: NewEntry): AnchorageError | undefined {
  if (!isSqliteCode(err, 'SQLITE_CONSTRAINT_UNIQUE')) return undefined;
  return new AnchorageError(
    'already_exists',
    `datastore: an entry for ${e.spiffeId} with parent ${e.parentId} and the same selectors already exists`,
    { cause: err },
  );
}

/**
 * The error for a failed write. A full disk or a lock means SQLite wrote no
 * commit record, so nothing was saved; after other I/O errors (an fsync that
 * failed after the commit record was written) SQLite cannot tell, and neither
 * can we, so the message says so instead of promising.
 */
function writeError(op: string, err: unknown): AnchorageError {
  const code = codeForSqliteError(err);
  if (code !== 'unavailable') return new AnchorageError(code, `datastore: ${op}: ${errorMessage(err)}`, { cause: err });
  const primary = primaryCode(err);
  const certain = ['SQLITE_FULL', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_READONLY', 'SQLITE_CANTOPEN'].includes(primary);
  const outcome = certain ? 'nothing was saved' : 'it may not have been saved';
  return new AnchorageError('unavailable', `datastore: ${op}: write failed, ${outcome}: ${errorMessage(err)}`, { cause: err });
}

function primaryCode(err: unknown): string {
  return err instanceof Database.SqliteError ? err.code.replace(/^(SQLITE_[A-Z]+).*$/, '$1') : '';
}

/**
 * Lock contention, I/O and corruption are conditions of the file, not of the
 * request: `unavailable`. Anything else (constraint violations we did not
 * anticipate, SQL errors) is a bug here: `internal`.
 */
function codeForSqliteError(err: unknown): 'unavailable' | 'internal' {
  if (!(err instanceof Database.SqliteError)) return 'internal';
  switch (primaryCode(err)) {
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
    case 'SQLITE_IOERR':
    case 'SQLITE_FULL':
    case 'SQLITE_CANTOPEN':
    case 'SQLITE_READONLY':
    case 'SQLITE_CORRUPT':
    case 'SQLITE_NOTADB':
    case 'SQLITE_PROTOCOL':
      return 'unavailable';
    default:
      return 'internal';
  }
}
