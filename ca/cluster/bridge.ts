// The cross-server change feed: several servers on one PostgreSQL database
// tell each other what changed, so that an entry created through server 1
// reaches the agents connected to server 2 at once.
//
// - Every change on the local feed (ca/changes.ts) is published with NOTIFY
//   on one channel, in one transaction that also raises a counter in the
//   database (ca/datastore/postgres/cluster.ts).
// - A dedicated LISTEN connection re-emits the other servers' changes on the
//   local feed, where the agent API pushes them to its agents.
// - When that connection drops it is made again (with backoff); notifications
//   sent meanwhile are lost, so after reconnecting the bridge emits
//   "everything changed" and every agent stream makes a full pass.
// - A slow reconcile (default every 30 s: one query, and one ping on the
//   listening connection) compares the counter with the highest sequence
//   heard; if the database is ahead, something was missed: "everything
//   changed". It is the safety net, not the path.
import { randomUUID } from 'node:crypto';
import { AnchorageError, errorMessage, invalid } from '@anchorage/client/errors';
import { Backoff, type BackoffOptions } from '@anchorage/client/backoff';
import type { Logger } from '../../common/log.js';
import type { ChangeFeed } from '../changes.js';
import type { ChangeListener } from '../datastore/postgres/cluster.js';
import { type Change, decodeChange, encodeChange } from './payload.js';

/** What the bridge needs of the database; PgCluster (ca/datastore/postgres/cluster.ts) is one. */
export interface ChangeChannel {
  publish(payloadFor: (sequence: number) => string): Promise<number>;
  sequence(): Promise<number>;
  listen(onPayload: (payload: string) => void, onLost: (err: Error) => void): Promise<ChangeListener>;
}

export interface ClusterBridgeOptions {
  feed: ChangeFeed;
  channel: ChangeChannel;
  logger: Logger;
  /** Milliseconds between reconciles; 1,000 to 3,600,000. Default 30,000. */
  reconcileIntervalMs?: number;
  /** This server instance's id in payloads; default a random UUID. 1 to 64 characters [A-Za-z0-9._:-]. */
  origin?: string;
  /** Delays between attempts to re-establish the LISTEN connection. Default 200 ms doubling to 10 s. */
  reconnect?: BackoffOptions;
  /** Largest payload, bytes; default PostgreSQL's limit less one (7999). Tests lower it. */
  maxPayloadBytes?: number;
}

export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;
const RECONCILE_MIN_MS = 1000;
const RECONCILE_MAX_MS = 3_600_000;
const MAX_PAYLOAD = 7999;

/** Counters, for tests, the bench and logs. */
export interface BridgeStats {
  /** Local changes published. */
  published: number;
  /** Of those, sent as "all changed" because the IDs did not fit. */
  widened: number;
  /** Other servers' changes re-emitted on the local feed. */
  relayed: number;
  /** Payloads that could not be read (re-emitted as "everything changed"). */
  malformed: number;
  /** Times the LISTEN connection was re-established. */
  reconnects: number;
  /** Times the reconcile found the database ahead and emitted "everything changed". */
  reconciled: number;
}

export class ClusterBridge {
  readonly origin: string;
  readonly stats: BridgeStats = { published: 0, widened: 0, relayed: 0, malformed: 0, reconnects: 0, reconciled: 0 };
  readonly #feed: ChangeFeed;
  readonly #channel: ChangeChannel;
  readonly #log: Logger;
  readonly #reconcileMs: number;
  readonly #maxPayload: number;
  readonly #backoff: Backoff;
  #listener: ChangeListener | undefined;
  /** Raised each time a listener is made: a late loss report of an older one is ignored. */
  #listenerGeneration = 0;
  /** The highest change sequence heard (from any server, this one included) or read. */
  #lastSeen = 0;
  /** True while re-emitting another server's change: it must not be published again. */
  #relaying = false;
  /** A publish failed: the next one (or the next reconcile) announces "all changed". */
  #owedAll = false;
  #started = false;
  #closed = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #reconcileTimer: NodeJS.Timeout | undefined;
  readonly #pending = new Set<Promise<void>>();
  readonly #handlers: Array<[string, (arg?: unknown) => void]>;

  constructor(opts: ClusterBridgeOptions) {
    const interval = opts.reconcileIntervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS;
    if (!Number.isSafeInteger(interval) || interval < RECONCILE_MIN_MS || interval > RECONCILE_MAX_MS) {
      throw invalid(`cluster: reconcileIntervalMs must be a whole number of milliseconds from ${RECONCILE_MIN_MS} to ${RECONCILE_MAX_MS}`);
    }
    const origin = opts.origin ?? randomUUID();
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(origin)) throw invalid('cluster: origin must be 1 to 64 characters of A-Z a-z 0-9 . _ : -');
    const maxPayload = opts.maxPayloadBytes ?? MAX_PAYLOAD;
    if (!Number.isSafeInteger(maxPayload) || maxPayload < 200 || maxPayload > MAX_PAYLOAD) {
      throw invalid(`cluster: maxPayloadBytes must be a whole number from 200 to ${MAX_PAYLOAD}`);
    }
    this.origin = origin;
    this.#feed = opts.feed;
    this.#channel = opts.channel;
    this.#log = opts.logger;
    this.#reconcileMs = interval;
    this.#maxPayload = maxPayload;
    this.#backoff = new Backoff({ initialMs: 200, maxMs: 10_000, ...opts.reconnect });
    this.#handlers = [
      ['entries', (ids) => this.#local({ kind: 'entries', ids: ids as string[] })],
      ['evicted', (id) => this.#local({ kind: 'evicted', id: id as string })],
      ['bundles', () => this.#local({ kind: 'bundles' })],
      ['ca', () => this.#local({ kind: 'ca' })],
      ['everything', () => this.#local({ kind: 'all' })],
    ];
  }

  /** The backend pid of the LISTEN connection (pg_stat_activity.pid), undefined while it is down. */
  get listenerPid(): number | undefined {
    return this.#listener?.pid;
  }

  /**
   * LISTENs, then publishes local changes. Fails with `unavailable` if the
   * LISTEN connection cannot be made (the datastore has just connected, so
   * this is a real problem, not a blip).
   */
  async start(): Promise<void> {
    if (this.#started) throw new AnchorageError('failed_precondition', 'cluster: the bridge was already started');
    this.#started = true;
    try {
      await this.#listen();
      this.#lastSeen = Math.max(this.#lastSeen, await this.#channel.sequence());
    } catch (err) {
      await this.close();
      throw new AnchorageError('unavailable', `cluster: ${errorMessage(err)}`, { cause: err });
    }
    for (const [event, fn] of this.#handlers) this.#feed.on(event, fn);
    this.#scheduleReconcile();
    this.#log.info({ origin: this.origin, reconcileIntervalMs: this.#reconcileMs }, 'cluster: change feed bridged over PostgreSQL LISTEN/NOTIFY');
  }

  /**
   * One safety-net pass (what the timer runs): announces "all changed" if a
   * publish failed before; checks the LISTEN connection with one round trip
   * (re-establishing it if that fails); reads the change counter and, if it
   * is ahead of what was heard, emits "everything changed" locally. True if
   * it did.
   */
  async reconcile(): Promise<boolean> {
    if (this.#closed) return false;
    if (this.#owedAll) await this.#publish({ kind: 'all' });
    const listener = this.#listener;
    if (listener) {
      const generation = this.#listenerGeneration;
      try {
        await listener.ping();
      } catch (err) {
        this.#lost(generation, err instanceof Error ? err : new Error(String(err)));
      }
    }
    let sequence: number;
    try {
      sequence = await this.#channel.sequence();
    } catch (err) {
      this.#log.warn({ err: errorMessage(err) }, 'cluster: reconcile could not read the change counter');
      return false;
    }
    if (this.#closed || sequence <= this.#lastSeen) return false;
    this.#log.warn({ counter: sequence, heard: this.#lastSeen }, 'cluster: changes were missed (the counter is ahead of what was heard); every agent stream makes a full pass');
    this.#lastSeen = sequence;
    this.stats.reconciled++;
    this.#relay({ kind: 'all' });
    return true;
  }

  /** Stops publishing and listening; waits for publishes under way. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#reconcileTimer);
    for (const [event, fn] of this.#handlers) this.#feed.off(event, fn);
    await Promise.all([...this.#pending]);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.close();
  }

  // --- publishing -------------------------------------------------------------

  #local(change: Change): void {
    if (this.#relaying || this.#closed || (change.kind === 'entries' && change.ids.length === 0)) return;
    const p = this.#publish(change);
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  async #publish(change: Change): Promise<void> {
    // After a failed publish the next one says "all": the missed change is in it.
    const owed = this.#owedAll;
    this.#owedAll = false;
    const sent: Change = owed ? { kind: 'all' } : change;
    let widened = false;
    try {
      await this.#channel.publish((sequence) => {
        const out = encodeChange(this.origin, sequence, sent, this.#maxPayload);
        widened = out.widened;
        return out.payload;
      });
      this.stats.published++;
      if (widened) this.stats.widened++;
    } catch (err) {
      this.#owedAll = true;
      this.#log.warn({ err: errorMessage(err), kind: change.kind }, 'cluster: could not publish a change to the other servers; "all changed" will be sent once the database answers');
    }
  }

  // --- listening --------------------------------------------------------------

  async #listen(): Promise<void> {
    const generation = ++this.#listenerGeneration;
    const listener = await this.#channel.listen(
      (payload) => this.#heard(payload),
      (err) => this.#lost(generation, err),
    );
    if (this.#closed) {
      await listener.close();
      return;
    }
    this.#listener = listener;
  }

  #heard(payload: string): void {
    if (this.#closed) return;
    let msg;
    try {
      msg = decodeChange(payload);
    } catch (err) {
      this.stats.malformed++;
      this.#log.warn({ err: errorMessage(err), bytes: payload.length }, 'cluster: unreadable change notification; every agent stream makes a full pass');
      this.#relay({ kind: 'all' });
      return;
    }
    if (msg.sequence > this.#lastSeen) this.#lastSeen = msg.sequence;
    if (msg.origin === this.origin) return;
    this.stats.relayed++;
    this.#relay(msg.change);
  }

  /** Emits a change on the local feed, without publishing it again. */
  #relay(change: Change): void {
    this.#relaying = true;
    try {
      if (change.kind === 'entries') this.#feed.entriesChanged(change.ids);
      else if (change.kind === 'evicted') this.#feed.agentEvicted(change.id);
      else if (change.kind === 'bundles') this.#feed.bundlesChanged();
      else if (change.kind === 'ca') this.#feed.remoteCaChanged();
      else this.#feed.everythingChanged();
    } finally {
      this.#relaying = false;
    }
  }

  #lost(generation: number, err: Error): void {
    if (this.#closed || generation !== this.#listenerGeneration || this.#listener === undefined) return;
    const old = this.#listener;
    this.#listener = undefined;
    void old.close();
    this.#log.warn({ err: errorMessage(err) }, 'cluster: the LISTEN connection was lost; reconnecting');
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(), this.#backoff.next());
    this.#reconnectTimer.unref();
  }

  async #reconnect(): Promise<void> {
    try {
      await this.#listen();
    } catch (err) {
      this.#log.warn({ err: errorMessage(err) }, 'cluster: could not re-establish the LISTEN connection; retrying');
      this.#scheduleReconnect();
      return;
    }
    if (this.#closed) return;
    this.#backoff.reset();
    this.stats.reconnects++;
    try {
      this.#lastSeen = Math.max(this.#lastSeen, await this.#channel.sequence());
    } catch {
      // The reconcile reads it again; the catch-up below does not depend on it.
    }
    // Notifications sent while the connection was down are lost.
    this.#log.info({}, 'cluster: LISTEN connection re-established; every agent stream makes a full pass');
    this.#relay({ kind: 'all' });
  }

  #scheduleReconcile(): void {
    if (this.#closed) return;
    this.#reconcileTimer = setTimeout(() => {
      void this.reconcile()
        .catch((err: unknown) => this.#log.warn({ err: errorMessage(err) }, 'cluster: reconcile failed'))
        .finally(() => this.#scheduleReconcile());
    }, this.#reconcileMs);
    this.#reconcileTimer.unref();
  }
}
