// Federation relationships in PostgreSQL: the configured peers and the
// federation client's last outcome for each.
import { AnchorageError } from '@anchorage/client/errors';
import type { FederationRelationship, NewRelationship, RelationshipStatus } from '../DataStore.js';
import { type CheckedPool, isUniqueViolation } from './write.js';
import { relationshipFromRow, type RelationshipRow } from '../rows.js';

const SQL = {
  // $1..$5 the configured fields, $6 now.
  insert: `INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile,
      endpoint_spiffe_id, web_ca_pem, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *`,
  get: 'SELECT * FROM federation_relationships WHERE trust_domain = $1',
  list: 'SELECT * FROM federation_relationships ORDER BY trust_domain',
  update: `UPDATE federation_relationships SET bundle_endpoint_url = $2, profile = $3,
      endpoint_spiffe_id = $4, web_ca_pem = $5, updated_at = $6
    WHERE trust_domain = $1 RETURNING *`,
  delete: 'DELETE FROM federation_relationships WHERE trust_domain = $1 RETURNING *',
  status: `UPDATE federation_relationships SET last_attempt_at = $2, last_success_at = $3,
      last_error = $4, last_error_reason = $5, last_error_at = $6,
      consecutive_failures = $7, next_refresh_at = $8
    WHERE trust_domain = $1`,
} as const;

/** The federation relationships of a {@link PostgresDataStore}. */
export class PgFederation {
  constructor(private readonly db: CheckedPool) {}

  async createRelationship(r: NewRelationship, now: number): Promise<FederationRelationship> {
    return this.db.write('create relationship', async (q) => {
      try {
        return relationshipFromRow((await q<RelationshipRow>(SQL.insert, [...relationshipValues(r), now])).rows[0]!);
      } catch (err) {
        if (isUniqueViolation(err, 'federation_relationships_pkey')) {
          throw new AnchorageError('already_exists', `datastore: a federation relationship with ${r.trustDomain} already exists`, { cause: err });
        }
        throw err;
      }
    });
  }

  async getRelationship(trustDomain: string): Promise<FederationRelationship | undefined> {
    return this.db.run('get relationship', async (q) => {
      const row = (await q<RelationshipRow>(SQL.get, [trustDomain])).rows[0];
      return row === undefined ? undefined : relationshipFromRow(row);
    });
  }

  async listRelationships(): Promise<FederationRelationship[]> {
    return this.db.run('list relationships', async (q) => (await q<RelationshipRow>(SQL.list)).rows.map(relationshipFromRow));
  }

  async updateRelationship(r: NewRelationship, now: number): Promise<FederationRelationship> {
    return this.db.write('update relationship', async (q) => {
      const row = (await q<RelationshipRow>(SQL.update, [...relationshipValues(r), now])).rows[0];
      if (row === undefined) throw new AnchorageError('not_found', `datastore: no federation relationship with ${r.trustDomain}`);
      return relationshipFromRow(row);
    });
  }

  async deleteRelationship(trustDomain: string): Promise<FederationRelationship> {
    return this.db.write('delete relationship', async (q) => {
      const row = (await q<RelationshipRow>(SQL.delete, [trustDomain])).rows[0];
      if (row === undefined) throw new AnchorageError('not_found', `datastore: no federation relationship with ${trustDomain}`);
      return relationshipFromRow(row);
    });
  }

  async setRelationshipStatus(trustDomain: string, st: RelationshipStatus): Promise<boolean> {
    return this.db.write('set relationship status', async (q) => {
      const { rowCount } = await q(SQL.status, [
        trustDomain,
        st.lastAttemptAt,
        st.lastSuccessAt,
        st.lastError,
        st.lastErrorReason,
        st.lastErrorAt,
        st.consecutiveFailures,
        st.nextRefreshAt,
      ]);
      return rowCount > 0;
    });
  }
}

function relationshipValues(r: NewRelationship): string[] {
  return [r.trustDomain, r.bundleEndpointUrl, r.profile, r.endpointSpiffeId, r.webCaPem];
}
