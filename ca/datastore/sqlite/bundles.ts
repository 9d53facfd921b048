// Trust bundles in SQLite: the own and federated bundles, with the sequence
// checks that keep two writers from both replacing the same version.
import type { Statement } from 'better-sqlite3';
import { AnchorageError } from '@anchorage/client/errors';
import { anchorIds } from '../anchor-ids.js';
import type { AnchorSighting, StoredBundle } from '../DataStore.js';
import type { CheckedDb } from './write.js';
import { bundleFromRow, type BundleRow } from '../rows.js';

// Prepared once per connection, in the constructor.
const SQL = {
  bundleGet: 'SELECT * FROM bundles WHERE trust_domain = ?',
  bundleList: 'SELECT * FROM bundles ORDER BY trust_domain',
  // The WHERE on the upsert makes the sequence check and the write one
  // statement, so two writers cannot both pass the check.
  bundlePut: `INSERT INTO bundles (trust_domain, document, sequence, refresh_hint, updated_at)
    VALUES (@trust_domain, @document, @sequence, @refresh_hint, @updated_at)
    ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document,
      sequence = excluded.sequence, refresh_hint = excluded.refresh_hint,
      updated_at = excluded.updated_at
    WHERE excluded.sequence > bundles.sequence`,
  bundleDelete: 'DELETE FROM bundles WHERE trust_domain = ?',
  sightingAdd: `INSERT INTO anchor_sightings (trust_domain, anchor, first_seen_at, first_sequence) VALUES (?, ?, ?, ?)
    ON CONFLICT DO NOTHING`,
  sightingList: 'SELECT * FROM anchor_sightings ORDER BY trust_domain, first_seen_at, anchor',
  bundleReplace: `UPDATE bundles SET document = @document, sequence = @sequence, refresh_hint = @refresh_hint,
      updated_at = @updated_at
    WHERE trust_domain = @trust_domain AND sequence = @expect_sequence`,
} as const;

/** The trust bundles of a {@link SqliteDataStore}. */
export class SqliteBundles {
  private readonly stmt: Record<keyof typeof SQL, Statement>;

  constructor(private readonly cdb: CheckedDb) {
    this.stmt = cdb.prepare(SQL);
  }

  getBundle(trustDomain: string): StoredBundle | undefined {
    return this.cdb.run('get bundle', () => {
      const row = this.stmt.bundleGet.get(trustDomain) as BundleRow | undefined;
      return row === undefined ? undefined : bundleFromRow(row);
    });
  }

  listBundles(): StoredBundle[] {
    return this.cdb.run('list bundles', () => (this.stmt.bundleList.all() as BundleRow[]).map(bundleFromRow));
  }

  putBundle(bundle: StoredBundle): void {
    this.cdb.write('put bundle', () => {
      const { changes } = this.stmt.bundlePut.run({
        trust_domain: bundle.trustDomain,
        document: bundle.document,
        sequence: bundle.sequence,
        refresh_hint: bundle.refreshHint,
        updated_at: bundle.updatedAt,
      });
      if (changes === 0) {
        throw new AnchorageError(
          'failed_precondition',
          `datastore: bundle of ${bundle.trustDomain} is already at sequence ${bundle.sequence} or later`,
        );
      }
      this.recordSightings(bundle);
    });
  }

  /** Inside the bundle's write: an anchor's first sighting is its first stored bundle. */
  private recordSightings(bundle: StoredBundle): void {
    for (const anchor of anchorIds(bundle.document)) this.stmt.sightingAdd.run(bundle.trustDomain, anchor, bundle.updatedAt, bundle.sequence);
  }

  listAnchorSightings(): AnchorSighting[] {
    return this.cdb.run('list anchor sightings', () =>
      (this.stmt.sightingList.all() as Array<{ trust_domain: string; anchor: string; first_seen_at: number; first_sequence: number }>).map((r) => ({
        trustDomain: r.trust_domain,
        anchor: r.anchor,
        firstSeenAt: r.first_seen_at,
        firstSequence: r.first_sequence,
      })),
    );
  }

  deleteBundle(trustDomain: string): void {
    this.cdb.write('delete bundle', () => {
      this.stmt.bundleDelete.run(trustDomain);
    });
  }

  replaceBundle(bundle: StoredBundle, expectSequence: number): void {
    this.cdb.write('replace bundle', () => {
      const { changes } = this.stmt.bundleReplace.run({
        trust_domain: bundle.trustDomain,
        document: bundle.document,
        sequence: bundle.sequence,
        refresh_hint: bundle.refreshHint,
        updated_at: bundle.updatedAt,
        expect_sequence: expectSequence,
      });
      if (changes === 0) {
        throw new AnchorageError('failed_precondition', `datastore: bundle of ${bundle.trustDomain} is no longer at sequence ${expectSequence}`);
      }
      this.recordSightings(bundle);
    });
  }
}
