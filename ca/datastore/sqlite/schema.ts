// The SQLite schema: connection pragmas, the append-only migration steps and
// the code that applies them at open. Kept apart from the queries so that the
// DDL a database was built from can be read (and reviewed) in one place.
import type { Database as SqliteDatabase } from 'better-sqlite3';
import { AnchorageError } from '@anchorage/client/errors';

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
  // 3: agent IDs banned from attesting (anchorage agent ban). Apart from the
  // agents table: a ban may name an agent that never attested, and outlives
  // its record.
  `
  CREATE TABLE banned_agents (
    spiffe_id TEXT    PRIMARY KEY,
    banned_at INTEGER NOT NULL
  );
  `,
  // 4: what each agent last reported (agent API ReportState; 0 = never), and
  // when each trust anchor first appeared in a stored bundle (anchors list).
  `
  ALTER TABLE agents ADD COLUMN last_seen_at    INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE agents ADD COLUMN bundle_sequence INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE agents ADD COLUMN clock_skew_ms   INTEGER NOT NULL DEFAULT 0;

  CREATE TABLE anchor_sightings (
    trust_domain   TEXT    NOT NULL,
    anchor         TEXT    NOT NULL,
    first_seen_at  INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL,
    PRIMARY KEY (trust_domain, anchor)
  );
  `,
  // 5: the authority lifecycle (anchorage authority ...): which root signed
  // each intermediate, taint and revocation times, and the first bundle
  // sequence that held each root and JWT key (the gate on removing a root);
  // and, for several servers on one datastore, which server owns each key.
  `
  ALTER TABLE ca_journal ADD COLUMN issuer_id          TEXT    NOT NULL DEFAULT '';
  ALTER TABLE ca_journal ADD COLUMN tainted_at         INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE ca_journal ADD COLUMN revoked_at         INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE ca_journal ADD COLUMN published_sequence INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE ca_journal ADD COLUMN server_id          TEXT    NOT NULL DEFAULT '';
  `,
  // 6: the audit log (ca/audit/): append-only, hash-chained records. Only
  // seq, time and the filtered fields are columns; the rest of the event is
  // JSON in body (ca/datastore/audit-rows.ts).
  `
  CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    time_ms   INTEGER NOT NULL,
    type      TEXT    NOT NULL,
    spiffe_id TEXT,
    serial    TEXT,
    jti       TEXT,
    body      TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
  );
  -- Only time is indexed: it grows with seq, so its index is appended to.
  -- Indexes on spiffe_id, serial and jti take random keys, and each record
  -- would dirty its own index pages at every group commit: measured with
  -- bench mint (BENCH_AUDIT=ab), the audit log then cost 25 % of mint
  -- throughput, against 10 % without them. A lookup by SPIFFE ID or serial
  -- scans (from --since when given): an operator's query, not a hot path.
  CREATE INDEX audit_log_time_ms ON audit_log (time_ms);
  `,
];

/** The schema version this code writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the schema of `db` (opened from `file`) up to {@link SCHEMA_VERSION},
 * one step per transaction; refuses a file written by a newer build.
 */
export function migrate(db: SqliteDatabase, file: string): void {
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
