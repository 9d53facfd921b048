// Join tokens and attested agents in SQLite: the two tables node attestation
// reads and writes (a token is consumed, an agent record is put).
import type { Statement } from 'better-sqlite3';
import { AnchorageError } from '@anchorage/client/errors';
import type { AgentReport, AttestedAgent, JoinToken } from '../DataStore.js';
import { selectorsToJson } from '../selectors.js';
import { type CheckedDb, isSqliteCode, returned } from './write.js';
import { agentFromRow, type AgentRow, type JoinTokenRow } from '../rows.js';

// Prepared once per connection, in the constructor.
const SQL = {
  tokenInsert: 'INSERT INTO join_tokens (token, spiffe_id, expires_at) VALUES (?, ?, ?)',
  tokenTake: 'DELETE FROM join_tokens WHERE token = ? RETURNING *',
  tokenPrune: 'DELETE FROM join_tokens WHERE expires_at <= ?',

  agentPut: `INSERT INTO agents (spiffe_id, attestation_type, cert_serial, cert_not_after, selectors,
      evicted, created_at, updated_at)
    VALUES (@spiffe_id, @attestation_type, @cert_serial, @cert_not_after, @selectors,
      @evicted, @created_at, @updated_at)
    ON CONFLICT (spiffe_id) DO UPDATE SET attestation_type = excluded.attestation_type,
      cert_serial = excluded.cert_serial, cert_not_after = excluded.cert_not_after,
      selectors = excluded.selectors, evicted = excluded.evicted,
      created_at = excluded.created_at, updated_at = excluded.updated_at`,
  agentGet: 'SELECT * FROM agents WHERE spiffe_id = ?',
  agentList: 'SELECT * FROM agents ORDER BY spiffe_id',
  agentDelete: 'DELETE FROM agents WHERE spiffe_id = ?',
  agentReport: 'UPDATE agents SET last_seen_at = ?, bundle_sequence = ?, clock_skew_ms = ? WHERE spiffe_id = ?',
  banInsert: 'INSERT INTO banned_agents (spiffe_id, banned_at) VALUES (?, ?) ON CONFLICT (spiffe_id) DO NOTHING',
  banDelete: 'DELETE FROM banned_agents WHERE spiffe_id = ?',
  banList: 'SELECT spiffe_id FROM banned_agents ORDER BY spiffe_id',
  banGet: 'SELECT 1 FROM banned_agents WHERE spiffe_id = ?',
} as const;

/** The join tokens and attested agents of a {@link SqliteDataStore}. */
export class SqliteTokensAndAgents {
  private readonly stmt: Record<keyof typeof SQL, Statement>;

  constructor(private readonly cdb: CheckedDb) {
    this.stmt = cdb.prepare(SQL);
  }

  // --- join tokens ----------------------------------------------------------

  createJoinToken(token: JoinToken): void {
    this.cdb.write('create join token', () => {
      try {
        this.stmt.tokenInsert.run(token.token, token.spiffeId ?? null, token.expiresAt);
      } catch (err) {
        // The token itself is a secret: do not put it in the message.
        if (isSqliteCode(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
          throw new AnchorageError('already_exists', 'datastore: join token already exists', { cause: err });
        }
        throw err;
      }
    });
  }

  consumeJoinToken(token: string, now: number): JoinToken | undefined {
    // DELETE ... RETURNING is one statement, so two concurrent consumers
    // (even in different processes) cannot both receive the row.
    return this.cdb.write('consume join token', () => {
      const row = returned<JoinTokenRow>(this.stmt.tokenTake, token);
      if (row === undefined || now >= row.expires_at) return undefined;
      const taken: JoinToken = { token: row.token, expiresAt: row.expires_at };
      if (row.spiffe_id !== null) taken.spiffeId = row.spiffe_id;
      return taken;
    });
  }

  /** Also removes tokens expiring exactly at `now`: {@link consumeJoinToken} already refuses them. */
  pruneJoinTokens(now: number): number {
    return this.cdb.write('prune join tokens', () => this.stmt.tokenPrune.run(now).changes);
  }

  // --- attested agents ------------------------------------------------------

  putAgent(agent: AttestedAgent): void {
    this.cdb.write('put agent', () => {
      this.stmt.agentPut.run({
        spiffe_id: agent.spiffeId,
        attestation_type: agent.attestationType,
        cert_serial: agent.certSerial,
        cert_not_after: agent.certNotAfter,
        selectors: selectorsToJson(agent.selectors),
        evicted: agent.evicted ? 1 : 0,
        created_at: agent.createdAt,
        updated_at: agent.updatedAt,
      });
    });
  }

  getAgent(spiffeId: string): AttestedAgent | undefined {
    return this.cdb.run('get agent', () => {
      const row = this.stmt.agentGet.get(spiffeId) as AgentRow | undefined;
      return row === undefined ? undefined : agentFromRow(row);
    });
  }

  listAgents(): AttestedAgent[] {
    return this.cdb.run('list agents', () => (this.stmt.agentList.all() as AgentRow[]).map(agentFromRow));
  }

  deleteAgent(spiffeId: string): void {
    this.cdb.write('delete agent', () => {
      this.stmt.agentDelete.run(spiffeId);
    });
  }

  reportAgentState(spiffeId: string, r: AgentReport): boolean {
    return this.cdb.write('record agent report', () => this.stmt.agentReport.run(r.seenAt, r.bundleSequence, r.clockSkewMs, spiffeId).changes === 1);
  }

  // --- banned agent IDs -----------------------------------------------------

  banAgent(spiffeId: string, at: number): boolean {
    return this.cdb.write('ban agent', () => this.stmt.banInsert.run(spiffeId, at).changes === 1);
  }

  unbanAgent(spiffeId: string): boolean {
    return this.cdb.write('unban agent', () => this.stmt.banDelete.run(spiffeId).changes === 1);
  }

  isAgentBanned(spiffeId: string): boolean {
    return this.cdb.run('get agent ban', () => this.stmt.banGet.get(spiffeId) !== undefined);
  }

  listBannedAgents(): string[] {
    return this.cdb.run('list banned agents', () => (this.stmt.banList.all() as { spiffe_id: string }[]).map((r) => r.spiffe_id));
  }
}
