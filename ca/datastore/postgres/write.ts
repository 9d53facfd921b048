// The checked-transaction helpers every query goes through, as sqlite/write.ts
// is for SQLite: reads via `run`, writes via `write`, which wraps each write
// in BEGIN … COMMIT on one pooled connection and resolves only once COMMIT
// has been answered; failures become coded errors ('unavailable' for
// conditions of the database or the network). One place, so no record family
// can forget it.
import pg from 'pg';
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';

/** Runs one SQL statement: `$1`… parameters, rows typed by the caller. */
export type Query = <Row extends QueryResultRow>(text: string, values?: unknown[]) => Promise<{ rows: Row[]; rowCount: number }>;

/** One pool with its closed flag. The record families share one instance. */
export class CheckedPool {
  private closed = false;

  constructor(private readonly pool: Pool) {}

  /** Idempotent, so shutdown paths need not track whether they already closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /** Runs reads (one statement each, on any pooled connection), turning driver failures into coded errors. */
  async run<T>(op: string, fn: (q: Query) => Promise<T>): Promise<T> {
    this.checkOpen(op);
    try {
      return await fn(queryOn(this.pool));
    } catch (err) {
      if (err instanceof AnchorageError) throw err;
      throw new AnchorageError(codeForPgError(err), `datastore: ${op}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Runs one write in a transaction on one connection and returns only once
   * COMMIT has succeeded. Any failure before COMMIT was sent leaves nothing
   * saved (PostgreSQL rolls back a transaction whose connection dies); a
   * connection lost while COMMIT was in flight leaves the outcome unknown,
   * and the message says so instead of promising.
   */
  async write<T>(op: string, fn: (q: Query) => Promise<T>): Promise<T> {
    this.checkOpen(op);
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw writeError(op, err, false);
    }
    // A connection that breaks while checked out emits 'error' besides
    // failing its query; without a listener that event would end the process.
    const ignore = (): void => {};
    client.on('error', ignore);
    let committing = false;
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(queryOn(client));
      committing = true;
      await client.query('COMMIT');
      return result;
    } catch (err) {
      if (!committing) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // The connection is gone (PostgreSQL rolls back for us); do not reuse it.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        }
      } else if (!(err instanceof pg.DatabaseError)) {
        broken = err instanceof Error ? err : new Error(String(err));
      }
      if (err instanceof AnchorageError) throw err;
      throw writeError(op, err, committing);
    } finally {
      client.removeListener('error', ignore);
      client.release(broken);
    }
  }

  private checkOpen(op: string): void {
    if (this.closed) throw new AnchorageError('failed_precondition', `datastore: ${op}: the datastore is closed`);
  }
}

function queryOn(target: Pool | PoolClient): Query {
  return async <Row extends QueryResultRow>(text: string, values?: unknown[]) => {
    const res = await target.query<Row>(text, values);
    return { rows: res.rows, rowCount: res.rowCount ?? 0 };
  };
}

// --- errors ------------------------------------------------------------------

/** True if `err` is PostgreSQL's answer with this SQLSTATE (and, if given, about this constraint). */
function isPgCode(err: unknown, sqlState: string, constraint?: string): boolean {
  return err instanceof pg.DatabaseError && err.code === sqlState && (constraint === undefined || err.constraint === constraint);
}

/** A unique_violation (23505) of the named constraint. */
export const isUniqueViolation = (err: unknown, constraint: string): boolean => isPgCode(err, '23505', constraint);

function writeError(op: string, err: unknown, committing: boolean): AnchorageError {
  const code = codeForPgError(err);
  if (code !== 'unavailable') return new AnchorageError(code, `datastore: ${op}: ${errorMessage(err)}`, { cause: err });
  // PostgreSQL answered the COMMIT with an error: it rolled back. No answer: it may have committed.
  const certain = !committing || err instanceof pg.DatabaseError;
  const outcome = certain ? 'nothing was saved' : 'it may not have been saved';
  return new AnchorageError('unavailable', `datastore: ${op}: write failed, ${outcome}: ${errorMessage(err)}`, { cause: err });
}

/**
 * Conditions of the database or of the way to it are `unavailable`: no
 * connection, the server shutting down or starting, a statement or lock
 * timeout, no room (disk, memory, connection slots), a serialization failure
 * or deadlock, a read-only standby, I/O errors. Anything else PostgreSQL
 * refuses (a constraint we did not anticipate, SQL errors) is a bug here:
 * `internal`. A failure without a SQLSTATE comes from the driver's socket
 * (refused, reset, closed, timed out): `unavailable`.
 */
function codeForPgError(err: unknown): 'unavailable' | 'internal' {
  if (!(err instanceof pg.DatabaseError)) return err instanceof Error && isDriverFailure(err) ? 'unavailable' : 'internal';
  const state = err.code ?? '';
  const cls = state.slice(0, 2);
  if (['08', '53', '57', '58', '40'].includes(cls)) return 'unavailable'; // connection, resources, operator intervention, system, rollback
  if (['55P03', '25006', 'XX001', 'XX002', '28000', '28P01', '3D000'].includes(state)) return 'unavailable'; // lock timeout, read-only, corruption, auth, no database
  return 'internal';
}

/** Errors of the connection itself, raised by Node's socket or by pg without a SQLSTATE. */
function isDriverFailure(err: Error): boolean {
  const errno = (err as NodeJS.ErrnoException).code;
  if (typeof errno === 'string' && /^E[A-Z]+$/.test(errno)) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|not queryable|Client was closed|Query read timeout/i.test(err.message);
}
