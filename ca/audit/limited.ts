// Records of events that a remote peer can cause at will (a refused agent
// attestation costs the peer one TLS stream), with a budget: a flood must not
// fill the audit log's queue (100,000 records) and starve the records that
// minting waits for. What is over the budget is counted, and the count is
// recorded once the flood has passed.
import { errorMessage } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import type { AuditEvent, AuditSink } from './event.js';

export interface BudgetOptions {
  /** Records at once (the bucket's size). */
  burst: number;
  /** Records per second on average (the bucket's refill). */
  perSecond: number;
  /** The type of the record that counts what went unrecorded. */
  suppressedType: string;
  /** After the first event over the budget, how long until the count is recorded (ms). */
  summaryDelayMs?: number;
  now?: () => number;
  logger: Logger;
}

export const DEFAULT_SUMMARY_DELAY_MS = 10_000;

/** A token bucket in front of an AuditSink. record() never waits and never throws. */
export class BudgetedRecorder {
  private tokens: number;
  private last: number;
  private suppressed = 0;
  private firstSuppressedAt = 0;
  private lastSuppressedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly sink: AuditSink,
    private readonly opts: BudgetOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.tokens = opts.burst;
    this.last = this.now();
  }

  /** Records `event` if the budget allows, else counts it. */
  record(event: AuditEvent): void {
    const t = this.now();
    this.tokens = Math.min(this.opts.burst, this.tokens + ((t - this.last) / 1000) * this.opts.perSecond);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.write(event);
      return;
    }
    if (this.suppressed === 0) this.firstSuppressedAt = t;
    this.suppressed++;
    this.lastSuppressedAt = t;
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.summarize(), this.opts.summaryDelayMs ?? DEFAULT_SUMMARY_DELAY_MS);
      this.timer.unref();
    }
  }

  /** Events counted but not recorded so far. */
  get pendingSuppressed(): number {
    return this.suppressed;
  }

  /** Records the count now (and at shutdown); nothing if none were suppressed. */
  summarize(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed === 0) return;
    this.write({
      type: this.opts.suppressedType,
      details: { count: this.suppressed, first_ms: this.firstSuppressedAt, last_ms: this.lastSuppressedAt },
    });
    this.opts.logger.warn({ count: this.suppressed }, `audit: ${this.suppressed} events over the recording budget were counted in one ${this.opts.suppressedType} record`);
    this.suppressed = 0;
  }

  private write(event: AuditEvent): void {
    this.sink.record(event).catch((err: unknown) => {
      this.opts.logger.warn({ err: errorMessage(err), type: event.type }, 'audit: recording failed');
    });
  }
}
