// The audit log in SQLite: append in one transaction, read in seq order.
// Nothing here updates or deletes a record (ca/audit/log.ts keeps the chain).
import { AnchorageError } from '@anchorage/client/errors';
import type { Statement } from 'better-sqlite3';
import type { AuditRecord } from '../../audit/chain.js';
import { AUDIT_COLUMNS, auditFromRow, auditRowValues, auditWhere, type AuditRow } from '../audit-rows.js';
import type { AuditQuery } from '../DataStore.js';
import type { CheckedDb } from './write.js';

const SQL = {
  head: 'SELECT coalesce(max(seq), 0) AS seq FROM audit_log',
  insert: `INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  last: `SELECT ${AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1`,
} as const;

export class SqliteAudit {
  private readonly stmt: Record<keyof typeof SQL, Statement>;
  /** Query text per WHERE shape, prepared once each. */
  private readonly lists = new Map<string, Statement>();

  constructor(private readonly cdb: CheckedDb) {
    this.stmt = cdb.prepare(SQL);
  }

  append(records: AuditRecord[]): void {
    if (records.length === 0) return;
    this.cdb.write('append audit records', () => {
      const head = (this.stmt.head.get() as { seq: number }).seq;
      checkContiguous(records, head);
      for (const r of records) this.stmt.insert.run(...auditRowValues(r));
    });
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
