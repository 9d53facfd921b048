// The SQLite DataStore: opens the file (file.ts), applies the schema
// (schema.ts) and composes one module per record family, all sharing one
// checked connection (write.ts). This file holds only the composition, so each
// family's SQL sits next to the code that maps its rows.
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase } from 'better-sqlite3';
import { resolve } from 'node:path';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
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
import type { AuditRecord, ChainHead, TimedEvent } from '../../audit/chain.js';
import type { AuditQuery } from '../DataStore.js';
import { SqliteAudit } from './audit.js';
import { SqliteBundles } from './bundles.js';
import { SqliteCaJournal } from './ca-journal.js';
import { SqliteEntries } from './entries.js';
import { SqliteFederation } from './federation.js';
import { prepareFile, restrictSidecars } from './file.js';
import { SqliteMeta } from './meta.js';
import { SQLITE_PRAGMAS, migrate } from './schema.js';
import { SqliteTokensAndAgents } from './tokens-agents.js';
import { CheckedDb } from './write.js';

/** Options for {@link SqliteDataStore.open}. */
export interface SqliteDataStoreOptions {
  /**
   * Clock for `createdAt` of new entries, in Unix seconds. Injectable so tests
   * can assert timestamps; defaults to the wall clock.
   */
  now?: () => number;
}

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
  private readonly cdb: CheckedDb;
  private readonly entries: SqliteEntries;
  private readonly tokensAndAgents: SqliteTokensAndAgents;
  private readonly bundles: SqliteBundles;
  private readonly federation: SqliteFederation;
  private readonly journal: SqliteCaJournal;
  private readonly meta: SqliteMeta;
  private readonly audit: SqliteAudit;

  private constructor(path: string, db: SqliteDatabase, now: () => number) {
    this.path = path;
    this.cdb = new CheckedDb(db);
    this.entries = new SqliteEntries(this.cdb, now);
    this.tokensAndAgents = new SqliteTokensAndAgents(this.cdb);
    this.bundles = new SqliteBundles(this.cdb);
    this.federation = new SqliteFederation(this.cdb);
    this.journal = new SqliteCaJournal(this.cdb);
    this.meta = new SqliteMeta(this.cdb);
    this.audit = new SqliteAudit(this.cdb, path);
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

  // Each method below settles its promise with the family module's
  // synchronous result (or rejects with its error): better-sqlite3 is
  // synchronous, see the class comment.

  // --- registration entries -------------------------------------------------

  async createEntry(entry: NewEntry): Promise<RegistrationEntry> {
    return this.entries.createEntry(entry);
  }

  async createEntries(entries: NewEntry[]): Promise<Array<{ entry: RegistrationEntry } | { error: AnchorageError }>> {
    return this.entries.createEntries(entries);
  }

  async getEntry(id: string): Promise<RegistrationEntry | undefined> {
    return this.entries.getEntry(id);
  }

  async listEntries(filter: EntryFilter = {}): Promise<RegistrationEntry[]> {
    return this.entries.listEntries(filter);
  }

  async updateEntry(id: string, fields: NewEntry, expectRevision?: number): Promise<RegistrationEntry> {
    return this.entries.updateEntry(id, fields, expectRevision);
  }

  async deleteEntry(id: string): Promise<RegistrationEntry> {
    return this.entries.deleteEntry(id);
  }

  // --- join tokens and attested agents --------------------------------------

  async createJoinToken(token: JoinToken): Promise<void> {
    this.tokensAndAgents.createJoinToken(token);
  }

  async consumeJoinToken(token: string, now: number): Promise<JoinToken | undefined> {
    return this.tokensAndAgents.consumeJoinToken(token, now);
  }

  /** Also removes tokens expiring exactly at `now`: {@link consumeJoinToken} already refuses them. */
  async pruneJoinTokens(now: number): Promise<number> {
    return this.tokensAndAgents.pruneJoinTokens(now);
  }

  async putAgent(agent: AttestedAgent): Promise<void> {
    this.tokensAndAgents.putAgent(agent);
  }

  async getAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    return this.tokensAndAgents.getAgent(spiffeId);
  }

  async listAgents(): Promise<AttestedAgent[]> {
    return this.tokensAndAgents.listAgents();
  }

  async deleteAgent(spiffeId: string): Promise<void> {
    this.tokensAndAgents.deleteAgent(spiffeId);
  }

  async reportAgentState(spiffeId: string, report: AgentReport): Promise<boolean> {
    return this.tokensAndAgents.reportAgentState(spiffeId, report);
  }

  async banAgent(spiffeId: string, at: number): Promise<boolean> {
    return this.tokensAndAgents.banAgent(spiffeId, at);
  }

  async unbanAgent(spiffeId: string): Promise<boolean> {
    return this.tokensAndAgents.unbanAgent(spiffeId);
  }

  async isAgentBanned(spiffeId: string): Promise<boolean> {
    return this.tokensAndAgents.isAgentBanned(spiffeId);
  }

  async listBannedAgents(): Promise<string[]> {
    return this.tokensAndAgents.listBannedAgents();
  }

  // --- bundles --------------------------------------------------------------

  async getBundle(trustDomain: string): Promise<StoredBundle | undefined> {
    return this.bundles.getBundle(trustDomain);
  }

  async listBundles(): Promise<StoredBundle[]> {
    return this.bundles.listBundles();
  }

  async putBundle(bundle: StoredBundle): Promise<void> {
    this.bundles.putBundle(bundle);
  }

  async listAnchorSightings(): Promise<AnchorSighting[]> {
    return this.bundles.listAnchorSightings();
  }

  async deleteBundle(trustDomain: string): Promise<void> {
    this.bundles.deleteBundle(trustDomain);
  }

  async replaceBundle(bundle: StoredBundle, expectSequence: number): Promise<void> {
    this.bundles.replaceBundle(bundle, expectSequence);
  }

  // --- federation relationships ---------------------------------------------

  async createRelationship(r: NewRelationship, now: number): Promise<FederationRelationship> {
    return this.federation.createRelationship(r, now);
  }

  async getRelationship(trustDomain: string): Promise<FederationRelationship | undefined> {
    return this.federation.getRelationship(trustDomain);
  }

  async listRelationships(): Promise<FederationRelationship[]> {
    return this.federation.listRelationships();
  }

  async updateRelationship(r: NewRelationship, now: number): Promise<FederationRelationship> {
    return this.federation.updateRelationship(r, now);
  }

  async deleteRelationship(trustDomain: string): Promise<FederationRelationship> {
    return this.federation.deleteRelationship(trustDomain);
  }

  async setRelationshipStatus(trustDomain: string, st: RelationshipStatus): Promise<boolean> {
    return this.federation.setRelationshipStatus(trustDomain, st);
  }

  // --- CA journal -----------------------------------------------------------

  async listJournal(): Promise<JournalEntry[]> {
    return this.journal.listJournal();
  }

  async putJournal(entry: JournalEntry): Promise<void> {
    this.journal.putJournal(entry);
  }

  async stampJournalPublished(id: string, sequence: number): Promise<void> {
    this.journal.stampJournalPublished(id, sequence);
  }

  async deleteJournal(id: string): Promise<void> {
    this.journal.deleteJournal(id);
  }

  // --- server metadata ------------------------------------------------------

  async getMeta(key: string): Promise<string | undefined> {
    return this.meta.getMeta(key);
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.meta.setMeta(key, value);
  }

  /** Idempotent, so shutdown paths need not track whether they already closed. */
  async close(): Promise<void> {
    await this.audit.close();
    this.cdb.close();
  }

  // --- audit log ------------------------------------------------------------

  appendAuditRecords(records: AuditRecord[]): Promise<void> {
    return this.audit.append(records);
  }

  appendAuditEvents(prev: ChainHead, events: TimedEvent[]): Promise<string> {
    return this.audit.appendEvents(prev, events);
  }

  async listAuditRecords(query: AuditQuery): Promise<AuditRecord[]> {
    return this.audit.list(query);
  }

  async lastAuditRecord(): Promise<AuditRecord | undefined> {
    return this.audit.last();
  }
}
