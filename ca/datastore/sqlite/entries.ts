// Registration entries in SQLite: the entries table's queries and row
// mapping. Selector sets are stored as canonical JSON (selectors.ts) so the
// table's UNIQUE constraint can refuse a duplicate entry.
import { randomUUID } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import { AnchorageError } from '@anchorage/client/errors';
import type { EntryFilter, NewEntry, RegistrationEntry } from '../DataStore.js';
import { selectorsToJson } from '../selectors.js';
import { type CheckedDb, isSqliteCode, returned } from './write.js';
import { entryFromRow, type EntryRow } from '../rows.js';

/** Named parameters of the entry insert/update statements: a row less what the store assigns. */
type EntryParams = Omit<EntryRow, 'revision' | 'created_at'>;

// Prepared once per connection, in the constructor.
const SQL = {
  entryInsert: `INSERT INTO entries (id, spiffe_id, parent_id, selectors, x509_svid_ttl, jwt_svid_ttl,
      dns_names, federates_with, hint, admin, downstream, revision, created_at)
    VALUES (@id, @spiffe_id, @parent_id, @selectors, @x509_svid_ttl, @jwt_svid_ttl,
      @dns_names, @federates_with, @hint, @admin, @downstream, 1, @created_at)
    RETURNING *`,
  entryGet: 'SELECT * FROM entries WHERE id = ?',
  entryListAll: 'SELECT * FROM entries ORDER BY spiffe_id, parent_id, id',
  entryListByParent: 'SELECT * FROM entries WHERE parent_id = ? ORDER BY spiffe_id, parent_id, id',
  entryListBySpiffe: 'SELECT * FROM entries WHERE spiffe_id = ? ORDER BY spiffe_id, parent_id, id',
  entryListByBoth:
    'SELECT * FROM entries WHERE parent_id = ? AND spiffe_id = ? ORDER BY spiffe_id, parent_id, id',
  entryUpdate: `UPDATE entries SET spiffe_id = @spiffe_id, parent_id = @parent_id, selectors = @selectors,
      x509_svid_ttl = @x509_svid_ttl, jwt_svid_ttl = @jwt_svid_ttl, dns_names = @dns_names,
      federates_with = @federates_with, hint = @hint, admin = @admin, downstream = @downstream,
      revision = revision + 1
    WHERE id = @id
    RETURNING *`,
  entryDelete: 'DELETE FROM entries WHERE id = ? RETURNING *',
} as const;

/** The registration entries of a {@link SqliteDataStore}. */
export class SqliteEntries {
  private readonly stmt: Record<keyof typeof SQL, Statement>;

  constructor(
    private readonly cdb: CheckedDb,
    private readonly now: () => number,
  ) {
    this.stmt = cdb.prepare(SQL);
  }

  createEntry(entry: NewEntry): RegistrationEntry {
    return this.cdb.write('create entry', () => {
      const params = entryParams(randomUUID(), entry);
      try {
        const row = returned<EntryRow>(this.stmt.entryInsert, { ...params, created_at: this.now() });
        if (row === undefined) throw new AnchorageError('internal', 'datastore: entry insert returned no row');
        return entryFromRow(row);
      } catch (err) {
        throw duplicateEntry(err, entry) ?? err;
      }
    });
  }

  createEntries(entries: NewEntry[]): Array<{ entry: RegistrationEntry } | { error: AnchorageError }> {
    return this.cdb.write('create entries', () => {
      const createdAt = this.now();
      return entries.map((entry) => {
        try {
          // A UNIQUE violation undoes this statement alone; the transaction goes on.
          const row = returned<EntryRow>(this.stmt.entryInsert, { ...entryParams(randomUUID(), entry), created_at: createdAt });
          if (row === undefined) throw new AnchorageError('internal', 'datastore: entry insert returned no row');
          return { entry: entryFromRow(row) };
        } catch (err) {
          const duplicate = duplicateEntry(err, entry);
          if (duplicate) return { error: duplicate };
          throw err;
        }
      });
    });
  }

  getEntry(id: string): RegistrationEntry | undefined {
    return this.cdb.run('get entry', () => {
      const row = this.stmt.entryGet.get(id) as EntryRow | undefined;
      return row === undefined ? undefined : entryFromRow(row);
    });
  }

  listEntries(filter: EntryFilter = {}): RegistrationEntry[] {
    return this.cdb.run('list entries', () => {
      const { parentId, spiffeId } = filter;
      let rows: unknown[];
      if (parentId !== undefined && spiffeId !== undefined) {
        rows = this.stmt.entryListByBoth.all(parentId, spiffeId);
      } else if (parentId !== undefined) {
        rows = this.stmt.entryListByParent.all(parentId);
      } else if (spiffeId !== undefined) {
        rows = this.stmt.entryListBySpiffe.all(spiffeId);
      } else {
        rows = this.stmt.entryListAll.all();
      }
      return (rows as EntryRow[]).map(entryFromRow);
    });
  }

  updateEntry(id: string, fields: NewEntry, expectRevision?: number): RegistrationEntry {
    return this.cdb.write('update entry', () => {
      const current = this.stmt.entryGet.get(id) as EntryRow | undefined;
      if (current === undefined) {
        throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
      }
      if (expectRevision !== undefined && current.revision !== expectRevision) {
        throw new AnchorageError(
          'failed_precondition',
          `datastore: entry ${id} is at revision ${current.revision}, not ${expectRevision}`,
        );
      }
      try {
        const row = returned<EntryRow>(this.stmt.entryUpdate, entryParams(id, fields));
        if (row === undefined) throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
        return entryFromRow(row);
      } catch (err) {
        throw duplicateEntry(err, fields) ?? err;
      }
    });
  }

  deleteEntry(id: string): RegistrationEntry {
    return this.cdb.write('delete entry', () => {
      const row = returned<EntryRow>(this.stmt.entryDelete, id);
      if (row === undefined) throw new AnchorageError('not_found', `datastore: entry ${id} not found`);
      return entryFromRow(row);
    });
  }
}

function entryParams(id: string, e: NewEntry): EntryParams {
  return {
    id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    selectors: selectorsToJson(e.selectors),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: JSON.stringify(e.dnsNames),
    federates_with: JSON.stringify(e.federatesWith),
    hint: e.hint,
    admin: e.admin ? 1 : 0,
    downstream: e.downstream ? 1 : 0,
  };
}

function duplicateEntry(err: unknown, e: NewEntry): AnchorageError | undefined {
  if (!isSqliteCode(err, 'SQLITE_CONSTRAINT_UNIQUE')) return undefined;
  return new AnchorageError(
    'already_exists',
    `datastore: an entry for ${e.spiffeId} with parent ${e.parentId} and the same selectors already exists`,
    { cause: err },
  );
}
