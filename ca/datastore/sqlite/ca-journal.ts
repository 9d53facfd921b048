// The CA journal in SQLite: one row per CA key (root, X.509 intermediate,
// JWT) and its lifecycle status, which the CA manager reads at start to
// recover a rotation a crash interrupted.
import type { Statement } from 'better-sqlite3';
import type { JournalEntry } from '../DataStore.js';
import type { CheckedDb } from './write.js';
import { journalFromRow, toBuffer, type JournalRow } from '../rows.js';

// Prepared once per connection, in the constructor.
const SQL = {
  journalList: 'SELECT * FROM ca_journal ORDER BY created_at, id',
  journalPut: `INSERT INTO ca_journal (id, kind, status, key_id, cert_der, public_key_spki, kid,
      not_before, not_after, created_at, issuer_id, tainted_at, revoked_at, published_sequence, server_id)
    VALUES (@id, @kind, @status, @key_id, @cert_der, @public_key_spki, @kid,
      @not_before, @not_after, @created_at, @issuer_id, @tainted_at, @revoked_at, @published_sequence, @server_id)
    ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, status = excluded.status,
      key_id = excluded.key_id, cert_der = excluded.cert_der,
      public_key_spki = excluded.public_key_spki, kid = excluded.kid,
      not_before = excluded.not_before, not_after = excluded.not_after,
      created_at = excluded.created_at, issuer_id = excluded.issuer_id,
      tainted_at = excluded.tainted_at, revoked_at = excluded.revoked_at,
      published_sequence = excluded.published_sequence, server_id = excluded.server_id`,
  journalDelete: 'DELETE FROM ca_journal WHERE id = ?',
  journalStamp: 'UPDATE ca_journal SET published_sequence = ? WHERE id = ? AND published_sequence = 0',
} as const;

/** The CA journal of a {@link SqliteDataStore}. */
export class SqliteCaJournal {
  private readonly stmt: Record<keyof typeof SQL, Statement>;

  constructor(private readonly cdb: CheckedDb) {
    this.stmt = cdb.prepare(SQL);
  }

  listJournal(): JournalEntry[] {
    return this.cdb.run('list journal', () => (this.stmt.journalList.all() as JournalRow[]).map(journalFromRow));
  }

  putJournal(entry: JournalEntry): void {
    this.cdb.write('put journal', () => {
      this.stmt.journalPut.run({
        id: entry.id,
        kind: entry.kind,
        status: entry.status,
        key_id: entry.keyId,
        cert_der: toBuffer(entry.certDer),
        public_key_spki: toBuffer(entry.publicKeySpki),
        kid: entry.kid ?? null,
        not_before: entry.notBefore,
        not_after: entry.notAfter,
        created_at: entry.createdAt,
        issuer_id: entry.issuerId ?? '',
        tainted_at: entry.taintedAt ?? 0,
        revoked_at: entry.revokedAt ?? 0,
        published_sequence: entry.publishedSequence ?? 0,
        server_id: entry.serverId ?? '',
      });
    });
  }

  stampJournalPublished(id: string, sequence: number): void {
    this.cdb.write('stamp journal', () => {
      this.stmt.journalStamp.run(sequence, id);
    });
  }

  deleteJournal(id: string): void {
    this.cdb.write('delete journal', () => {
      this.stmt.journalDelete.run(id);
    });
  }
}
