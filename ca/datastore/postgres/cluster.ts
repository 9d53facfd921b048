// What several servers on one PostgreSQL database share besides the records:
// the change channel (NOTIFY, with a counter in `meta` that a slow reconcile
// compares against) and the lease on each federation relationship's next
// timed fetch. The bridge that uses them is ca/cluster/; nothing here knows
// the change feed.
import pg from 'pg';
import { errorMessage } from '@anchorage/client/errors';
import type { CheckedPool } from './write.js';

/** The one channel every server publishes on and listens to (channels are per database). */
export const CHANGE_CHANNEL = 'anchorage_changes';

/** The `meta` key of the change counter: raised by one with every published change. */
export const CHANGE_SEQUENCE_KEY = 'cluster.change_sequence';

/** PostgreSQL refuses a NOTIFY payload of 8000 bytes or more. */
export const MAX_PAYLOAD_BYTES = 7999;

const SQL = {
  // The row lock taken here is held until COMMIT, and the NOTIFY is delivered
  // at COMMIT: listeners see the sequence numbers in increasing order.
  bump: `INSERT INTO meta (key, value) VALUES ($1, '1')
    ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text RETURNING value`,
  notify: 'SELECT pg_notify($1, $2)',
  sequence: 'SELECT value FROM meta WHERE key = $1',
  // The lease: the next timed fetch is taken by moving next_refresh_at past
  // the fetch's own deadline. Of servers racing, the row lock lets one
  // through; the others find next_refresh_at in the future.
  claim: `UPDATE federation_relationships SET next_refresh_at = $3
    WHERE trust_domain = $1 AND next_refresh_at <= $2 RETURNING next_refresh_at`,
  due: 'SELECT next_refresh_at FROM federation_relationships WHERE trust_domain = $1',
} as const;

/** A LISTEN connection: its backend's process id (pg_stat_activity.pid), a liveness check, and close. */
export interface ChangeListener {
  readonly pid: number;
  /** One round trip on the listening connection; rejects if it is gone or silent past the query timeout. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The outcome of a lease claim; see {@link PgCluster.claimRefresh}. */
export interface RefreshClaim {
  claimed: boolean;
  /** Unix seconds: the stored next_refresh_at after the claim (the lease's end if claimed). */
  nextRefreshAt: number;
}

/** The cluster surface of a {@link PostgresDataStore}. */
export class PgCluster {
  constructor(
    private readonly db: CheckedPool,
    /** A new, unconnected client with the store's connection settings (its own connection, outside the pool). */
    private readonly newClient: () => pg.Client,
  ) {}

  /**
   * Raises the change counter and sends `payloadFor(sequence)` on
   * {@link CHANGE_CHANNEL}, in one transaction: delivered to every listener
   * (this server's included) at COMMIT, or not at all. Resolves with the sequence.
   */
  async publish(payloadFor: (sequence: number) => string): Promise<number> {
    return this.db.write('publish change', async (q) => {
      const sequence = Number((await q<{ value: string }>(SQL.bump, [CHANGE_SEQUENCE_KEY])).rows[0]!.value);
      await q(SQL.notify, [CHANGE_CHANNEL, payloadFor(sequence)]);
      return sequence;
    });
  }

  /** The change counter now (0 before the first change was ever published). */
  async sequence(): Promise<number> {
    return this.db.run('read change sequence', async (q) => {
      const value = (await q<{ value: string }>(SQL.sequence, [CHANGE_SEQUENCE_KEY])).rows[0]?.value;
      return value === undefined ? 0 : Number(value);
    });
  }

  /**
   * Opens a dedicated connection and LISTENs on {@link CHANGE_CHANNEL}.
   * `onPayload` gets every notification's payload; `onLost` is called (once)
   * when the connection fails or ends after it was set up. Rejects if the
   * connection or the LISTEN fails (nothing is left open).
   */
  async listen(onPayload: (payload: string) => void, onLost: (err: Error) => void): Promise<ChangeListener> {
    const client = this.newClient();
    let lost = false;
    let closing = false;
    const lose = (err: Error): void => {
      if (lost || closing) return;
      lost = true;
      onLost(err);
    };
    // Without an 'error' listener a dropped connection would end the process.
    client.on('error', (err) => lose(err));
    client.on('end', () => lose(new Error('the listening connection ended')));
    client.on('notification', (msg) => {
      if (msg.channel === CHANGE_CHANNEL) onPayload(msg.payload ?? '');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      closing = true;
      await client.end().catch(() => {});
      throw new Error(`cannot listen on ${CHANGE_CHANNEL}: ${errorMessage(err)}`, { cause: err });
    }
    const pid = (client as unknown as { processID: number }).processID;
    return {
      pid,
      ping: async () => {
        await client.query('SELECT 1');
      },
      close: async () => {
        closing = true;
        await client.end().catch(() => {});
      },
    };
  }

  /**
   * Takes the next timed fetch of `trustDomain` if it is due at `now`
   * (next_refresh_at <= now), leasing it until `until` (Unix seconds); the
   * fetch's outcome then sets next_refresh_at again. Otherwise says when it
   * is due. Undefined if there is no such relationship.
   */
  async claimRefresh(trustDomain: string, now: number, until: number): Promise<RefreshClaim | undefined> {
    return this.db.write('claim federation refresh', async (q) => {
      const won = (await q<{ next_refresh_at: number }>(SQL.claim, [trustDomain, now, until])).rows[0];
      if (won !== undefined) return { claimed: true, nextRefreshAt: won.next_refresh_at };
      const row = (await q<{ next_refresh_at: number }>(SQL.due, [trustDomain])).rows[0];
      return row === undefined ? undefined : { claimed: false, nextRefreshAt: row.next_refresh_at };
    });
  }
}
