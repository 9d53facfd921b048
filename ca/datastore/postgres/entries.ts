// Registration entries in PostgreSQL: the entries table's queries and row
// mapping. Selector sets are stored as canonical JSON (../selectors.ts) so the
// table's UNIQUE constraint can refuse a duplicate entry.
import { randomUUID } from 'node:crypto';
import { AnchorageError } from '@anchorage/client/errors';
import type { EntryFilter, NewEntry, RegistrationEntry } from '../DataStore.js';
import { selectorsToJson } from '../selectors.js';
import { type CheckedPool, type Query, isUniqueViolation } from './write.js';
import { entryFromRow, type EntryRow } from '../rows.js';

const COLUMNS = 'spiffe_id, parent_id, selectors, x509_svid_ttl, jwt_svid_ttl, dns_names, federates_with, hint, admin, downstream';
const ORDER = 'ORDER BY spiffe_id, parent_id, id';

const SQL = {
  // $1 id, $2..$11 the fields in COLUMNS order, $12 created_at.
  insert: `INSERT INTO entries (id, ${COLUMNS}, revision, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12) RETURNING *`,
  // The same, but a duplicate yields no row instead of aborting the
  // transaction (createEntries goes on with the rest of its list).
  insertOrSkip: `INSERT INTO entries (id, ${COLUMNS}, revision, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12)
    ON CONFLICT ON CONSTRAINT entries_unique DO NOTHING RETURNING *`,
  get: 'SELECT * FROM entries WHERE id = $1',
  // The row lock makes the revision check and the update one step against
  // concurrent updaters, on this server or another.
  getForUpdate: 'SELECT * FROM entries WHERE id = $1 FOR UPDATE',
  update: `UPDATE entries SET (${COLUMNS}) = ($2, $3, $4, $5, $6, $7, $8, $9, $10, $11), revision = revision + 1
    WHERE id = $1 RETURNING *`,
  delete: 'DELETE FROM entries WHERE id = $1 RETURNING *',
} as const;

/** The registration entries of a {@link PostgresDataStore}. */
export class PgEntries {
  constructor(
    private readonly db: CheckedPool,
    private readonly now: () => number,
  ) {}

  async createEntry(entry: NewEntry): Promise<RegistrationEntry> {
    return this.db.write('create entry', async (q) => {
      try {
        return entryFromRow(await insertOne(q, entry, this.now()));
      } catch (err) {
        throw duplicateEntry(err, entry) ?? err;
      }
    });
  }

  async createEntries(entries: NewEntry[]): Promise<Array<{ entry: RegistrationEntry } | { error: AnchorageError }>> {
    return this.db.write('create entries', async (q) => {
      const createdAt = this.now();
      const results: Array<{ entry: RegistrationEntry } | { error: AnchorageError }> = [];
      for (const entry of entries) {
        const { rows } = await q<EntryRow>(SQL.insertOrSkip, [randomUUID(), ...entryValues(entry), createdAt]);
        results.push(rows[0] !== undefined ? { entry: entryFromRow(rows[0]) } : { error: duplicateEntry(undefined, entry)! });
      }
      return results;
    });
  }

  async getEntry(id: string): Promise<RegistrationEntry | undefined> {
    return this.db.run('get entry', async (q) => {
      const row = (await q<EntryRow>(SQL.get, [id])).rows[0];
      return row === undefined ? undefined : entryFromRow(row);
    });
  }

  async listEntries(filter: EntryFilter = {}): Promise<RegistrationEntry[]> {
    return this.db.run('list entries', async (q) => {
      const where: string[] = [];
      const values: string[] = [];
      if (filter.parentId !== undefined) where.push(`parent_id = $${values.push(filter.parentId)}`);
      if (filter.spiffeId !== undefined) where.push(`spiffe_id = $${values.push(filter.spiffeId)}`);
      const sql = `SELECT * FROM entries ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ${ORDER}`;
      return (await q<EntryRow>(sql, values)).rows.map(entryFromRow);
    });
  }

  async updateEntry(id: string, fields: NewEntry, expectRevision?: number): Promise<RegistrationEntry> {
    return this.db.write('update entry', async (q) => {
      const current = (await q<EntryRow>(SQL.getForUpdate, [id])).rows[0];
      if (current === undefined) throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
      if (expectRevision !== undefined && current.revision !== expectRevision) {
        throw new AnchorageError('failed_precondition', `datastore: entry ${id} is at revision ${current.revision}, not ${expectRevision}`);
      }
      try {
        const row = (await q<EntryRow>(SQL.update, [id, ...entryValues(fields)])).rows[0];
        if (row === undefined) throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
        return entryFromRow(row);
      } catch (err) {
        throw duplicateEntry(err, fields) ?? err;
      }
    });
  }

  async deleteEntry(id: string): Promise<RegistrationEntry> {
    return this.db.write('delete entry', async (q) => {
      const row = (await q<EntryRow>(SQL.delete, [id])).rows[0];
      if (row === undefined) throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
      return entryFromRow(row);
    });
  }
}

async function insertOne(q: Query, entry: NewEntry, createdAt: number): Promise<EntryRow> {
  const row = (await q<EntryRow>(SQL.insert, [randomUUID(), ...entryValues(entry), createdAt])).rows[0];
  if (row === undefined) throw new AnchorageError('internal', 'datastore: entry insert returned no row');
  return row;
}

/** The fields in COLUMNS order. */
function entryValues(e: NewEntry): unknown[] {
  return [
    e.spiffeId,
    e.parentId,
    selectorsToJson(e.selectors),
    e.x509SvidTtl,
    e.jwtSvidTtl,
    JSON.stringify(e.dnsNames),
    JSON.stringify(e.federatesWith),
    e.hint,
    e.admin,
    e.downstream,
  ];
}

/** The `already_exists` error for `e`: for a unique violation `err`, or (err undefined) a skipped insert. */
function duplicateEntry(err: unknown, e: NewEntry): AnchorageError | undefined {
  if (err !== undefined && !isUniqueViolation(err, 'entries_unique')) return undefined;
  return new AnchorageError(
    'already_exists',
    `datastore: an entry for ${e.spiffeId} with parent ${e.parentId} and the same selectors already exists`,
    err === undefined ? undefined : { cause: err },
  );
}
