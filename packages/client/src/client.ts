import * as grpc from '@grpc/grpc-js';
import { AnchorageError, errorMessage, invalid } from './common/errors.js';
import { loadWorkloadProto } from './proto/load.js';
import type { JWTSVIDRequest } from './proto/gen/JWTSVIDRequest.js';
import type { JWTSVIDResponse__Output } from './proto/gen/JWTSVIDResponse.js';
import type { SpiffeWorkloadAPIClient } from './proto/gen/SpiffeWorkloadAPI.js';
import type { ValidateJWTSVIDRequest } from './proto/gen/ValidateJWTSVIDRequest.js';
import type { ValidateJWTSVIDResponse__Output } from './proto/gen/ValidateJWTSVIDResponse.js';
import type { JwtBundle, X509Bundle } from './spiffe/bundle.js';
import { SpiffeId } from './spiffe/id.js';
import { resolveWorkloadApiAddress, type WorkloadApiAddress } from './address.js';
import { Backoff, type BackoffOptions } from './common/backoff.js';
import { NOOP_LOGGER, WorkloadApiError, type WorkloadApiLogger } from './errors.js';
import {
  parseJwtBundlesResponse,
  parseJwtSvidResponse,
  parseValidateJwtSvidResponse,
  parseX509BundlesResponse,
  parseX509SvidResponse,
} from './parse.js';
import type { BundleSet, JwtSvid, ValidatedJwtSvid, X509Context, X509Svid } from './types.js';

/**
 * The metadata every Workload API call carries (SPIFFE_Workload_API.md §5.2):
 * proof it is not a proxied browser request. (Same value as the server's
 * constant; not imported from it, so the client pulls in no server code.)
 */
export const SECURITY_HEADER = 'workload.spiffe.io';

/** Options of {@link WorkloadApiClient}. */
export interface WorkloadApiClientOptions {
  /**
   * `unix:///path`, `unix:/path`, a bare absolute path, or `tcp://IP:port`.
   * Default: the `SPIFFE_ENDPOINT_SOCKET` environment variable.
   */
  address?: string;
  logger?: WorkloadApiLogger;
  /** grpc-js channel options, applied over this client's defaults. */
  channelOptions?: grpc.ChannelOptions;
}

/** Per-call options of the one-shot methods. */
export interface CallOptions {
  /** Gives up (DEADLINE_EXCEEDED) after this long. Default: no deadline. */
  timeoutMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** What a watcher is told along with an error. */
export interface WatchErrorInfo {
  /** True when the watch has stopped for good (INVALID_ARGUMENT, or `retry: false`). */
  terminal: boolean;
  /** When the watch will reconnect, for non-terminal stream errors. Absent for a bad message on a live stream. */
  retryInMs?: number;
}

/** Receives the updates of a watch. */
export interface Watcher<T> {
  onUpdate(value: T): void;
  /**
   * A stream ended (non-terminal: the watch reconnects by itself), a message
   * was malformed (skipped; the stream stays open), or the watch stopped.
   */
  onError?(err: Error, info: WatchErrorInfo): void;
}

export interface WatchOptions {
  backoff?: BackoffOptions;
  /** Reconnect after a stream ends. Default true; INVALID_ARGUMENT is never retried. */
  retry?: boolean;
}

/** A running watch. */
export interface Watch {
  /** Stops the watch; no callback is called afterwards. */
  close(): void;
  readonly closed: boolean;
}

/**
 * Defaults of the gRPC channel. Reconnection is driven by our own backoff,
 * so the channel's must not be slower (grpc-js defaults to 1 s growing to
 * 120 s, which would keep a restarted agent unreachable for minutes); and a
 * local endpoint is never reached through an HTTP proxy from the environment.
 */
const DEFAULT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 30_000,
  'grpc.enable_http_proxy': 0,
  'grpc.enable_channelz': 0,
};

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(SECURITY_HEADER, 'true');
  return md;
}

function callOptions(opts: CallOptions): grpc.CallOptions {
  return opts.timeoutMs === undefined ? {} : { deadline: Date.now() + opts.timeoutMs };
}

function normalizeAudience(audience: string | readonly string[]): string[] {
  const list = typeof audience === 'string' ? [audience] : [...audience];
  if (list.length === 0) throw invalid('workloadapi: at least one audience is required');
  if (list.some((a) => typeof a !== 'string' || a === '')) throw invalid('workloadapi: audience must not contain empty strings');
  return list;
}

function closedError(): AnchorageError {
  return new AnchorageError('failed_precondition', 'workloadapi: the client is closed');
}

function toError(method: string, err: grpc.ServiceError | grpc.StatusObject): WorkloadApiError {
  return new WorkloadApiError(method, err.code, err.details, { cause: err });
}

/**
 * A low-level client of the SPIFFE Workload API: one gRPC channel, typed
 * answers. One-shot calls reject with {@link WorkloadApiError} (a gRPC
 * status) or a malformed-response `AnchorageError('internal')`. Watches
 * reconnect on their own; most programs want {@link X509Source} or
 * {@link JWTSource}, which are built on them.
 */
export class WorkloadApiClient {
  readonly address: WorkloadApiAddress;
  readonly #stub: SpiffeWorkloadAPIClient;
  readonly #log: WorkloadApiLogger;
  readonly #watches = new Set<Watch>();
  #closed = false;

  constructor(options: WorkloadApiClientOptions = {}) {
    this.address = resolveWorkloadApiAddress(options.address);
    this.#log = options.logger ?? NOOP_LOGGER;
    const { SpiffeWorkloadAPI } = loadWorkloadProto();
    this.#stub = new SpiffeWorkloadAPI(this.address.target, grpc.credentials.createInsecure(), {
      ...DEFAULT_CHANNEL_OPTIONS,
      ...options.channelOptions,
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes every watch and the channel. Calls made afterwards fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#watches]) w.close();
    this.#stub.close();
  }

  /** The first FetchX509SVID message: all the caller's SVIDs and the bundles. */
  fetchX509Context(opts: CallOptions = {}): Promise<X509Context> {
    return this.#first('FetchX509SVID', (md, o) => this.#stub.FetchX509SVID({}, md, o), parseX509SvidResponse, opts);
  }

  /** The default X509-SVID (the first one the agent sends). */
  async fetchX509SVID(opts: CallOptions = {}): Promise<X509Svid> {
    return (await this.fetchX509Context(opts)).svids[0]!;
  }

  /** Every X509-SVID of the caller, default first. */
  async fetchX509SVIDs(opts: CallOptions = {}): Promise<readonly X509Svid[]> {
    return (await this.fetchX509Context(opts)).svids;
  }

  /** Streams X.509 contexts: the full state at connect time and after each change. */
  watchX509Context(watcher: Watcher<X509Context>, opts: WatchOptions = {}): Watch {
    return this.#watch('FetchX509SVID', (md) => this.#stub.FetchX509SVID({}, md), parseX509SvidResponse, watcher, opts);
  }

  fetchX509Bundles(opts: CallOptions = {}): Promise<BundleSet<X509Bundle>> {
    return this.#first('FetchX509Bundles', (md, o) => this.#stub.FetchX509Bundles({}, md, o), parseX509BundlesResponse, opts);
  }

  watchX509Bundles(watcher: Watcher<BundleSet<X509Bundle>>, opts: WatchOptions = {}): Watch {
    return this.#watch('FetchX509Bundles', (md) => this.#stub.FetchX509Bundles({}, md), parseX509BundlesResponse, watcher, opts);
  }

  /**
   * A JWT-SVID for `audience`: the one for `spiffeId` when given (it must be
   * one of the caller's identities), else the default identity's.
   */
  async fetchJWTSVID(audience: string | readonly string[], spiffeId?: SpiffeId | string, opts: CallOptions = {}): Promise<JwtSvid> {
    return (await this.fetchJWTSVIDs(audience, spiffeId, opts))[0]!;
  }

  /** JWT-SVIDs for `audience`, one per identity of the caller (or only `spiffeId`'s). */
  async fetchJWTSVIDs(audience: string | readonly string[], spiffeId?: SpiffeId | string, opts: CallOptions = {}): Promise<JwtSvid[]> {
    const aud = normalizeAudience(audience);
    const id = spiffeId === undefined ? '' : typeof spiffeId === 'string' ? SpiffeId.parse(spiffeId).toString() : spiffeId.toString();
    const res = await this.#unary<JWTSVIDRequest, JWTSVIDResponse__Output>(
      'FetchJWTSVID',
      (req, md, o, cb) => this.#stub.FetchJWTSVID(req, md, o, cb),
      { audience: aud, spiffe_id: id },
      opts,
    );
    const svids = parseJwtSvidResponse(res, aud);
    if (id !== '' && svids.some((s) => s.spiffeId.toString() !== id)) {
      throw new AnchorageError('internal', `workloadapi: malformed JWTSVIDResponse: asked for ${id}, got ${svids.map((s) => s.spiffeId.toString()).join(', ')}`);
    }
    return svids;
  }

  fetchJWTBundles(opts: CallOptions = {}): Promise<BundleSet<JwtBundle>> {
    return this.#first('FetchJWTBundles', (md, o) => this.#stub.FetchJWTBundles({}, md, o), parseJwtBundlesResponse, opts);
  }

  watchJWTBundles(watcher: Watcher<BundleSet<JwtBundle>>, opts: WatchOptions = {}): Watch {
    return this.#watch('FetchJWTBundles', (md) => this.#stub.FetchJWTBundles({}, md), parseJwtBundlesResponse, watcher, opts);
  }

  /**
   * Asks the agent to validate a JWT-SVID for one audience. A bad token is a
   * WorkloadApiError with status INVALID_ARGUMENT and the agent's reason.
   * {@link JWTSource.validate} does the same locally, without a round trip.
   */
  async validateJWTSVID(token: string, audience: string, opts: CallOptions = {}): Promise<ValidatedJwtSvid> {
    if (typeof audience !== 'string' || audience === '') throw invalid('workloadapi: audience is required');
    if (typeof token !== 'string' || token === '') throw invalid('workloadapi: token is required');
    const res = await this.#unary<ValidateJWTSVIDRequest, ValidateJWTSVIDResponse__Output>(
      'ValidateJWTSVID',
      (req, md, o, cb) => this.#stub.ValidateJWTSVID(req, md, o, cb),
      { audience, svid: token },
      opts,
    );
    return parseValidateJwtSvidResponse(res);
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }

  #unary<Req, Res>(
    method: string,
    invoke: (req: Req, md: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
    req: Req,
    opts: CallOptions,
  ): Promise<Res> {
    if (this.#closed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = invoke(req, header(), callOptions(opts), (err, res) => {
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(toError(method, err));
        else resolve(res!);
      });
      if (opts.signal?.aborted) call.cancel();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Opens a stream, returns its first message parsed, and cancels it. */
  #first<Msg, T>(
    method: string,
    open: (md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<Msg>,
    parse: (m: Msg) => T,
    opts: CallOptions,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = (): void => call.cancel();
      const call = open(header(), callOptions(opts));
      call.on('data', (m: Msg) => {
        settle(() => {
          try {
            resolve(parse(m));
          } catch (err) {
            reject(err);
          }
        });
        call.cancel();
      });
      // The status event below carries the same information; the listener
      // only keeps an unhandled 'error' from being thrown.
      call.on('error', () => undefined);
      call.on('status', (st: grpc.StatusObject) => settle(() => reject(toError(method, st))));
      if (opts.signal?.aborted) call.cancel();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Keeps a stream open: every message is parsed and handed to the
   * watcher; when the stream ends, it is reopened after a backoff delay,
   * unless the status was INVALID_ARGUMENT — the request itself is wrong
   * (typically the security header stripped by something in between), and
   * asking again cannot help. The backoff restarts after every good message.
   */
  #watch<Msg, T>(
    method: string,
    open: (md: grpc.Metadata) => grpc.ClientReadableStream<Msg>,
    parse: (m: Msg) => T,
    watcher: Watcher<T>,
    opts: WatchOptions,
  ): Watch {
    this.#checkOpen();
    const log = this.#log;
    const backoff = new Backoff(opts.backoff);
    const retry = opts.retry ?? true;
    let closed = false;
    let current: grpc.ClientReadableStream<Msg> | undefined;
    let timer: NodeJS.Timeout | undefined;

    const report = (err: Error, info: WatchErrorInfo): void => {
      try {
        watcher.onError?.(err, info);
      } catch (cbErr) {
        log.error({ method, err: errorMessage(cbErr) }, 'workloadapi: watcher onError threw');
      }
    };
    const stop = (): void => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      const call = current;
      current = undefined;
      call?.cancel();
      this.#watches.delete(handle);
    };

    const connect = (): void => {
      timer = undefined;
      if (closed) return;
      const call = open(header());
      current = call;
      let status: grpc.StatusObject | undefined;
      let drained = false;
      let finished = false;
      call.on('data', (m: Msg) => {
        if (closed || call !== current) return;
        let value: T;
        try {
          value = parse(m);
        } catch (err) {
          // A bad message is skipped; the previous state stays in force and
          // the next message (full state again) may well be fine.
          log.warn({ method, err: errorMessage(err) }, 'workloadapi: ignoring a malformed message');
          report(err as Error, { terminal: false });
          return;
        }
        backoff.reset();
        try {
          watcher.onUpdate(value);
        } catch (cbErr) {
          log.error({ method, err: errorMessage(cbErr) }, 'workloadapi: watcher onUpdate threw');
        }
      });
      call.on('error', () => undefined);
      // The status can be emitted while earlier messages still sit in the
      // stream's buffer; acting only once the stream has also ended keeps
      // the last update from arriving after the error that followed it.
      const finish = (): void => {
        if (finished || status === undefined || !drained) return;
        finished = true;
        if (closed || call !== current) return;
        current = undefined;
        const err = toError(method, status);
        if (!retry || status.code === grpc.status.INVALID_ARGUMENT) {
          log.error({ method, err: err.message }, 'workloadapi: stream failed; not retrying');
          stop();
          report(err, { terminal: true });
          return;
        }
        const delay = backoff.next();
        log.debug({ method, err: err.message, retryInMs: delay }, 'workloadapi: stream ended; reconnecting');
        timer = setTimeout(connect, delay);
        report(err, { terminal: false, retryInMs: delay });
      };
      call.on('status', (st: grpc.StatusObject) => {
        status = st;
        finish();
      });
      const onDrained = (): void => {
        drained = true;
        finish();
      };
      call.on('end', onDrained);
      call.on('close', onDrained);
    };

    const handle: Watch = {
      close: stop,
      get closed() {
        return closed;
      },
    };
    this.#watches.add(handle);
    connect();
    return handle;
  }
}
