// The PostgreSQL DataStore: connects a bounded pool (this file), applies the
// schema (schema.ts) and composes one module per record family, all sharing
// one checked pool (write.ts). This file holds the connection settings and
// the composition, so each family's SQL sits next to the code that maps its rows.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { ConnectionOptions } from 'node:tls';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { type Logger, silentLogger } from '../../../common/log.js';
import type {
  AgentReport,
  AnchorSighting,
  AttestedAgent,
  DataStore,
  EntryFilter,
  FederationRelationship,
  JoinToken,
  JournalEntry,
  NewEntry,
  NewRelationship,
  RegistrationEntry,
  RelationshipStatus,
  StoredBundle,
} from '../DataStore.js';
import { PgBundles } from './bundles.js';
import { PgCaJournal } from './ca-journal.js';
import { PgCluster } from './cluster.js';
import { type PgTarget, describeTarget } from './connection.js';
import { PgEntries } from './entries.js';
import { PgFederation } from './federation.js';
import { PgMeta } from './meta.js';
import { PgAudit } from './audit.js';
import { chainEvents, type AuditRecord, type ChainHead, type TimedEvent } from '../../audit/chain.js';
import type { AuditQuery } from '../DataStore.js';
import { migrate } from './schema.js';
import { PgTokensAndAgents } from './tokens-agents.js';
import { CheckedPool } from './write.js';

/** Options for {@link PostgresDataStore.open}. */
export interface PostgresDataStoreOptions {
  target: PgTarget;
  /** Undefined: the server authenticates without one (peer, trust or certificate auth). */
  password?: string;
  /** Most connections this store holds open at once; callers beyond it wait (up to connectTimeout). */
  maxConnections: number;
  /** Seconds to wait for a connection (a new one, or a free one from the pool). */
  connectTimeout: number;
  /** Seconds any one statement may run before PostgreSQL cancels it. */
  statementTimeout: number;
  logger?: Logger;
  /** Clock for `createdAt` of new entries, in Unix seconds (as for SQLite). */
  now?: () => number;
}

/**
 * BIGINT columns (Unix seconds, revisions, sequences) as numbers: pg returns
 * int8 as strings, since they may exceed 2^53; ours never do.
 */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * The {@link DataStore} on a PostgreSQL database, which several server
 * processes may share: every write is one transaction on one connection,
 * and what must happen once (a join token consumed, a bundle sequence
 * raised, an entry's revision checked) is decided by PostgreSQL's row locks
 * and unique constraints, not by this process.
 */
export class PostgresDataStore implements DataStore {
  /** user@host:port/database, for messages (no password). */
  readonly where: string;
  private readonly db: CheckedPool;
  private readonly entries: PgEntries;
  private readonly tokensAndAgents: PgTokensAndAgents;
  private readonly bundles: PgBundles;
  private readonly federation: PgFederation;
  private readonly journal: PgCaJournal;
  private readonly meta: PgMeta;
  /**
   * What several servers on this database share besides the records: the
   * change channel (LISTEN/NOTIFY and its counter) and the federation fetch
   * lease (ca/cluster/).
   */
  readonly cluster: PgCluster;
  private readonly audit: PgAudit;

  private constructor(where: string, db: CheckedPool, now: () => number, newClient: () => pg.Client) {
    this.where = where;
    this.cluster = new PgCluster(db, newClient);
    this.db = db;
    this.entries = new PgEntries(db, now);
    this.tokensAndAgents = new PgTokensAndAgents(db);
    this.bundles = new PgBundles(db);
    this.federation = new PgFederation(db);
    this.journal = new PgCaJournal(db);
    this.meta = new PgMeta(db);
    this.audit = new PgAudit(db);
  }

  /**
   * Connects and brings the schema up to SCHEMA_VERSION (schema.ts), under an
   * advisory lock so that servers opening one database at once do not race.
   *
   * Fails with `unavailable` if the database cannot be reached or refuses
   * the login, and with `failed_precondition` if its schema was written by a
   * newer version of this code.
   */
  static async open(options: PostgresDataStoreOptions): Promise<PostgresDataStore> {
    const { target } = options;
    const where = `postgres ${describeTarget(target)}`;
    const log = options.logger ?? silentLogger();
    const connection = {
      host: target.host,
      port: target.port,
      user: target.user,
      database: target.database,
      ...(options.password !== undefined && { password: options.password }),
      ssl: tlsOptions(target, where),
      application_name: target.applicationName,
      connectionTimeoutMillis: options.connectTimeout * 1000,
      // A peer that went silent (no RST) fails the query after the statement
      // timeout plus the connection allowance, instead of hanging a caller for ever.
      query_timeout: (options.statementTimeout + options.connectTimeout) * 1000,
      keepAlive: true,
      types: TYPES,
    };
    const pool = new pg.Pool({
      ...connection,
      max: options.maxConnections,
      idleTimeoutMillis: 30_000,
      // Server side: no statement, and no transaction left idle by a stalled
      // client, holds locks longer than this.
      statement_timeout: options.statementTimeout * 1000,
      idle_in_transaction_session_timeout: options.statementTimeout * 1000,
    });
    // An idle connection that dies (PostgreSQL restarted) is reported here and
    // dropped from the pool; without a listener the event would end the process.
    pool.on('error', (err) => log.warn({ err: errorMessage(err), datastore: where }, 'datastore: idle PostgreSQL connection lost'));
    const db = new CheckedPool(pool);
    try {
      await db.write('open', (q) => migrate(q, where));
    } catch (err) {
      await db.close().catch(() => {});
      if (err instanceof AnchorageError && err.code === 'failed_precondition') throw err;
      const reason = err instanceof AnchorageError && err.cause !== undefined ? errorMessage(err.cause) : errorMessage(err);
      throw new AnchorageError('unavailable', `datastore: cannot open ${where}: ${reason}`, { cause: err });
    }
    log.info({ datastore: where }, 'datastore: PostgreSQL schema is current');
    // The LISTEN connection of ca/cluster/ lives outside the pool (it is held
    // for the server's life, and must not count against max_connections).
    return new PostgresDataStore(where, db, options.now ?? (() => Math.floor(Date.now() / 1000)), () => new pg.Client(connection));
  }

  // --- registration entries -------------------------------------------------

  createEntry(entry: NewEntry): Promise<RegistrationEntry> {
    return this.entries.createEntry(entry);
  }

  createEntries(entries: NewEntry[]): Promise<Array<{ entry: RegistrationEntry } | { error: AnchorageError }>> {
    return this.entries.createEntries(entries);
  }

  getEntry(id: string): Promise<RegistrationEntry | undefined> {
    return this.entries.getEntry(id);
  }

  listEntries(filter: EntryFilter = {}): Promise<RegistrationEntry[]> {
    return this.entries.listEntries(filter);
  }

  updateEntry(id: string, fields: NewEntry, expectRevision?: number): Promise<RegistrationEntry> {
    return this.entries.updateEntry(id, fields, expectRevision);
  }

  deleteEntry(id: string): Promise<RegistrationEntry> {
    return this.entries.deleteEntry(id);
  }

  // --- join tokens and attested agents --------------------------------------

  createJoinToken(token: JoinToken): Promise<void> {
    return this.tokensAndAgents.createJoinToken(token);
  }

  consumeJoinToken(token: string, now: number): Promise<JoinToken | undefined> {
    return this.tokensAndAgents.consumeJoinToken(token, now);
  }

  /** Also removes tokens expiring exactly at `now`: {@link consumeJoinToken} already refuses them. */
  pruneJoinTokens(now: number): Promise<number> {
    return this.tokensAndAgents.pruneJoinTokens(now);
  }

  putAgent(agent: AttestedAgent): Promise<void> {
    return this.tokensAndAgents.putAgent(agent);
  }

  getAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    return this.tokensAndAgents.getAgent(spiffeId);
  }

  listAgents(): Promise<AttestedAgent[]> {
    return this.tokensAndAgents.listAgents();
  }

  deleteAgent(spiffeId: string): Promise<void> {
    return this.tokensAndAgents.deleteAgent(spiffeId);
  }

  reportAgentState(spiffeId: string, report: AgentReport): Promise<boolean> {
    return this.tokensAndAgents.reportAgentState(spiffeId, report);
  }

  banAgent(spiffeId: string, at: number): Promise<boolean> {
    return this.tokensAndAgents.banAgent(spiffeId, at);
  }

  unbanAgent(spiffeId: string): Promise<boolean> {
    return this.tokensAndAgents.unbanAgent(spiffeId);
  }

  isAgentBanned(spiffeId: string): Promise<boolean> {
    return this.tokensAndAgents.isAgentBanned(spiffeId);
  }

  listBannedAgents(): Promise<string[]> {
    return this.tokensAndAgents.listBannedAgents();
  }

  // --- bundles --------------------------------------------------------------

  getBundle(trustDomain: string): Promise<StoredBundle | undefined> {
    return this.bundles.getBundle(trustDomain);
  }

  listBundles(): Promise<StoredBundle[]> {
    return this.bundles.listBundles();
  }

  putBundle(bundle: StoredBundle): Promise<void> {
    return this.bundles.putBundle(bundle);
  }

  listAnchorSightings(): Promise<AnchorSighting[]> {
    return this.bundles.listAnchorSightings();
  }

  deleteBundle(trustDomain: string): Promise<void> {
    return this.bundles.deleteBundle(trustDomain);
  }

  replaceBundle(bundle: StoredBundle, expectSequence: number): Promise<void> {
    return this.bundles.replaceBundle(bundle, expectSequence);
  }

  // --- federation relationships ---------------------------------------------

  createRelationship(r: NewRelationship, now: number): Promise<FederationRelationship> {
    return this.federation.createRelationship(r, now);
  }

  getRelationship(trustDomain: string): Promise<FederationRelationship | undefined> {
    return this.federation.getRelationship(trustDomain);
  }

  listRelationships(): Promise<FederationRelationship[]> {
    return this.federation.listRelationships();
  }

  updateRelationship(r: NewRelationship, now: number): Promise<FederationRelationship> {
    return this.federation.updateRelationship(r, now);
  }

  deleteRelationship(trustDomain: string): Promise<FederationRelationship> {
    return this.federation.deleteRelationship(trustDomain);
  }

  setRelationshipStatus(trustDomain: string, st: RelationshipStatus): Promise<boolean> {
    return this.federation.setRelationshipStatus(trustDomain, st);
  }

  // --- CA journal -----------------------------------------------------------

  listJournal(): Promise<JournalEntry[]> {
    return this.journal.listJournal();
  }

  putJournal(entry: JournalEntry): Promise<void> {
    return this.journal.putJournal(entry);
  }

  stampJournalPublished(id: string, sequence: number): Promise<void> {
    return this.journal.stampJournalPublished(id, sequence);
  }

  deleteJournal(id: string): Promise<void> {
    return this.journal.deleteJournal(id);
  }

  // --- server metadata ------------------------------------------------------

  getMeta(key: string): Promise<string | undefined> {
    return this.meta.getMeta(key);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.meta.setMeta(key, value);
  }

  /** Idempotent, so shutdown paths need not track whether they already closed. */
  close(): Promise<void> {
    return this.db.close();
  }

  // --- audit log ------------------------------------------------------------

  appendAuditRecords(records: AuditRecord[]): Promise<void> {
    return this.audit.append(records);
  }

  /** The chain is computed here, on the caller's thread: the append is a network round trip anyway. */
  async appendAuditEvents(prev: ChainHead, events: TimedEvent[]): Promise<string> {
    const records = chainEvents(prev, events);
    await this.audit.append(records);
    return records.length > 0 ? records[records.length - 1]!.hash : prev.hash;
  }

  listAuditRecords(query: AuditQuery): Promise<AuditRecord[]> {
    return this.audit.list(query);
  }

  lastAuditRecord(): Promise<AuditRecord | undefined> {
    return this.audit.last();
  }
}

/** node:tls settings for the connection string's sslmode (libpq's meanings). */
function tlsOptions(t: PgTarget, where: string): false | ConnectionOptions {
  if (t.sslmode === 'disable') return false;
  // require: encrypted, the server not verified (libpq's meaning).
  if (t.sslmode === 'require') return { rejectUnauthorized: false };
  let ca: string | undefined;
  if (t.sslrootcert !== undefined) {
    try {
      ca = readFileSync(t.sslrootcert, 'utf8');
    } catch (err) {
      throw new AnchorageError('failed_precondition', `datastore: ${where}: cannot read sslrootcert ${t.sslrootcert}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  return {
    rejectUnauthorized: true,
    ...(ca !== undefined && { ca }),
    // verify-ca: the chain is checked, the host name is not.
    ...(t.sslmode === 'verify-ca' && { checkServerIdentity: () => undefined }),
  };
}
