// The CA journal in PostgreSQL: one row per CA key (root, X.509 intermediate,
// JWT) and its lifecycle status, which the CA manager reads at start to
// recover a rotation a crash interrupted.
import type { JournalEntry } from '../DataStore.js';
import type { CheckedPool } from './write.js';
import { journalFromRow, toBuffer, type JournalRow } from '../rows.js';

const SQL = {
  list: 'SELECT * FROM ca_journal ORDER BY created_at, id',
  put: `INSERT INTO ca_journal (id, kind, status, key_id, cert_der, public_key_spki, kid, not_before, not_after, created_at,
      issuer_id, tainted_at, revoked_at, published_sequence, server_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, status = excluded.status,
      key_id = excluded.key_id, cert_der = excluded.cert_der,
      public_key_spki = excluded.public_key_spki, kid = excluded.kid,
      not_before = excluded.not_before, not_after = excluded.not_after,
      created_at = excluded.created_at, issuer_id = excluded.issuer_id,
      tainted_at = excluded.tainted_at, revoked_at = excluded.revoked_at,
      published_sequence = excluded.published_sequence, server_id = excluded.server_id`,
  delete: 'DELETE FROM ca_journal WHERE id = $1',
  stamp: 'UPDATE ca_journal SET published_sequence = $2 WHERE id = $1 AND published_sequence = 0',
} as const;

/** The CA journal of a {@link PostgresDataStore}. */
export class PgCaJournal {
  constructor(private readonly db: CheckedPool) {}

  async listJournal(): Promise<JournalEntry[]> {
    return this.db.run('list journal', async (q) => (await q<JournalRow>(SQL.list)).rows.map(journalFromRow));
  }

  async putJournal(e: JournalEntry): Promise<void> {
    await this.db.write('put journal', async (q) => {
      await q(SQL.put, [e.id, e.kind, e.status, e.keyId, toBuffer(e.certDer), toBuffer(e.publicKeySpki), e.kid ?? null, e.notBefore, e.notAfter, e.createdAt,
        e.issuerId ?? '', e.taintedAt ?? 0, e.revokedAt ?? 0, e.publishedSequence ?? 0, e.serverId ?? '']);
    });
  }

  async stampJournalPublished(id: string, sequence: number): Promise<void> {
    await this.db.write('stamp journal', async (q) => {
      await q(SQL.stamp, [id, sequence]);
    });
  }

  async deleteJournal(id: string): Promise<void> {
    await this.db.write('delete journal', async (q) => {
      await q(SQL.delete, [id]);
    });
  }
}
