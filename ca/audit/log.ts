// The tamper-evident audit log: an append-only hash chain in the datastore,
// written with group commit, with checkpoints signed by an HSM key.
//
// The chain (record format, canonical encoding, hash, checkpoint message) is
// defined in ./chain.ts. In short: record n carries seq n, the time in ms,
// the event fields, prev_hash = hash of record n−1 (zeros for n = 1) and
// hash = SHA-256(prev_hash || canonical encoding of record n).
//
// What is detected, and how:
// - an edited record: its hash no longer matches (or a later prev_hash does not);
// - a deleted record: a gap in seq;
// - reordered records: seq or prev_hash out of place;
// - a chain rewritten with recomputed hashes: the signed checkpoints (every
//   1,000 records and every 5 s with new records; never more than
//   MAX_UNCHECKPOINTED records apart) sign (seq, hash, time) of the record
//   before them with the key `anchorage-audit-<trust domain>` in the key
//   manager, which verify takes from the key manager, never from the log;
// - a truncated tail: while the server runs, it remembers the last seq it
//   wrote and verify refuses a log that ends before it; across restarts, the
//   seq and hash of the last checkpoint are also kept in a file beside the
//   datastore (`head_file`), which verify and the next start compare with
//   the log. A start that finds the log truncated says so in its
//   `audit.started` record, which verify reports from then on.
import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { writeFileAtomicAsync } from '../../common/safe-file.js';
import type { AuditQuery, DataStore } from '../datastore/DataStore.js';
import type { KeyHandle, KeyManager } from '../keymanager/KeyManager.js';
import {
  CHECKPOINT_TYPE,
  ChainVerifier,
  GENESIS_HASH,
  chainEvents,
  MAX_UNCHECKPOINTED,
  STARTED_TYPE,
  auditKeyLabel,
  chainRecord,
  checkpointEvent,
  type AuditRecord,
  type VerifyResult,
} from './chain.js';
import type { AuditEvent, AuditSink, RecordOptions } from './event.js';

export const DEFAULT_MAX_PENDING = 100_000;
export const DEFAULT_BATCH = 256;
/** 0: the first record of an idle log is flushed at the next turn of the event loop (setImmediate). */
export const DEFAULT_FLUSH_DELAY_MS = 0;
export const DEFAULT_CHECKPOINT_EVERY = 1000;
/**
 * Each commit costs an fsync (synchronous = FULL), about 0.2-0.3 ms of CPU on
 * the test VMs: with fewer than a full batch waiting, commits are at least
 * this far apart. The minter writes the record while the HSM signs, so the
 * wait mostly hides behind the signature.
 */
export const DEFAULT_MIN_COMMIT_INTERVAL_MS = 2;
/** The longest a record is held for its caller's `withinMs` before it is committed. */
export const DEFAULT_MAX_HOLD_MS = 20;
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 5000;
/** Records per datastore read while verifying or listing. */
const PAGE = 2000;

export interface AuditLogOptions {
  datastore: Pick<DataStore, 'appendAuditRecords' | 'appendAuditEvents' | 'listAuditRecords' | 'lastAuditRecord'>;
  /** Holds the checkpoint key (the HSM in production). */
  keyManager: Pick<KeyManager, 'getKey' | 'generateKey'>;
  trustDomain: string;
  logger: Logger;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /**
   * A file outside the datastore that keeps the seq and hash of the last
   * checkpoint written (the server: `<data_dir>/audit-head.json`); absent,
   * a tail cut while the server is stopped is only caught back to ... nothing.
   */
  headFile?: string;
  maxPending?: number;
  batchSize?: number;
  flushDelayMs?: number;
  checkpointEvery?: number;
  checkpointIntervalMs?: number;
  /** Least time between two commits while fewer than a full batch are waiting. */
  minCommitIntervalMs?: number;
  /** Upper bound on a record's `withinMs` (default {@link DEFAULT_MAX_HOLD_MS}). */
  maxHoldMs?: number;
  /**
   * Several servers append to this log (one PostgreSQL database): a batch
   * that finds another server's records at the head is linked to them and
   * tried again. Without it, records this server did not write stop it.
   */
  sharedWriters?: boolean;
}

interface Pending {
  event: AuditEvent;
  time: number;
  /** performance.now() by which its commit should start. */
  due: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface Head {
  seq: number;
  hash: string;
  time: number;
}

/** What the head file says: the last checkpoint record written. */
interface Anchor {
  seq: number;
  hash: string;
}

/** The audit log of one server. record() resolves only once the record is committed. */
export class AuditLog implements AuditSink {
  private readonly ds: AuditLogOptions['datastore'];
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly maxPending: number;
  private readonly batchSize: number;
  private readonly flushDelayMs: number;
  private readonly checkpointEvery: number;
  private pending: Pending[] = [];
  private running: Promise<void> | undefined;
  /** The scheduled flush, if any. */
  private timer: { cancel(): void } | undefined;
  private readonly cpTimer: NodeJS.Timeout;
  private head: Head;
  /** The head may differ from the stored one (a write failed with an unknown outcome): reread it first. */
  private headStale = false;
  /** The head the failed append would have made. */
  private attempted: Head | undefined;
  /** Records since the last checkpoint. */
  private sinceCheckpoint: number;
  private checkpointWanted = false;
  /** The last record this process committed: verify refuses a log that does not hold it. */
  private written: Head;
  private closed = false;
  /** close() is flushing: no more waiting between commits. */
  private closing = false;
  private lastOverflowLog = 0;
  private lastCommitAt = 0;
  private readonly minCommitIntervalMs: number;
  private readonly maxHoldMs: number;
  /** The earliest `due` among the pending records. */
  private earliestDue = Infinity;
  /** The write loop is waiting for the next commit time: wake() ends the wait early. */
  private sleeping: { until: number; wake: () => void } | undefined;
  /** Waiters for the next time the queue is empty (flush()). */
  private idle: Array<() => void> = [];
  /** The head file write in flight, and the checkpoint to write after it. */
  private anchorWriting: Promise<void> | undefined;
  private anchorNext: Anchor | undefined;
  /** Listeners for newly committed records (ListAuditRecords --follow). */
  private readonly listeners = new Set<(upTo: number) => void>();

  private constructor(
    private readonly opts: AuditLogOptions,
    private readonly key: KeyHandle,
    head: Head,
    sinceCheckpoint: number,
  ) {
    this.ds = opts.datastore;
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    this.maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING;
    this.batchSize = opts.batchSize ?? DEFAULT_BATCH;
    this.flushDelayMs = opts.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS;
    this.checkpointEvery = opts.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    this.minCommitIntervalMs = opts.minCommitIntervalMs ?? DEFAULT_MIN_COMMIT_INTERVAL_MS;
    this.maxHoldMs = opts.maxHoldMs ?? DEFAULT_MAX_HOLD_MS;
    this.head = head;
    this.written = head;
    this.sinceCheckpoint = sinceCheckpoint;
    this.cpTimer = setInterval(() => {
      if (this.sinceCheckpoint > 0 && !this.closed) {
        this.checkpointWanted = true;
        this.kick();
      }
    }, opts.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS);
    this.cpTimer.unref();
  }

  /**
   * Opens the log: finds (or, the first time, generates) the checkpoint key,
   * reads the head, compares it with the head file, and appends
   * `audit.started` naming what it found, followed by a checkpoint.
   */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const label = auditKeyLabel(opts.trustDomain);
    let key = await opts.keyManager.getKey(label);
    if (!key) {
      try {
        key = await opts.keyManager.generateKey(label, 'ec-p256');
        opts.logger.info({ key: label }, 'audit: generated the checkpoint key');
      } catch (err) {
        // Another server on the same token made it first.
        if (!(err instanceof AnchorageError && err.code === 'already_exists')) throw err;
        key = await opts.keyManager.getKey(label);
        if (!key) throw err;
      }
    } else if (key.type !== 'ec-p256') {
      throw new AnchorageError('failed_precondition', `audit: key ${label} is ${key.type}, expected ec-p256`);
    }
    const last = await opts.datastore.lastAuditRecord();
    const head: Head = last ? { seq: last.seq, hash: last.hash, time: last.time } : { seq: 0, hash: GENESIS_HASH, time: 0 };
    // Records after the last checkpoint: at most MAX_UNCHECKPOINTED, so one page back finds it.
    let since = 0;
    if (last) {
      const tail = await opts.datastore.listAuditRecords({ afterSeq: Math.max(0, last.seq - MAX_UNCHECKPOINTED - 1), limit: MAX_UNCHECKPOINTED + 2 });
      for (const r of tail) since = r.type === CHECKPOINT_TYPE ? 0 : since + 1;
    }
    const audit = new AuditLog(opts, key, head, since);
    const anchor = audit.readAnchor();
    const details: Record<string, string | number | boolean> = { head_seq: head.seq, head_hash: head.hash };
    if (anchor) {
      details.anchor_seq = anchor.seq;
      let ok = head.seq >= anchor.seq;
      if (ok) {
        const [at] = await opts.datastore.listAuditRecords({ afterSeq: anchor.seq - 1, limit: 1 });
        ok = at !== undefined && at.seq === anchor.seq && at.hash === anchor.hash;
      }
      details.anchor_ok = ok;
      if (!ok) {
        opts.logger.error(
          { headSeq: head.seq, anchorSeq: anchor.seq, headFile: opts.headFile },
          'audit: the audit log does not contain the last checkpoint this server wrote: it was truncated or rewritten while the server was stopped',
        );
      }
    }
    audit.checkpointWanted = true;
    await audit.record({ type: STARTED_TYPE, details });
    // The checkpoint follows in its own commit: open returns once it is stored.
    await audit.flush();
    opts.logger.info({ headSeq: audit.head.seq, keyId: label }, 'audit: log open');
    return audit;
  }

  /** Batches committed by this process (each one transaction and one fsync). */
  commits = 0;

  /** The seq of the last committed record. */
  get headSeq(): number {
    return this.head.seq;
  }

  /**
   * Queues a record; resolves once it is committed. Commits are grouped: the
   * next one starts when the earliest-due record is due (its arrival plus its
   * `withinMs`, at most maxHoldMs) but no sooner than minCommitIntervalMs
   * after the last one, or at once when a full batch is waiting.
   */
  record(event: AuditEvent, opts?: RecordOptions): Promise<void> {
    if (this.closed) return Promise.reject(new AnchorageError('failed_precondition', 'audit: the audit log is closed'));
    if (this.pending.length >= this.maxPending) {
      const t = this.now();
      if (t - this.lastOverflowLog > 10_000) {
        this.lastOverflowLog = t;
        this.log.error({ pending: this.pending.length }, 'audit: too many records waiting to be written; refusing new ones (is the datastore slow or down?)');
      }
      return Promise.reject(new AnchorageError('unavailable', `audit: ${this.pending.length} records are waiting to be written; try again later`));
    }
    const hold = opts?.withinMs;
    const due = performance.now() + (hold !== undefined && hold > 0 ? Math.min(hold, this.maxHoldMs) : 0);
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ event, time: this.now(), due, resolve, reject });
      if (due < this.earliestDue) {
        this.earliestDue = due;
        if (this.sleeping !== undefined && due < this.sleeping.until) this.sleeping.wake();
      }
      if (this.pending.length >= this.batchSize) {
        this.sleeping?.wake();
        this.kick();
      }
      else if (this.timer === undefined && this.running === undefined) {
        if (this.flushDelayMs > 0) {
          const t = setTimeout(() => this.kick(), this.flushDelayMs);
          this.timer = { cancel: () => clearTimeout(t) };
        } else {
          const t = setImmediate(() => this.kick());
          this.timer = { cancel: () => clearImmediate(t) };
        }
      }
    });
  }

  /** Resolves once everything recorded before the call has been written (or has failed). */
  flush(): Promise<void> {
    if (this.pending.length === 0 && this.running === undefined) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.idle.push(resolve));
    this.sleeping?.wake();
    this.kick();
    return p;
  }

  /** Writes what is queued, then stops; later record() calls are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.sinceCheckpoint > 0) this.checkpointWanted = true;
    this.closing = true;
    this.sleeping?.wake();
    await this.flush();
    while (this.anchorWriting) await this.anchorWriting;
    this.closed = true;
    clearInterval(this.cpTimer);
    this.timer?.cancel();
    for (const l of this.listeners) l(-1);
  }

  /** Called with the new head seq after every commit (and -1 when closing). */
  onCommit(listener: (upTo: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private kick(): void {
    if (this.timer) {
      this.timer.cancel();
      this.timer = undefined;
    }
    if (this.running) return;
    this.running = this.run().finally(() => {
      this.running = undefined;
      if (this.pending.length > 0 || this.checkpointWanted) this.kick();
      else for (const w of this.idle.splice(0)) w();
    });
  }

  /**
   * The write loop, in chain order: one batch of events (one transaction) at
   * a time, whose callers are answered as soon as it is stored; then, when
   * one is due, a checkpoint over the new head (its own transaction).
   */
  private async run(): Promise<void> {
    while (this.pending.length > 0 || (this.checkpointWanted && this.sinceCheckpoint > 0)) {
      await this.untilCommitTime();
      this.lastCommitAt = performance.now();
      const batch = this.pending.splice(0, this.batchSize);
      this.earliestDue = Infinity;
      for (const p of this.pending) if (p.due < this.earliestDue) this.earliestDue = p.due;
      // Asked for once per pass: a checkpoint that cannot be signed now is tried again at the next timer or batch.
      const wantCheckpoint = this.checkpointWanted;
      this.checkpointWanted = false;
      if (batch.length > 0) {
        try {
          await this.appendBatch(batch);
          for (const p of batch) p.resolve();
        } catch (err) {
          const e =
            err instanceof AnchorageError && err.code === 'unavailable'
              ? err
              : new AnchorageError('unavailable', `audit: the audit records could not be written: ${errorMessage(err)}`, { cause: err });
          this.log.error({ err: errorMessage(err), records: batch.length }, 'audit: writing audit records failed; their callers are refused');
          for (const p of batch) p.reject(e);
          continue;
        }
      }
      if (this.sinceCheckpoint > 0 && (this.sinceCheckpoint >= this.checkpointEvery || wantCheckpoint)) {
        try {
          await this.checkpoint();
        } catch (err) {
          // The records are stored; the next batch or timer tries again, and appendBatch refuses to go past MAX_UNCHECKPOINTED.
          this.log.error({ err: errorMessage(err) }, 'audit: writing a checkpoint failed');
        }
      }
    }
    this.checkpointWanted = false;
  }

  /**
   * Waits until the next commit may start: each commit costs an fsync, so
   * commits are at least minCommitIntervalMs apart, and records whose callers
   * can wait (withinMs) are held until the earliest of them is due. A full
   * batch, close(), or a record due sooner ends the wait.
   */
  private async untilCommitTime(): Promise<void> {
    for (;;) {
      // A full batch, close(), or someone waiting in flush(): now.
      if (this.pending.length >= this.batchSize || this.closing || this.idle.length > 0) return;
      const at = Math.max(this.lastCommitAt + this.minCommitIntervalMs, this.pending.length > 0 ? this.earliestDue : 0);
      const wait = at - performance.now();
      if (wait <= 0) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(t);
          this.sleeping = undefined;
          resolve();
        };
        const t = setTimeout(wake, wait);
        this.sleeping = { until: at, wake };
      });
    }
  }

  /** Appends one batch of events after the head; the datastore builds the records (DataStore.appendAuditEvents). */
  private async appendBatch(batch: Pending[]): Promise<void> {
    if (this.headStale) await this.reloadAfterFailure();
    // Never more than MAX_UNCHECKPOINTED records after the last checkpoint: one that could not be made before must be made now.
    if (this.sinceCheckpoint + batch.length > MAX_UNCHECKPOINTED) {
      try {
        await this.checkpoint();
      } catch (err) {
        throw new AnchorageError('unavailable', `audit: no checkpoint could be written for ${this.sinceCheckpoint} records: ${errorMessage(err)}`, { cause: err });
      }
    }
    const events = batch.map((p) => ({ event: p.event, time: p.time }));
    for (let attempt = 1; ; attempt++) {
      const prev = this.head;
      let hash: string;
      try {
        hash = await this.ds.appendAuditEvents({ seq: prev.seq, hash: prev.hash }, events);
      } catch (err) {
        // Several servers on one database write one chain: another one appended first; link to its head and try again.
        if (this.opts.sharedWriters && err instanceof AnchorageError && err.code === 'failed_precondition' && attempt < 8) {
          await this.followForeignRecords();
          continue;
        }
        // A write whose outcome is unknown may have stored the batch: start the next one from what is stored.
        const last = chainEvents(prev, events).at(-1)!;
        this.failed({ seq: last.seq, hash: last.hash, time: last.time });
        throw err;
      }
      this.committed({ seq: prev.seq + batch.length, hash, time: batch[batch.length - 1]!.time }, this.sinceCheckpoint + batch.length);
      return;
    }
  }

  /** Appends a checkpoint signed over the head (with several servers, over the head it finds). */
  private async checkpoint(): Promise<void> {
    if (this.headStale) await this.reloadAfterFailure();
    for (let attempt = 1; ; attempt++) {
      const prev = this.head;
      const ev = await checkpointEvent(this.opts.trustDomain, this.key.id, prev, (d) => this.key.sign(d));
      const cp = chainRecord(ev, prev.seq + 1, this.now(), prev.hash);
      try {
        await this.ds.appendAuditRecords([cp]);
      } catch (err) {
        if (this.opts.sharedWriters && err instanceof AnchorageError && err.code === 'failed_precondition' && attempt < 8) {
          await this.followForeignRecords();
          continue;
        }
        this.failed(cp);
        throw err;
      }
      this.committed(cp, 0);
      this.writeAnchor({ seq: cp.seq, hash: cp.hash });
      return;
    }
  }

  private committed(head: Head, sinceCheckpoint: number): void {
    this.head = head;
    this.written = head;
    this.sinceCheckpoint = sinceCheckpoint;
    this.commits++;
    for (const l of this.listeners) l(head.seq);
  }

  /** An append failed with an unknown outcome: the next one first rereads the stored head, which may be `attempted`. */
  private failed(attempted: Head): void {
    this.headStale = true;
    this.attempted = attempted;
  }

  /** Moves the head past records other servers appended (sharedWriters), counting them towards the next checkpoint. */
  private async followForeignRecords(): Promise<void> {
    const after = await this.ds.listAuditRecords({ afterSeq: this.head.seq, limit: MAX_UNCHECKPOINTED + 2 });
    if (after.length === 0) {
      const last = await this.ds.lastAuditRecord();
      if ((last?.seq ?? 0) < this.head.seq) this.truncated(last?.seq ?? 0);
      return;
    }
    let since = this.sinceCheckpoint;
    for (const r of after) since = r.type === CHECKPOINT_TYPE ? 0 : since + 1;
    const last = after[after.length - 1]!;
    this.head = { seq: last.seq, hash: last.hash, time: last.time };
    this.sinceCheckpoint = since;
  }

  private truncated(storedSeq: number): never {
    throw new AnchorageError(
      'unavailable',
      `audit: the stored audit log ends at record ${storedSeq} but this server wrote up to record ${this.written.seq}: records were removed; nothing more is appended until they are restored`,
    );
  }

  /**
   * After a failed append: what is stored decides. Our own head (nothing was
   * stored) or the batch we tried (it was stored after all): go on from it.
   * Below what this server wrote: records were removed, refuse. Anything
   * else: records this server did not write, refused unless several servers
   * share the log.
   */
  private async reloadAfterFailure(): Promise<void> {
    const last = await this.ds.lastAuditRecord();
    const storedSeq = last?.seq ?? 0;
    if (storedSeq < this.written.seq) this.truncated(storedSeq);
    const ours = (h: Head | undefined) => h !== undefined && last !== undefined && last.seq === h.seq && last.hash === h.hash;
    if (storedSeq === this.written.seq && (storedSeq === 0 || ours(this.written))) {
      this.head = this.written;
    } else if (ours(this.attempted)) {
      this.head = this.attempted!;
      this.written = this.head;
    } else if (this.opts.sharedWriters) {
      this.head = this.written;
      await this.followForeignRecords();
    } else {
      throw new AnchorageError(
        'unavailable',
        `audit: the stored audit log has records this server did not write after record ${this.written.seq} (up to ${storedSeq}); nothing more is appended`,
      );
    }
    this.headStale = false;
    this.attempted = undefined;
  }

  private readAnchor(): Anchor | undefined {
    const f = this.opts.headFile;
    if (!f) return undefined;
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new AnchorageError('unavailable', `audit: cannot read ${f}: ${errorMessage(err)}`, { cause: err });
    }
    try {
      const v = JSON.parse(text) as Anchor;
      if (!Number.isSafeInteger(v.seq) || v.seq < 1 || typeof v.hash !== 'string' || !/^[0-9a-f]{64}$/.test(v.hash)) throw new Error('bad fields');
      return { seq: v.seq, hash: v.hash };
    } catch {
      throw new AnchorageError('failed_precondition', `audit: ${f} is not an audit head file ({"seq": n, "hash": "<64 hex>"}); it was damaged`);
    }
  }

  /**
   * Keeps the head file at the latest checkpoint, off the event loop (two
   * fsyncs each time). One write at a time; a checkpoint made while one is
   * in flight is written after it, and only the newest one waiting.
   */
  private writeAnchor(a: Anchor): void {
    if (!this.opts.headFile) return;
    this.anchorNext = a;
    if (this.anchorWriting) return;
    this.anchorWriting = (async () => {
      for (let next = this.anchorNext; next !== undefined; next = this.anchorNext) {
        this.anchorNext = undefined;
        const f = this.opts.headFile!;
        try {
          await writeFileAtomicAsync(dirname(f), basename(f), `${JSON.stringify(next)}\n`);
        } catch (err) {
          this.log.error({ err: errorMessage(err), file: f }, 'audit: cannot write the head file');
        }
      }
      this.anchorWriting = undefined;
    })();
  }

  /** Records in seq order (see AuditQuery), after what is queued has been written. */
  async list(query: AuditQuery): Promise<AuditRecord[]> {
    return this.ds.listAuditRecords(query);
  }

  /**
   * Checks the whole chain (./chain.ts ChainVerifier), then that it reaches
   * the last record this process wrote and the head file's checkpoint, and
   * that no start found the log truncated.
   */
  async verify(): Promise<VerifyResult> {
    await this.flush();
    // The head file as of the last checkpoint written, not one write behind.
    while (this.anchorWriting) await this.anchorWriting;
    const written = this.written;
    const anchor = this.readAnchor();
    const key = await this.opts.keyManager.getKey(this.key.id);
    const anchors = [...(written.seq > 0 ? [{ seq: written.seq, hash: written.hash, what: 'this server (the last record it wrote)' }] : [])];
    if (anchor) anchors.push({ ...anchor, what: `the head file ${this.opts.headFile}` });
    const v = new ChainVerifier(this.opts.trustDomain, key?.publicKeySpki, { anchors });
    let after = 0;
    let headSeq = 0;
    let startedBad: { seq: number; reason: string } | undefined;
    for (;;) {
      const page = await this.ds.listAuditRecords({ afterSeq: after, limit: PAGE });
      for (const r of page) {
        headSeq = r.seq;
        if (!v.feed(r)) break;
        if (!startedBad && r.type === STARTED_TYPE && r.details?.anchor_ok === false) {
          startedBad = {
            seq: r.seq,
            reason: `the server started on a log without its last checkpoint (record ${String(r.details.anchor_seq)}; the log then ended at ${String(r.details.head_seq)}): records were removed while it was stopped`,
          };
        }
      }
      if (v.bad || page.length < PAGE) break;
      after = page[page.length - 1]!.seq;
    }
    const minHead =
      anchor && anchor.seq > written.seq
        ? { seq: anchor.seq, what: `the head file ${this.opts.headFile}` }
        : { seq: written.seq, what: 'this server (the last record it wrote)' };
    const res = v.result(minHead, headSeq);
    if (res.ok && startedBad) return { ...res, ok: false, firstBadSeq: startedBad.seq, reason: startedBad.reason };
    return res;
  }
}

