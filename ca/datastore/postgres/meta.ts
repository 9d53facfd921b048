// Server metadata in PostgreSQL: a small key/value table (the pinned trust
// domain name, for one).
import type { CheckedPool } from './write.js';

const SQL = {
  get: 'SELECT value FROM meta WHERE key = $1',
  set: 'INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
} as const;

/** The server metadata of a {@link PostgresDataStore}. */
export class PgMeta {
  constructor(private readonly db: CheckedPool) {}

  async getMeta(key: string): Promise<string | undefined> {
    return this.db.run('get meta', async (q) => (await q<{ value: string }>(SQL.get, [key])).rows[0]?.value);
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.db.write('set meta', async (q) => {
      await q(SQL.set, [key, value]);
    });
  }
}
