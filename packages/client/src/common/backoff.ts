import { invalid } from './errors.js';

/** Options of {@link Backoff}; every field has a default. */
export interface BackoffOptions {
  /** First delay. Default 100 ms. */
  initialMs?: number;
  /** Largest delay. Default 30 s. */
  maxMs?: number;
  /** Growth factor per attempt. Default 2. */
  multiplier?: number;
  /**
   * Each delay is spread uniformly over ±`jitter` of its nominal value, so
   * that the workloads of one node do not all reconnect in the same
   * millisecond after their agent restarts. Default 0.2.
   */
  jitter?: number;
}

const DEFAULTS: Required<BackoffOptions> = { initialMs: 100, maxMs: 30_000, multiplier: 2, jitter: 0.2 };

/**
 * Exponential backoff with jitter: 100 ms, 200 ms, 400 ms … up to 30 s by
 * default. `reset()` after a success starts again from the first delay.
 */
export class Backoff {
  readonly #opts: Required<BackoffOptions>;
  readonly #random: () => number;
  #nominal: number;

  constructor(options: BackoffOptions = {}, random: () => number = Math.random) {
    const o = { ...DEFAULTS, ...stripUndefined(options) };
    if (!(o.initialMs > 0) || !Number.isFinite(o.initialMs)) throw invalid('backoff: initialMs must be a positive number');
    if (!(o.maxMs >= o.initialMs) || !Number.isFinite(o.maxMs)) throw invalid('backoff: maxMs must be at least initialMs');
    if (!(o.multiplier >= 1) || !Number.isFinite(o.multiplier)) throw invalid('backoff: multiplier must be at least 1');
    if (!(o.jitter >= 0 && o.jitter <= 1)) throw invalid('backoff: jitter must be between 0 and 1');
    this.#opts = o;
    this.#random = random;
    this.#nominal = o.initialMs;
  }

  /** The delay before the next attempt, in milliseconds; each call grows the next one. */
  next(): number {
    const nominal = this.#nominal;
    this.#nominal = Math.min(this.#opts.maxMs, nominal * this.#opts.multiplier);
    const spread = nominal * this.#opts.jitter * (2 * this.#random() - 1);
    return Math.max(0, Math.min(this.#opts.maxMs, Math.round(nominal + spread)));
  }

  reset(): void {
    this.#nominal = this.#opts.initialMs;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
