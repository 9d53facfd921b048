// The PostgreSQL schema: the append-only migration steps and the code that
// applies them at open. Its own history, apart from SQLite's: step 1 is the
// schema SQLite reached in its four steps, in PostgreSQL's types.
//
// Text that lists are ordered by is COLLATE "C" (byte order, as SQLite's
// BINARY): the database's default collation depends on how the cluster was
// created, and list orders must not.
import { AnchorageError } from '@anchorage/client/errors';
import type { Query } from './write.js';

/**
 * Ordered schema steps; step i brings the schema to version i + 1. Steps are
 * append-only: a released step is never edited, a change is a new step, so a
 * database's recorded version always names exactly the SQL that built it.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE entries (
    id             TEXT COLLATE "C" PRIMARY KEY,
    spiffe_id      TEXT COLLATE "C" NOT NULL,
    parent_id      TEXT COLLATE "C" NOT NULL,
    -- canonical JSON of the sorted, de-duplicated selector set: equal sets
    -- have equal text, so the UNIQUE constraint below enforces the rule
    selectors      TEXT    NOT NULL,
    x509_svid_ttl  BIGINT  NOT NULL DEFAULT 0,
    jwt_svid_ttl   BIGINT  NOT NULL DEFAULT 0,
    dns_names      TEXT    NOT NULL DEFAULT '[]',
    federates_with TEXT    NOT NULL DEFAULT '[]',
    hint           TEXT    NOT NULL DEFAULT '',
    admin          BOOLEAN NOT NULL DEFAULT false,
    downstream     BOOLEAN NOT NULL DEFAULT false,
    revision       BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    CONSTRAINT entries_unique UNIQUE (spiffe_id, parent_id, selectors)
  );
  CREATE INDEX entries_parent_id ON entries (parent_id);
  CREATE INDEX entries_spiffe_id ON entries (spiffe_id);

  CREATE TABLE join_tokens (
    token      TEXT   PRIMARY KEY,
    spiffe_id  TEXT,
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

  CREATE TABLE agents (
    spiffe_id        TEXT COLLATE "C" PRIMARY KEY,
    attestation_type TEXT    NOT NULL,
    cert_serial      TEXT    NOT NULL,
    cert_not_after   BIGINT  NOT NULL,
    selectors        TEXT    NOT NULL,
    evicted          BOOLEAN NOT NULL DEFAULT false,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    -- what the agent last reported (agent API ReportState; 0 = never)
    last_seen_at     BIGINT  NOT NULL DEFAULT 0,
    bundle_sequence  BIGINT  NOT NULL DEFAULT 0,
    clock_skew_ms    BIGINT  NOT NULL DEFAULT 0
  );

  CREATE TABLE banned_agents (
    spiffe_id TEXT COLLATE "C" PRIMARY KEY,
    banned_at BIGINT NOT NULL
  );

  CREATE TABLE bundles (
    trust_domain TEXT COLLATE "C" PRIMARY KEY,
    document     TEXT   NOT NULL,
    sequence     BIGINT NOT NULL,
    refresh_hint BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
  );

  CREATE TABLE anchor_sightings (
    trust_domain   TEXT COLLATE "C" NOT NULL,
    anchor         TEXT COLLATE "C" NOT NULL,
    first_seen_at  BIGINT NOT NULL,
    first_sequence BIGINT NOT NULL,
    PRIMARY KEY (trust_domain, anchor)
  );

  CREATE TABLE ca_journal (
    id              TEXT COLLATE "C" PRIMARY KEY,
    kind            TEXT   NOT NULL CHECK (kind IN ('root', 'x509', 'jwt')),
    status          TEXT   NOT NULL CHECK (status IN ('preparing', 'prepared', 'active', 'old')),
    key_id          TEXT   NOT NULL,
    cert_der        BYTEA,
    public_key_spki BYTEA,
    kid             TEXT,
    not_before      BIGINT NOT NULL,
    not_after       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
  );

  CREATE TABLE federation_relationships (
    trust_domain         TEXT COLLATE "C" PRIMARY KEY,
    bundle_endpoint_url  TEXT   NOT NULL,
    profile              TEXT   NOT NULL CHECK (profile IN ('https_spiffe', 'https_web')),
    endpoint_spiffe_id   TEXT   NOT NULL DEFAULT '',
    web_ca_pem           TEXT   NOT NULL DEFAULT '',
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    last_attempt_at      BIGINT NOT NULL DEFAULT 0,
    last_success_at      BIGINT NOT NULL DEFAULT 0,
    last_error           TEXT   NOT NULL DEFAULT '',
    last_error_reason    TEXT   NOT NULL DEFAULT '',
    last_error_at        BIGINT NOT NULL DEFAULT 0,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    next_refresh_at      BIGINT NOT NULL DEFAULT 0
  );

  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 2: the authority lifecycle, as SQLite's step 5.
  `
  ALTER TABLE ca_journal ADD COLUMN issuer_id          TEXT   NOT NULL DEFAULT '';
  ALTER TABLE ca_journal ADD COLUMN tainted_at         BIGINT NOT NULL DEFAULT 0;
  ALTER TABLE ca_journal ADD COLUMN revoked_at         BIGINT NOT NULL DEFAULT 0;
  ALTER TABLE ca_journal ADD COLUMN published_sequence BIGINT NOT NULL DEFAULT 0;
  ALTER TABLE ca_journal ADD COLUMN server_id          TEXT   NOT NULL DEFAULT '';
  `,
  // 3: the audit log (ca/audit/): append-only, hash-chained records. Only
  // seq, time and the filtered fields are columns; the rest of the event is
  // JSON in body (ca/datastore/audit-rows.ts).
  `
  CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    time_ms   BIGINT NOT NULL,
    type      TEXT   NOT NULL,
    spiffe_id TEXT COLLATE "C",
    serial    TEXT COLLATE "C",
    jti       TEXT COLLATE "C",
    body      TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
  );
  CREATE INDEX audit_log_time_ms   ON audit_log (time_ms);
  CREATE INDEX audit_log_spiffe_id ON audit_log (spiffe_id) WHERE spiffe_id IS NOT NULL;
  CREATE INDEX audit_log_serial    ON audit_log (serial)    WHERE serial IS NOT NULL;
  CREATE INDEX audit_log_jti       ON audit_log (jti)       WHERE jti IS NOT NULL;
  `,
];

/** The schema version this code writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * The advisory lock every opener holds while it reads and raises the schema
 * version: two servers starting at once on a fresh database would otherwise
 * both create the same tables. ("anchrg" in ASCII: any fixed key works, it
 * only has to differ from other applications' keys in the same database.)
 */
export const MIGRATION_LOCK = '0x616e63687267';

/**
 * Brings the schema up to {@link SCHEMA_VERSION} inside the caller's
 * transaction (all steps commit together or not at all); refuses a database
 * written by a newer build. `where` names the database for messages.
 */
export async function migrate(q: Query, where: string): Promise<void> {
  await q('SELECT pg_advisory_xact_lock($1::bigint)', [BigInt(MIGRATION_LOCK).toString()]);
  await q(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at BIGINT  NOT NULL
  )`);
  const { rows } = await q<{ v: number }>('SELECT coalesce(max(version), 0) AS v FROM schema_migrations');
  const found = rows[0]!.v;
  if (found > MIGRATIONS.length) {
    throw new AnchorageError(
      'failed_precondition',
      `datastore: ${where} has schema version ${found} but this build knows only up to ${MIGRATIONS.length}; ` +
        'upgrade anchorage or restore a matching backup',
    );
  }
  for (let version = found + 1; version <= MIGRATIONS.length; version++) {
    await q(MIGRATIONS[version - 1]!);
    await q('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [version, Math.floor(Date.now() / 1000)]);
  }
}
