// The checked-transaction helpers every query goes through (issue 10): reads
// via `run`, writes via `write`, which wraps each write in BEGIN IMMEDIATE …
// COMMIT so a failed commit (a full disk) is reported instead of lost, and
// maps SQLite failures to coded errors ('unavailable' for conditions of the
// file). One place, so no record family can forget it.
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase, Statement } from 'better-sqlite3';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';

/**
 * One open connection with its closed flag and the transaction statements.
 * The record families (entries, tokens and agents, bundles, federation, CA
 * journal) share one instance, so closing the store closes them all.
 */
export class CheckedDb {
  readonly db: SqliteDatabase;
  private readonly begin: Statement;
  private readonly commit: Statement;
  private readonly rollback: Statement;
  private closed = false;

  constructor(db: SqliteDatabase) {
    this.db = db;
    // Every write runs between these two (see write).
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
  }

  /** Prepares every statement of `sql` once for this connection. */
  prepare<K extends string>(sql: Record<K, string>): Record<K, Statement> {
    const stmt: Partial<Record<K, Statement>> = {};
    for (const [name, text] of Object.entries(sql) as [K, string][]) {
      stmt[name] = this.db.prepare(text);
    }
    return stmt as Record<K, Statement>;
  }

  /** Idempotent, so shutdown paths need not track whether they already closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /**
   * Runs one operation, turning SQLite failures into coded errors so callers
   * never branch on driver error classes.
   */
  run<T>(op: string, fn: () => T): T {
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
  write<T>(op: string, fn: () => T): T {
    if (this.closed) throw new AnchorageError('failed_precondition', `datastore: ${op}: the datastore is closed`);
    try {
      this.begin.run();
      const result = fn();
      this.commit.run();
      return result;
    } catch (err) {
      if (this.db.inTransaction) {
        try {
          this.rollback.run();
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
export function returned<Row>(stmt: Statement, ...params: unknown[]): Row | undefined {
  return (stmt.all(...params) as Row[])[0];
}

// --- errors ------------------------------------------------------------------

/** True if `err` is a SQLite error with exactly this extended code. */
export function isSqliteCode(err: unknown, code: string): boolean {
  return err instanceof Database.SqliteError && err.code === code;
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
