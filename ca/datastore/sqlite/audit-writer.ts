import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import type { AuditRecord } from '../../audit/chain.js';
import { AUDIT_COLUMNS } from '../audit-rows.js';
import { checkContiguous } from './audit.js';
import { SQLITE_PRAGMAS } from './schema.js';
import { CheckedDb } from './write.js';

/** What the store sends: one batch, appended in one transaction. */
export interface AppendRequest {
  id: number;
  /** seq of the first record: the batch must follow the stored head. */
  firstSeq: number;
  /** JSON array of the records' row values (audit-rows.ts auditRowValues), in seq order. */
  rows: string;
}
export type AppendReply = { id: number; ok: true } | { id: number; ok: false; code: AnchorageError['code']; message: string };

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
    cdb!.write('append audit records', () => {
      const rows = JSON.parse(m.rows) as unknown[][];
      checkContiguous(rows.map((r, i) => ({ seq: r[0] as number, i })).map(({ seq }) => ({ seq }) as AuditRecord), (head!.get() as { seq: number }).seq);
      if (rows.length > 0 && rows[0]![0] !== m.firstSeq) throw new AnchorageError('internal', 'datastore: audit batch garbled between threads');
      for (const r of rows) insert!.run(...r);
    });
    reply = { id: m.id, ok: true };
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
