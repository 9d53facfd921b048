import { EventEmitter } from 'node:events';
import { status } from '@grpc/grpc-js';
import { AnchorageError } from './common/errors.js';
import type { JwtBundle } from './spiffe/bundle.js';
import type { SpiffeId, TrustDomain } from './spiffe/id.js';
import { verifyJwtSvid, type VerifiedJwtSvid } from './spiffe/jwtsvid.js';
import { Backoff } from './common/backoff.js';
import type { CallOptions, WatchErrorInfo, WorkloadApiClient } from './client.js';
import { isWorkloadApiError, type WorkloadApiError } from './errors.js';
import { SourceCore, type ReadyOptions, type SourceOptions } from './source.js';
import type { BundleSet, JwtSvid } from './types.js';

export interface JWTSourceOptions extends SourceOptions {
  /**
   * Attempts per fetchJWTSVID call while the agent answers UNAVAILABLE (it
   * is restarting, or could not attest the caller yet), spaced by the
   * backoff. Default 4; other errors are never retried.
   */
  fetchAttempts?: number;
}

/** Events of {@link JWTSource}. */
export interface JWTSourceEvents {
  /** New JWT bundles. */
  update: [bundles: BundleSet<JwtBundle>];
  streamError: [err: Error, info: WatchErrorInfo];
  /** PERMISSION_DENIED while the source held bundles; they have been dropped. */
  revoked: [err: WorkloadApiError];
}

/**
 * JWT-SVIDs on demand and the JWT bundles to validate others' with, kept
 * current by a FetchJWTBundles stream. Validation is local: no round trip
 * to the agent per request.
 *
 * ```ts
 * const jwt = await JWTSource.create();
 * const { token } = await jwt.fetchJWTSVID(['https://api.example.org']);
 * const { spiffeId } = await jwt.validate(incomingToken, 'https://me.example.org');
 * ```
 */
export class JWTSource extends EventEmitter<JWTSourceEvents> {
  readonly #core: SourceCore<BundleSet<JwtBundle>>;
  readonly #backoffOptions: JWTSourceOptions['backoff'];
  readonly #attempts: number;
  /** Pending retry delays, cut short by close(). */
  readonly #sleeps = new Set<() => void>();

  /** Connects and resolves once the first JWT bundles have arrived; see {@link X509Source.create} for the failure modes. */
  static async create(options: JWTSourceOptions & ReadyOptions = {}): Promise<JWTSource> {
    const source = new JWTSource(options);
    try {
      await source.ready(options);
    } catch (err) {
      await source.close();
      throw err;
    }
    return source;
  }

  constructor(options: JWTSourceOptions = {}) {
    super();
    const attempts = options.fetchAttempts ?? 4;
    if (!Number.isInteger(attempts) || attempts < 1) throw new AnchorageError('invalid_argument', 'workloadapi: fetchAttempts must be a positive integer');
    this.#attempts = attempts;
    this.#backoffOptions = options.backoff;
    this.#core = new SourceCore<BundleSet<JwtBundle>>(
      'JWTSource',
      options,
      (client, watcher, backoff) => client.watchJWTBundles(watcher, { backoff }),
      {
        update: (b) => this.emit('update', b),
        streamError: (err, info) => this.emit('streamError', err, info),
        revoked: (err) => this.emit('revoked', err),
      },
    );
  }

  async ready(options: ReadyOptions = {}): Promise<this> {
    await this.#core.wait(options);
    return this;
  }

  get isReady(): boolean {
    return this.#core.value !== undefined && !this.#core.closed;
  }

  get lastError(): Error | undefined {
    return this.#core.lastError;
  }

  get client(): WorkloadApiClient {
    return this.#core.client;
  }

  /** A JWT-SVID for `audience` (the default identity's, or `spiffeId`'s), retrying while the agent is UNAVAILABLE. */
  async fetchJWTSVID(audience: string | readonly string[], spiffeId?: SpiffeId | string, opts: CallOptions = {}): Promise<JwtSvid> {
    return (await this.fetchJWTSVIDs(audience, spiffeId, opts))[0]!;
  }

  /** JWT-SVIDs for every identity of the caller (or only `spiffeId`'s). */
  async fetchJWTSVIDs(audience: string | readonly string[], spiffeId?: SpiffeId | string, opts: CallOptions = {}): Promise<JwtSvid[]> {
    const backoff = new Backoff(this.#backoffOptions);
    for (let attempt = 1; ; attempt++) {
      this.#checkUsable();
      try {
        return await this.#core.client.fetchJWTSVIDs(audience, spiffeId, opts);
      } catch (err) {
        if (!isWorkloadApiError(err, status.UNAVAILABLE) || attempt >= this.#attempts || opts.signal?.aborted) throw err;
        const delay = backoff.next();
        this.#core.log.debug({ err: err.message, attempt, retryInMs: delay }, 'workloadapi: FetchJWTSVID unavailable; retrying');
        await this.#sleep(delay);
      }
    }
  }

  /**
   * Validates a JWT-SVID locally against the streamed bundles: signature by
   * a key of the token's own trust domain, expiry, and that its audience
   * includes one of `audience`. Rejects with `invalid_argument` and the
   * reason (`jwtsvid: token audience does not include any expected audience`…).
   */
  async validate(token: string, audience: string | readonly string[]): Promise<VerifiedJwtSvid> {
    const bundles = this.#core.current();
    return verifyJwtSvid(token, (td) => bundles.get(td), typeof audience === 'string' ? [audience] : [...audience]);
  }

  /** The JWT bundle of a trust domain, or undefined; throws only once the source is closed or stopped. */
  bundleFor(td: TrustDomain | string): JwtBundle | undefined {
    this.#checkUsable();
    return this.#core.value?.get(td);
  }

  bundles(): BundleSet<JwtBundle> {
    return this.#core.current();
  }

  async close(): Promise<void> {
    this.#core.close();
    for (const wake of [...this.#sleeps]) wake();
  }

  #checkUsable(): void {
    if (this.#core.closed || this.#core.failure !== undefined) this.#core.current();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleeps.add(wake);
    });
  }
}
