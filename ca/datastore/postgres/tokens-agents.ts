// Join tokens and attested agents in PostgreSQL: the two tables node
// attestation reads and writes (a token is consumed, an agent record is put).
import { AnchorageError } from '@anchorage/client/errors';
import type { AgentReport, AttestedAgent, JoinToken } from '../DataStore.js';
import { selectorsToJson } from '../selectors.js';
import { type CheckedPool, isUniqueViolation } from './write.js';
import { agentFromRow, type AgentRow, type JoinTokenRow } from '../rows.js';

const SQL = {
  tokenInsert: 'INSERT INTO join_tokens (token, spiffe_id, expires_at) VALUES ($1, $2, $3)',
  // One statement: of two consumers (on any server) the second waits for the
  // first's row lock, then finds the row gone and deletes nothing.
  tokenTake: 'DELETE FROM join_tokens WHERE token = $1 RETURNING *',
  tokenPrune: 'DELETE FROM join_tokens WHERE expires_at <= $1',
  // putAgent leaves the report columns alone (reportAgentState writes them).
  agentPut: `INSERT INTO agents (spiffe_id, attestation_type, cert_serial, cert_not_after, selectors,
      evicted, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (spiffe_id) DO UPDATE SET attestation_type = excluded.attestation_type,
      cert_serial = excluded.cert_serial, cert_not_after = excluded.cert_not_after,
      selectors = excluded.selectors, evicted = excluded.evicted,
      created_at = excluded.created_at, updated_at = excluded.updated_at`,
  agentGet: 'SELECT * FROM agents WHERE spiffe_id = $1',
  agentList: 'SELECT * FROM agents ORDER BY spiffe_id',
  agentDelete: 'DELETE FROM agents WHERE spiffe_id = $1',
  agentReport: 'UPDATE agents SET last_seen_at = $1, bundle_sequence = $2, clock_skew_ms = $3 WHERE spiffe_id = $4',
  banInsert: 'INSERT INTO banned_agents (spiffe_id, banned_at) VALUES ($1, $2) ON CONFLICT (spiffe_id) DO NOTHING',
  banDelete: 'DELETE FROM banned_agents WHERE spiffe_id = $1',
  banList: 'SELECT spiffe_id FROM banned_agents ORDER BY spiffe_id',
  banGet: 'SELECT 1 FROM banned_agents WHERE spiffe_id = $1',
} as const;

/** The join tokens and attested agents of a {@link PostgresDataStore}. */
export class PgTokensAndAgents {
  constructor(private readonly db: CheckedPool) {}

  // --- join tokens ----------------------------------------------------------

  async createJoinToken(token: JoinToken): Promise<void> {
    await this.db.write('create join token', async (q) => {
      try {
        await q(SQL.tokenInsert, [token.token, token.spiffeId ?? null, token.expiresAt]);
      } catch (err) {
        // The token itself is a secret: do not put it in the message.
        if (isUniqueViolation(err, 'join_tokens_pkey')) {
          throw new AnchorageError('already_exists', 'datastore: join token already exists', { cause: err });
        }
        throw err;
      }
    });
  }

  async consumeJoinToken(token: string, now: number): Promise<JoinToken | undefined> {
    return this.db.write('consume join token', async (q) => {
      const row = (await q<JoinTokenRow>(SQL.tokenTake, [token])).rows[0];
      if (row === undefined || now >= row.expires_at) return undefined;
      const taken: JoinToken = { token: row.token, expiresAt: row.expires_at };
      if (row.spiffe_id !== null) taken.spiffeId = row.spiffe_id;
      return taken;
    });
  }

  async pruneJoinTokens(now: number): Promise<number> {
    return this.db.write('prune join tokens', async (q) => (await q(SQL.tokenPrune, [now])).rowCount);
  }

  // --- attested agents ------------------------------------------------------

  async putAgent(a: AttestedAgent): Promise<void> {
    await this.db.write('put agent', async (q) => {
      await q(SQL.agentPut, [a.spiffeId, a.attestationType, a.certSerial, a.certNotAfter, selectorsToJson(a.selectors), a.evicted, a.createdAt, a.updatedAt]);
    });
  }

  async getAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    return this.db.run('get agent', async (q) => {
      const row = (await q<AgentRow>(SQL.agentGet, [spiffeId])).rows[0];
      return row === undefined ? undefined : agentFromRow(row);
    });
  }

  async listAgents(): Promise<AttestedAgent[]> {
    return this.db.run('list agents', async (q) => (await q<AgentRow>(SQL.agentList)).rows.map(agentFromRow));
  }

  async deleteAgent(spiffeId: string): Promise<void> {
    await this.db.write('delete agent', async (q) => {
      await q(SQL.agentDelete, [spiffeId]);
    });
  }

  async reportAgentState(spiffeId: string, r: AgentReport): Promise<boolean> {
    return this.db.write('record agent report', async (q) => (await q(SQL.agentReport, [r.seenAt, r.bundleSequence, r.clockSkewMs, spiffeId])).rowCount === 1);
  }

  // --- banned agent IDs -----------------------------------------------------

  async banAgent(spiffeId: string, at: number): Promise<boolean> {
    return this.db.write('ban agent', async (q) => (await q(SQL.banInsert, [spiffeId, at])).rowCount === 1);
  }

  async unbanAgent(spiffeId: string): Promise<boolean> {
    return this.db.write('unban agent', async (q) => (await q(SQL.banDelete, [spiffeId])).rowCount === 1);
  }

  async isAgentBanned(spiffeId: string): Promise<boolean> {
    return this.db.run('get agent ban', async (q) => (await q(SQL.banGet, [spiffeId])).rowCount > 0);
  }

  async listBannedAgents(): Promise<string[]> {
    return this.db.run('list banned agents', async (q) => (await q<{ spiffe_id: string }>(SQL.banList)).rows.map((r) => r.spiffe_id));
  }
}
