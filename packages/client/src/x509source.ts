import { EventEmitter } from 'node:events';
import { AnchorageError } from './common/errors.js';
import type { X509Bundle } from './spiffe/bundle.js';
import type { TrustDomain } from './spiffe/id.js';
import type { WorkloadApiClient, WatchErrorInfo } from './client.js';
import type { WorkloadApiError } from './errors.js';
import { SourceCore, type ReadyOptions, type SourceOptions } from './source.js';
import type { BundleSet, X509Context, X509Svid } from './types.js';

/** Chooses the SVID {@link X509Source.svid} returns, from all of the caller's (default first). */
export type SvidPicker = (svids: readonly X509Svid[]) => X509Svid | undefined;

export interface X509SourceOptions extends SourceOptions {
  /** Default: the first SVID, which the agent sends as the default identity. */
  picker?: SvidPicker;
}

/** Events of {@link X509Source}. There is no 'error' event, so nothing goes unhandled. */
export interface X509SourceEvents {
  /** A new X.509 context (an SVID rotated, a bundle changed, an identity came or went). */
  update: [context: X509Context];
  /** A stream ended or a message was bad; `info.terminal` says whether the source has stopped. */
  streamError: [err: Error, info: WatchErrorInfo];
  /** The agent answered PERMISSION_DENIED while the source held an identity; it has been dropped. */
  revoked: [err: WorkloadApiError];
}

/**
 * The caller's X509-SVIDs and trust bundles, kept current by a
 * FetchX509SVID stream that reconnects on its own with backoff.
 *
 * - UNAVAILABLE and other errors: retried; the current SVID stays in use
 *   (an agent restart is not a revocation).
 * - PERMISSION_DENIED: retried; if the source held an identity, it is
 *   dropped at once (`svid()` throws, 'revoked' is emitted) — the agent has
 *   said this process is no longer entitled to it — and restored when an
 *   update arrives again.
 * - INVALID_ARGUMENT: terminal. The source stops and every accessor throws.
 *
 * ```ts
 * const source = await X509Source.create();          // SPIFFE_ENDPOINT_SOCKET
 * const svid = source.svid();                        // always the current one
 * source.on('update', (ctx) => log(ctx.svids[0].spiffeId));
 * await source.close();
 * ```
 */
export class X509Source extends EventEmitter<X509SourceEvents> {
  readonly #core: SourceCore<X509Context>;
  readonly #picker: SvidPicker | undefined;

  /**
   * Connects and resolves once the first X.509 context has arrived. Rejects
   * (and closes the source) on INVALID_ARGUMENT at once, or after
   * `timeoutMs` (default 30 s) with the last stream error's code and message
   * — e.g. `permission_denied` when no registration matches this process.
   */
  static async create(options: X509SourceOptions & ReadyOptions = {}): Promise<X509Source> {
    const source = new X509Source(options);
    try {
      await source.ready(options);
    } catch (err) {
      await source.close();
      throw err;
    }
    return source;
  }

  /**
   * Starts watching at once; listeners added in the same tick see every
   * event. Use {@link ready} before reading, or {@link X509Source.create}.
   */
  constructor(options: X509SourceOptions = {}) {
    super();
    this.#picker = options.picker;
    this.#core = new SourceCore<X509Context>(
      'X509Source',
      options,
      (client, watcher, backoff) => client.watchX509Context(watcher, { backoff }),
      {
        update: (ctx) => this.emit('update', ctx),
        streamError: (err, info) => this.emit('streamError', err, info),
        revoked: (err) => this.emit('revoked', err),
      },
    );
  }

  /** Resolves when the source has a context (at once if it has one). */
  async ready(options: ReadyOptions = {}): Promise<this> {
    await this.#core.wait(options);
    return this;
  }

  /** True while the source holds an X.509 context. */
  get isReady(): boolean {
    return this.#core.value !== undefined && !this.#core.closed;
  }

  /** The most recent stream error since the last update, if any. */
  get lastError(): Error | undefined {
    return this.#core.lastError;
  }

  get client(): WorkloadApiClient {
    return this.#core.client;
  }

  /** The current context. Throws (with the reason) when there is none: not ready yet, identity withdrawn, stopped or closed. */
  context(): X509Context {
    return this.#core.current();
  }

  /** The SVID to present: the picker's choice, else the default (first). */
  svid(): X509Svid {
    const { svids } = this.context();
    const chosen = this.#picker ? this.#picker(svids) : svids[0];
    if (chosen === undefined) throw new AnchorageError('not_found', 'workloadapi: X509Source: the picker chose no SVID');
    return chosen;
  }

  svids(): readonly X509Svid[] {
    return this.context().svids;
  }

  /**
   * The X.509 bundle of a trust domain, or undefined when the source has
   * none for it (or no context at all). Fits `verifyX509Svid`'s bundle
   * source. Throws only once the source is closed or stopped.
   */
  bundleFor(td: TrustDomain | string): X509Bundle | undefined {
    if (this.#core.closed || this.#core.failure !== undefined) this.#core.current();
    return this.#core.value?.bundles.get(td);
  }

  bundles(): BundleSet<X509Bundle> {
    return this.context().bundles;
  }

  /** Stops the stream (and the source's own client). Accessors throw afterwards. */
  async close(): Promise<void> {
    this.#core.close();
  }
}
