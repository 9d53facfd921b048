// The audit log in PostgreSQL: append in one transaction, read in seq order.
// Nothing here updates or deletes a record (ca/audit/log.ts keeps the chain).
import type { AuditRecord } from '../../audit/chain.js';
import { AUDIT_COLUMNS, auditFromRow, auditRowValues, auditWhere, type AuditRow } from '../audit-rows.js';
import type { AuditQuery } from '../DataStore.js';
import { checkContiguous } from '../sqlite/audit.js';
import type { CheckedPool } from './write.js';

/** Rows per INSERT statement (9 parameters each, well under PostgreSQL's 65,535). */
const ROWS_PER_INSERT = 1000;

export class PgAudit {
  constructor(private readonly db: CheckedPool) {}

  async append(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.db.write('append audit records', async (q) => {
      // Writers of one database take turns: the head read below stays the head until COMMIT.
      await q('LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE');
      const { rows } = await q<{ seq: string }>('SELECT coalesce(max(seq), 0) AS seq FROM audit_log');
      checkContiguous(records, Number(rows[0]!.seq));
      for (let i = 0; i < records.length; i += ROWS_PER_INSERT) {
        const chunk = records.slice(i, i + ROWS_PER_INSERT);
        const values: unknown[] = [];
        const tuples = chunk.map((r) => {
          const v = auditRowValues(r);
          const base = values.length;
          values.push(...v);
          return `(${v.map((_, k) => `$${base + k + 1}`).join(', ')})`;
        });
        await q(`INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES ${tuples.join(', ')}`, values);
      }
    });
  }

  list(query: AuditQuery): Promise<AuditRecord[]> {
    return this.db.run('list audit records', async (q) => {
      const { where, params } = auditWhere(query, (n) => `$${n}`);
      const { rows } = await q<AuditRow>(
        `SELECT ${AUDIT_COLUMNS} FROM audit_log ${where} ORDER BY seq LIMIT $${params.length + 1}`,
        [...params, query.limit],
      );
      return rows.map(auditFromRow);
    });
  }

  last(): Promise<AuditRecord | undefined> {
    return this.db.run('read the audit head', async (q) => {
      const { rows } = await q<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1`);
      return rows[0] ? auditFromRow(rows[0]) : undefined;
    });
  }
}
