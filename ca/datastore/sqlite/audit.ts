// The audit log in SQLite: append in one transaction, read in seq order.
// Nothing here updates or deletes a record (ca/audit/log.ts keeps the chain).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AnchorageError } from '@anchorage/client/errors';
import type { Statement } from 'better-sqlite3';
import type { AppendReply, AppendRequest, WireEvent } from './audit-writer.js';
import type { AuditRecord, ChainHead, TimedEvent } from '../../audit/chain.js';
import type { AuditEvent } from '../../audit/event.js';
import { AUDIT_COLUMNS, auditFromRow, auditRowValues, auditWhere, type AuditRow } from '../audit-rows.js';
import type { AuditQuery } from '../DataStore.js';
import type { CheckedDb } from './write.js';

const SQL = {
  last: `SELECT ${AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1`,
} as const;

/** The compiled writer; under the test runner the sources are TypeScript, so fall back to dist/ (as csr-pool.ts does). */
function writerFile(): URL {
  const beside = new URL('./audit-writer.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL('../../../dist/ca/datastore/sqlite/audit-writer.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new AnchorageError('internal', 'datastore: the compiled audit writer is missing; run "npm run build"');
}

/**
 * The audit log's records in SQLite. Appends go to a worker thread with its
 * own connection (./audit-writer.ts), started at the first append: a group
 * commit's inserts and fsync then cost the main thread only a message, and
 * minting goes on meanwhile. Reads use the store's own connection (WAL: they
 * see every committed append).
 */
export class SqliteAudit {
  private readonly stmt: Record<keyof typeof SQL, Statement>;
  /** Query text per WHERE shape, prepared once each. */
  private readonly lists = new Map<string, Statement>();
  private worker: Worker | undefined;
  private readonly waiting = new Map<number, { resolve: (hash: string | undefined) => void; reject: (e: unknown) => void }>();
  private nextId = 1;
  private closed = false;
  /** Called when the last append in flight is answered (close waits for it). */
  private drained: (() => void) | undefined;

  constructor(
    private readonly cdb: CheckedDb,
    private readonly path: string,
  ) {
    this.stmt = cdb.prepare(SQL);
  }

  append(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return this.closed ? this.refuseClosed() : Promise.resolve();
    // One string, not the record objects: a structured clone of a batch costs the main thread more.
    return this.send({ kind: 'records', id: 0, firstSeq: records[0]!.seq, rows: JSON.stringify(records.map(auditRowValues)) }).then(() => undefined);
  }

  /**
   * The writer thread builds the records (ca/audit/chain.ts chainEvents) and
   * stores them: the hashing and row encoding of every record stay off the
   * event loop, which only serialises the events.
   */
  appendEvents(prev: ChainHead, events: TimedEvent[]): Promise<string> {
    if (events.length === 0) return this.closed ? this.refuseClosed() : Promise.resolve(prev.hash);
    const wire = events.map(toWire);
    return this.send({ kind: 'events', id: 0, prevSeq: prev.seq, prevHash: prev.hash, events: JSON.stringify(wire) }).then((hash) => hash ?? prev.hash);
  }

  private refuseClosed(): Promise<never> {
    return Promise.reject(new AnchorageError('failed_precondition', 'datastore: append audit records: the datastore is closed'));
  }

  private send(req: AppendRequest): Promise<string | undefined> {
    if (this.closed) return this.refuseClosed();
    const w = this.writer();
    req.id = this.nextId++;
    return new Promise<string | undefined>((resolve, reject) => {
      this.waiting.set(req.id, { resolve, reject });
      w.ref();
      w.postMessage(req);
    });
  }

  private writer(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(writerFile(), { workerData: { path: this.path } });
    w.on('message', (r: AppendReply) => {
      const p = this.waiting.get(r.id);
      if (!p) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) {
        w.unref();
        this.drained?.();
      }
      if (r.ok) p.resolve(r.hash);
      else p.reject(new AnchorageError(r.code, r.message));
    });
    const fail = (why: string) => {
      const e = new AnchorageError('unavailable', `datastore: the audit writer ${why}; the records were not confirmed stored`);
      for (const p of this.waiting.values()) p.reject(e);
      this.waiting.clear();
      this.drained?.();
      if (this.worker === w) this.worker = undefined;
    };
    w.on('error', (err) => fail(`failed: ${err.message}`));
    w.on('exit', (code) => fail(`exited (${code})`));
    w.unref();
    this.worker = w;
    return w;
  }

  /** Lets the appends in flight finish, then stops the writer. */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    if (!w) return;
    if (this.waiting.size > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage('close');
    await exited;
  }

  list(q: AuditQuery): AuditRecord[] {
    return this.cdb.run('list audit records', () => {
      const { where, params } = auditWhere(q, () => '?');
      const text = `SELECT ${AUDIT_COLUMNS} FROM audit_log ${where} ORDER BY seq LIMIT ?`;
      let stmt = this.lists.get(text);
      if (!stmt) {
        stmt = this.cdb.db.prepare(text);
        this.lists.set(text, stmt);
      }
      return (stmt.all(...params, q.limit) as AuditRow[]).map(auditFromRow);
    });
  }

  last(): AuditRecord | undefined {
    return this.cdb.run('read the audit head', () => {
      const row = this.stmt.last.get() as AuditRow | undefined;
      return row ? auditFromRow(row) : undefined;
    });
  }
}

/**
 * An event on its way to the writer thread: a flat array in a fixed order,
 * [time, type, actor, agent, spiffeId, serial, jti, expiresAt, authority,
 * outcome, details], absent fields null. Shorter to serialise and parse than
 * the objects, and cleanEvent runs on the other side anyway.
 */
export function toWire(e: TimedEvent): WireEvent {
  const v = e.event;
  return [e.time, v.type, v.actor ?? null, v.agent ?? null, v.spiffeId ?? null, v.serial ?? null, v.jti ?? null, v.expiresAt ?? null, v.authority ?? null, v.outcome ?? null, v.details ?? null];
}

export function fromWire(w: WireEvent): TimedEvent {
  const event: AuditEvent = { type: w[1] };
  if (w[2] !== null) event.actor = w[2];
  if (w[3] !== null) event.agent = w[3];
  if (w[4] !== null) event.spiffeId = w[4];
  if (w[5] !== null) event.serial = w[5];
  if (w[6] !== null) event.jti = w[6];
  if (w[7] !== null) event.expiresAt = w[7];
  if (w[8] !== null) event.authority = w[8];
  if (w[9] !== null) event.outcome = w[9];
  if (w[10] !== null) event.details = w[10];
  return { time: w[0], event };
}

/** Shared by both stores: the batch must continue the stored head without a gap. */
export function checkContiguous(records: AuditRecord[], head: number): void {
  records.forEach((r, i) => {
    if (r.seq !== head + 1 + i) {
      throw new AnchorageError(
        'failed_precondition',
        `datastore: audit record ${r.seq} does not follow the stored head ${head + i} (another server writing the same audit log?); nothing was appended`,
      );
    }
  });
}
