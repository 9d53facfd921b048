// Server metadata in SQLite: a small key/value table (the pinned trust
// domain name, for one).
import type { Statement } from 'better-sqlite3';
import type { CheckedDb } from './write.js';

// Prepared once per connection, in the constructor.
const SQL = {
  metaGet: 'SELECT value FROM meta WHERE key = ?',
  metaSet: `INSERT INTO meta (key, value) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
} as const;

/** The server metadata of a {@link SqliteDataStore}. */
export class SqliteMeta {
  private readonly stmt: Record<keyof typeof SQL, Statement>;

  constructor(private readonly cdb: CheckedDb) {
    this.stmt = cdb.prepare(SQL);
  }

  getMeta(key: string): string | undefined {
    return this.cdb.run('get meta', () => {
      const row = this.stmt.metaGet.get(key) as { value: string } | undefined;
      return row?.value;
    });
  }

  setMeta(key: string, value: string): void {
    this.cdb.write('set meta', () => {
      this.stmt.metaSet.run(key, value);
    });
  }
}
