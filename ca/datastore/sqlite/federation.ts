// Federation relationships in SQLite: the configured peers and the
// federation client's last outcome for each.
import type { Statement } from 'better-sqlite3';
import { AnchorageError } from '@anchorage/client/errors';
import type { FederationRelationship, NewRelationship, RelationshipStatus } from '../DataStore.js';
import { type CheckedDb, isSqliteCode, returned } from './write.js';
import { relationshipFromRow, type RelationshipRow } from '../rows.js';

// Prepared once per connection, in the constructor.
const SQL = {
  relInsert: `INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile,
      endpoint_spiffe_id, web_ca_pem, created_at, updated_at)
    VALUES (@trust_domain, @bundle_endpoint_url, @profile, @endpoint_spiffe_id, @web_ca_pem, @now, @now)
    RETURNING *`,
  relGet: 'SELECT * FROM federation_relationships WHERE trust_domain = ?',
  relList: 'SELECT * FROM federation_relationships ORDER BY trust_domain',
  relUpdate: `UPDATE federation_relationships SET bundle_endpoint_url = @bundle_endpoint_url,
      profile = @profile, endpoint_spiffe_id = @endpoint_spiffe_id, web_ca_pem = @web_ca_pem,
      updated_at = @now
    WHERE trust_domain = @trust_domain
    RETURNING *`,
  relDelete: 'DELETE FROM federation_relationships WHERE trust_domain = ? RETURNING *',
  relStatus: `UPDATE federation_relationships SET last_attempt_at = @last_attempt_at,
      last_success_at = @last_success_at, last_error = @last_error,
      last_error_reason = @last_error_reason, last_error_at = @last_error_at,
      consecutive_failures = @consecutive_failures, next_refresh_at = @next_refresh_at
    WHERE trust_domain = @trust_domain`,
} as const;

/** The federation relationships of a {@link SqliteDataStore}. */
export class SqliteFederation {
  private readonly stmt: Record<keyof typeof SQL, Statement>;

  constructor(private readonly cdb: CheckedDb) {
    this.stmt = cdb.prepare(SQL);
  }

  createRelationship(r: NewRelationship, now: number): FederationRelationship {
    return this.cdb.write('create relationship', () => {
      try {
        const row = returned<RelationshipRow>(this.stmt.relInsert, relationshipParams(r, now));
        if (row === undefined) throw new AnchorageError('internal', 'datastore: relationship insert returned no row');
        return relationshipFromRow(row);
      } catch (err) {
        if (isSqliteCode(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
          throw new AnchorageError('already_exists', `datastore: a federation relationship with ${r.trustDomain} already exists`, { cause: err });
        }
        throw err;
      }
    });
  }

  getRelationship(trustDomain: string): FederationRelationship | undefined {
    return this.cdb.run('get relationship', () => {
      const row = this.stmt.relGet.get(trustDomain) as RelationshipRow | undefined;
      return row === undefined ? undefined : relationshipFromRow(row);
    });
  }

  listRelationships(): FederationRelationship[] {
    return this.cdb.run('list relationships', () => (this.stmt.relList.all() as RelationshipRow[]).map(relationshipFromRow));
  }

  updateRelationship(r: NewRelationship, now: number): FederationRelationship {
    return this.cdb.write('update relationship', () => {
      const row = returned<RelationshipRow>(this.stmt.relUpdate, relationshipParams(r, now));
      if (row === undefined) throw new AnchorageError('not_found', `datastore: no federation relationship with ${r.trustDomain}`);
      return relationshipFromRow(row);
    });
  }

  deleteRelationship(trustDomain: string): FederationRelationship {
    return this.cdb.write('delete relationship', () => {
      const row = returned<RelationshipRow>(this.stmt.relDelete, trustDomain);
      if (row === undefined) throw new AnchorageError('not_found', `datastore: no federation relationship with ${trustDomain}`);
      return relationshipFromRow(row);
    });
  }

  setRelationshipStatus(trustDomain: string, st: RelationshipStatus): boolean {
    return this.cdb.write('set relationship status', () => {
      const { changes } = this.stmt.relStatus.run({
        trust_domain: trustDomain,
        last_attempt_at: st.lastAttemptAt,
        last_success_at: st.lastSuccessAt,
        last_error: st.lastError,
        last_error_reason: st.lastErrorReason,
        last_error_at: st.lastErrorAt,
        consecutive_failures: st.consecutiveFailures,
        next_refresh_at: st.nextRefreshAt,
      });
      return changes > 0;
    });
  }
}

function relationshipParams(r: NewRelationship, now: number): Record<string, string | number> {
  return {
    trust_domain: r.trustDomain,
    bundle_endpoint_url: r.bundleEndpointUrl,
    profile: r.profile,
    endpoint_spiffe_id: r.endpointSpiffeId,
    web_ca_pem: r.webCaPem,
    now,
  };
}
