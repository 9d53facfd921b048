import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { chainEvents, type AuditRecord } from '../../audit/chain.js';
import type { AuditEvent } from '../../audit/event.js';
import { AUDIT_COLUMNS, auditRowValues } from '../audit-rows.js';
import { checkContiguous, fromWire } from './audit.js';
import { SQLITE_PRAGMAS } from './schema.js';
import { CheckedDb } from './write.js';

/** An event on the wire (./audit.ts toWire). */
export type WireEvent = [
  time: number,
  type: string,
  actor: AuditEvent['actor'] | null,
  agent: string | null,
  spiffeId: string | null,
  serial: string | null,
  jti: string | null,
  expiresAt: number | null,
  authority: string | null,
  outcome: string | null,
  details: AuditEvent['details'] | null,
];

/** What the store sends: one batch, appended in one transaction. */
export type AppendRequest =
  | {
      kind: 'records';
      id: number;
      /** seq of the first record: the batch must follow the stored head. */
      firstSeq: number;
      /** JSON array of the records' row values (audit-rows.ts auditRowValues), in seq order. */
      rows: string;
    }
  | {
      kind: 'events';
      id: number;
      /** The head the events follow: the stored head must be exactly this seq. */
      prevSeq: number;
      prevHash: string;
      /** JSON array of WireEvent, in order. */
      events: string;
    };
/** `hash`: for events, the hash of the last record made. */
export type AppendReply = { id: number; ok: true; hash?: string } | { id: number; ok: false; code: AnchorageError['code']; message: string };

/**
 * Worker side of SqliteAudit.append: its own connection to the datastore
 * file, with the server's pragmas (synchronous = FULL: a batch is on disk
 * when its reply goes out). The inserts and the fsync of each group commit
 * run here, so the main thread, which drives the HSM, is never blocked by
 * them. One batch at a time, in the order sent: the chain's order.
 */
const { path } = workerData as { path: string };
let cdb: CheckedDb | undefined;
let head: Database.Statement | undefined;
let insert: Database.Statement | undefined;
let openError: string | undefined;
try {
  const db = new Database(path, { fileMustExist: true });
  for (const pragma of SQLITE_PRAGMAS) db.pragma(pragma);
  cdb = new CheckedDb(db);
  head = db.prepare('SELECT coalesce(max(seq), 0) AS seq FROM audit_log');
  insert = db.prepare(`INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
} catch (err) {
  openError = `datastore: the audit writer cannot open ${path}: ${errorMessage(err)}`;
}

parentPort!.on('message', (m: AppendRequest | 'close') => {
  if (m === 'close') {
    cdb?.close();
    parentPort!.close();
    return;
  }
  let reply: AppendReply;
  try {
    if (openError !== undefined) throw new AnchorageError('unavailable', openError);
    let rows: unknown[][];
    let hash: string | undefined;
    let firstSeq: number;
    if (m.kind === 'events') {
      const wire = JSON.parse(m.events) as WireEvent[];
      const records = chainEvents({ seq: m.prevSeq, hash: m.prevHash }, wire.map(fromWire));
      rows = records.map(auditRowValues);
      hash = records.length > 0 ? records[records.length - 1]!.hash : m.prevHash;
      firstSeq = m.prevSeq + 1;
    } else {
      rows = JSON.parse(m.rows) as unknown[][];
      firstSeq = m.firstSeq;
    }
    cdb!.write('append audit records', () => {
      checkContiguous(rows.map((r) => ({ seq: r[0] as number }) as AuditRecord), (head!.get() as { seq: number }).seq);
      if (rows.length > 0 && rows[0]![0] !== firstSeq) throw new AnchorageError('internal', 'datastore: audit batch garbled between threads');
      for (const r of rows) insert!.run(...r);
    });
    reply = hash === undefined ? { id: m.id, ok: true } : { id: m.id, ok: true, hash };
  } catch (err) {
    reply = {
      id: m.id,
      ok: false,
      code: err instanceof AnchorageError ? err.code : 'internal',
      message: err instanceof AnchorageError ? err.message : `datastore: append audit records: ${errorMessage(err)}`,
    };
  }
  parentPort!.postMessage(reply);
});
