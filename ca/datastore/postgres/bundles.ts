// Trust bundles in PostgreSQL: the own and federated bundles, with the
// sequence checks that keep two writers (two servers, too) from both
// replacing the same version.
import { AnchorageError } from '@anchorage/client/errors';
import { anchorIds } from '../anchor-ids.js';
import type { AnchorSighting, StoredBundle } from '../DataStore.js';
import type { CheckedPool, Query } from './write.js';
import { bundleFromRow, type BundleRow } from '../rows.js';

const SQL = {
  get: 'SELECT * FROM bundles WHERE trust_domain = $1',
  list: 'SELECT * FROM bundles ORDER BY trust_domain',
  // The WHERE on the upsert makes the sequence check and the write one
  // statement: a concurrent writer waits for the row lock and then re-checks
  // against the committed sequence, so the sequence only ever increases.
  put: `INSERT INTO bundles (trust_domain, document, sequence, refresh_hint, updated_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document,
      sequence = excluded.sequence, refresh_hint = excluded.refresh_hint,
      updated_at = excluded.updated_at
    WHERE excluded.sequence > bundles.sequence`,
  replace: `UPDATE bundles SET document = $2, sequence = $3, refresh_hint = $4, updated_at = $5
    WHERE trust_domain = $1 AND sequence = $6`,
  delete: 'DELETE FROM bundles WHERE trust_domain = $1',
  sightingAdd: `INSERT INTO anchor_sightings (trust_domain, anchor, first_seen_at, first_sequence) VALUES ($1, $2, $3, $4)
    ON CONFLICT DO NOTHING`,
  sightingList: 'SELECT * FROM anchor_sightings ORDER BY trust_domain, first_seen_at, anchor',
} as const;

/** The trust bundles of a {@link PostgresDataStore}. */
export class PgBundles {
  constructor(private readonly db: CheckedPool) {}

  async getBundle(trustDomain: string): Promise<StoredBundle | undefined> {
    return this.db.run('get bundle', async (q) => {
      const row = (await q<BundleRow>(SQL.get, [trustDomain])).rows[0];
      return row === undefined ? undefined : bundleFromRow(row);
    });
  }

  async listBundles(): Promise<StoredBundle[]> {
    return this.db.run('list bundles', async (q) => (await q<BundleRow>(SQL.list)).rows.map(bundleFromRow));
  }

  async putBundle(b: StoredBundle): Promise<void> {
    await this.db.write('put bundle', async (q) => {
      const { rowCount } = await q(SQL.put, [b.trustDomain, b.document, b.sequence, b.refreshHint, b.updatedAt]);
      if (rowCount === 0) {
        throw new AnchorageError('failed_precondition', `datastore: bundle of ${b.trustDomain} is already at sequence ${b.sequence} or later`);
      }
      await recordSightings(q, b);
    });
  }

  async replaceBundle(b: StoredBundle, expectSequence: number): Promise<void> {
    await this.db.write('replace bundle', async (q) => {
      const { rowCount } = await q(SQL.replace, [b.trustDomain, b.document, b.sequence, b.refreshHint, b.updatedAt, expectSequence]);
      if (rowCount === 0) {
        throw new AnchorageError('failed_precondition', `datastore: bundle of ${b.trustDomain} is no longer at sequence ${expectSequence}`);
      }
      await recordSightings(q, b);
    });
  }

  async listAnchorSightings(): Promise<AnchorSighting[]> {
    return this.db.run('list anchor sightings', async (q) =>
      (await q<{ trust_domain: string; anchor: string; first_seen_at: number; first_sequence: number }>(SQL.sightingList)).rows.map((r) => ({
        trustDomain: r.trust_domain,
        anchor: r.anchor,
        firstSeenAt: r.first_seen_at,
        firstSequence: r.first_sequence,
      })),
    );
  }

  async deleteBundle(trustDomain: string): Promise<void> {
    await this.db.write('delete bundle', async (q) => {
      await q(SQL.delete, [trustDomain]);
    });
  }
}

/** Inside the bundle's write: an anchor's first sighting is its first stored bundle. */
async function recordSightings(q: Query, b: StoredBundle): Promise<void> {
  for (const anchor of anchorIds(b.document)) await q(SQL.sightingAdd, [b.trustDomain, anchor, b.updatedAt, b.sequence]);
}
