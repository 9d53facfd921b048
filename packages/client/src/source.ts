import { status } from '@grpc/grpc-js';
import { AnchorageError, type ErrorCode } from './common/errors.js';
import type { BackoffOptions } from './common/backoff.js';
import { WorkloadApiClient, type Watch, type WatchErrorInfo, type Watcher } from './client.js';
import { isWorkloadApiError, NOOP_LOGGER, type WorkloadApiError, type WorkloadApiLogger } from './errors.js';

/** Options shared by {@link X509Source} and {@link JWTSource}. */
export interface SourceOptions {
  /** Workload API address; default `SPIFFE_ENDPOINT_SOCKET`. Ignored when `client` is given. */
  address?: string;
  /** A client to share between sources; the source does not close it. Default: a client of its own. */
  client?: WorkloadApiClient;
  logger?: WorkloadApiLogger;
  /** Reconnection delays; default 100 ms doubling to 30 s, ±20 % jitter. */
  backoff?: BackoffOptions;
}

/** How long to wait for the first update. */
export interface ReadyOptions {
  /** Default 30 s; `Infinity` waits as long as it takes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_READY_TIMEOUT_MS = 30_000;

/** What a source tells its owner, which turns it into events. */
export interface SourceHooks<T> {
  update(value: T): void;
  streamError(err: Error, info: WatchErrorInfo): void;
  revoked(err: WorkloadApiError): void;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

/**
 * The state machine both sources share: one watch, the latest value, and
 * the promises waiting for one.
 *
 * - An update makes the source ready (again).
 * - A stream error is recorded and retried by the watch — except
 *   INVALID_ARGUMENT, which stops the source for good: every accessor then
 *   throws, so a misconfigured workload fails loudly instead of serving
 *   state that will never be refreshed.
 * - PERMISSION_DENIED while ready drops the value: the agent has just said
 *   this process is entitled to nothing (its registration was deleted), and
 *   presenting the old SVID until it expires would defeat the revocation.
 *   The watch keeps retrying, so a registration added back later restores it.
 */
export class SourceCore<T> {
  readonly name: string;
  readonly client: WorkloadApiClient;
  readonly log: WorkloadApiLogger;
  readonly #ownsClient: boolean;
  readonly #watch: Watch;
  readonly #hooks: SourceHooks<T>;
  readonly #waiters = new Set<Waiter<T>>();
  #value: T | undefined;
  #lastError: Error | undefined;
  #failure: Error | undefined;
  #closed = false;

  constructor(name: string, options: SourceOptions, start: (client: WorkloadApiClient, watcher: Watcher<T>, backoff?: BackoffOptions) => Watch, hooks: SourceHooks<T>) {
    this.name = name;
    this.log = options.logger ?? NOOP_LOGGER;
    this.#hooks = hooks;
    this.#ownsClient = options.client === undefined;
    this.client = options.client ?? new WorkloadApiClient({ address: options.address, logger: this.log });
    this.#watch = start(
      this.client,
      {
        onUpdate: (v) => this.#onUpdate(v),
        onError: (err, info) => this.#onError(err, info),
      },
      options.backoff,
    );
  }

  get value(): T | undefined {
    return this.#value;
  }

  get lastError(): Error | undefined {
    return this.#lastError;
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #onUpdate(v: T): void {
    if (this.#closed) return;
    this.#value = v;
    this.#lastError = undefined;
    for (const w of [...this.#waiters]) w.resolve(v);
    this.#hooks.update(v);
  }

  #onError(err: Error, info: WatchErrorInfo): void {
    if (this.#closed) return;
    this.#lastError = err;
    if (info.terminal) {
      this.#failure = err;
      this.#value = undefined;
      for (const w of [...this.#waiters]) w.reject(this.#stoppedError());
    } else if (isWorkloadApiError(err, status.PERMISSION_DENIED) && this.#value !== undefined) {
      this.#value = undefined;
      this.log.warn({ source: this.name, err: err.message }, 'workloadapi: identity withdrawn by the Workload API; dropping it');
      this.#hooks.revoked(err);
    }
    this.#hooks.streamError(err, info);
  }

  #stoppedError(): AnchorageError {
    const f = this.#failure!;
    const code: ErrorCode = f instanceof AnchorageError ? f.code : 'internal';
    return new AnchorageError(code, `workloadapi: ${this.name} has stopped: ${f.message}`, { cause: f });
  }

  /** The current value, or a clear error saying why there is none. */
  current(): T {
    if (this.#closed) throw new AnchorageError('failed_precondition', `workloadapi: ${this.name} is closed`);
    if (this.#failure !== undefined) throw this.#stoppedError();
    if (this.#value !== undefined) return this.#value;
    const last = this.#lastError;
    if (isWorkloadApiError(last, status.PERMISSION_DENIED)) {
      throw new AnchorageError('permission_denied', `workloadapi: ${this.name} has no identity: ${last.message}`, { cause: last });
    }
    const code: ErrorCode = last instanceof AnchorageError ? last.code : 'unavailable';
    throw new AnchorageError(code, `workloadapi: ${this.name} has no update yet${last ? `; last error: ${last.message}` : ''}`, { cause: last });
  }

  /** Resolves with the value once there is one; rejects on a terminal error, close, timeout or abort. */
  wait(opts: ReadyOptions = {}): Promise<T> {
    if (this.#closed || this.#failure !== undefined) return Promise.reject(this.#closedOrStopped());
    if (this.#value !== undefined) return Promise.resolve(this.#value);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        this.#waiters.delete(waiter);
        if (timer !== undefined) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter<T> = {
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      const onAbort = (): void => waiter.reject(new AnchorageError('unavailable', `workloadapi: ${this.name}: waiting for the first update was aborted`, { cause: opts.signal?.reason }));
      if (opts.signal?.aborted) {
        onAbort();
        return;
      }
      this.#waiters.add(waiter);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          // The last stream error is what the operator needs: "no entry for
          // this process" (PERMISSION_DENIED) reads very differently from
          // "nobody listens on the socket" (UNAVAILABLE).
          const last = this.#lastError;
          const code: ErrorCode = last instanceof AnchorageError ? last.code : 'unavailable';
          waiter.reject(
            new AnchorageError(code, `workloadapi: ${this.name}: no update from the Workload API within ${timeoutMs} ms${last ? `; last error: ${last.message}` : ''}`, {
              cause: last,
            }),
          );
        }, timeoutMs);
      }
    });
  }

  #closedOrStopped(): AnchorageError {
    return this.#closed ? new AnchorageError('failed_precondition', `workloadapi: ${this.name} is closed`) : this.#stoppedError();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#value = undefined;
    this.#watch.close();
    if (this.#ownsClient) this.client.close();
    for (const w of [...this.#waiters]) w.reject(new AnchorageError('failed_precondition', `workloadapi: ${this.name} was closed before its first update`));
  }
}
