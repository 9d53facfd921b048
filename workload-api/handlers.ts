import { createHash, type Hash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Selector } from '../common/selector.js';
import { AnchorageError, errorMessage, isAnchorageError } from '@anchorage/client/errors';
import { ERROR_CODE_TRAILER, toServiceError } from '../common/grpc.js';
import type { Logger } from '../common/log.js';
import type { JWTBundlesResponse } from '@anchorage/client/proto/gen/JWTBundlesResponse';
import type { JWTSVID } from '@anchorage/client/proto/gen/JWTSVID';
import type { SpiffeWorkloadAPIHandlers } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import type { X509BundlesResponse } from '@anchorage/client/proto/gen/X509BundlesResponse';
import type { X509SVID } from '@anchorage/client/proto/gen/X509SVID';
import type { X509SVIDResponse } from '@anchorage/client/proto/gen/X509SVIDResponse';
import type { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyJwtSvid } from '@anchorage/client/spiffe/jwtsvid';
import type { IdentitySource, X509Identity } from './IdentitySource.js';
import { REFUSAL_LOG_INTERVAL_MS, RefusalLog } from './connection-limits.js';
import { toStruct } from './struct.js';

/** The metadata key every Workload API call must carry with the value `true` (SPIFFE_Workload_API.md §5.2). */
export const SECURITY_HEADER = 'workload.spiffe.io';

/** The parts of any incoming call (unary or stream) that admission needs. */
export type IncomingCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getPeer' | 'metadata'>;

/** Who is calling, as far as the handlers need to know. */
export interface Caller {
  pid: number;
  uid: number;
  selectors: Selector[];
}

/** Configuration of {@link WorkloadApiHandler}. */
export interface WorkloadApiHandlerConfig {
  source: IdentitySource;
  /**
   * Attests the process behind a call. Must throw `AnchorageError('unavailable')`
   * when it cannot tell (the server wraps every attestor failure that way),
   * because clients retry UNAVAILABLE and give up on most other codes; and
   * `permission_denied` (possibly as the cause of that wrapper) when the
   * caller must get no identity on this connection at all.
   */
  attest: (call: IncomingCall) => Promise<Caller>;
  /**
   * Throws unless the caller of an open stream is still the process that
   * connected, running the binary it ran then (`WorkloadAttestor.confirm`).
   * Synchronous, so a change reaches every stream in the tick it happened.
   */
  confirm?: (call: IncomingCall) => void;
  logger: Logger;
  /** Told how calls end and streams open and close (node-agent/metrics.ts). */
  observer?: WorkloadApiObserver;
  /** Default {@link MAX_STREAMS_PER_UID}. */
  maxStreamsPerUid?: number;
}

/**
 * Workload API streams one uid may hold open at once, over all its
 * connections (each stream keeps a subscription and renders on every change).
 * A real workload holds a few; past the cap a stream ends at once with
 * UNAVAILABLE, so a client retries later. SDS streams count apart (sds/).
 */
export const MAX_STREAMS_PER_UID = 4096;

/** What the Workload API reports to metrics. `rpc` is one of the five method names; `code` a gRPC status name (OK, PERMISSION_DENIED…). */
export interface WorkloadApiObserver {
  /** A unary call answered, a stream refused at admission or ended (a client's cancel is CANCELLED). */
  callEnded(rpc: string, code: string): void;
  streamOpened(rpc: string): void;
  streamClosed(rpc: string): void;
}

type AnyStream = grpc.ServerWritableStream<unknown, unknown>;

/** A response with a digest of its content, so streams only send when something a caller sees changed. */
interface Rendered<T> {
  response: T;
  digest: string;
}

/**
 * Per-request bounds on what a caller may ask for. Audiences end up in the
 * server's signing request, in the token, and in the agent's JWT-SVID cache
 * key, so they are refused here, before attestation, the server or the
 * cache see them. One audience is usually one URL or service name; SPIRE's
 * own clients send one.
 */
export const MAX_AUDIENCES = 32;
/** Longest single audience, in UTF-8 bytes. */
export const MAX_AUDIENCE_BYTES = 1024;
/** Longest audience list, in UTF-8 bytes summed over its members. */
export const MAX_TOTAL_AUDIENCE_BYTES = 8 * 1024;
/**
 * Longest token ValidateJWTSVID will parse, in bytes. A JWT-SVID of ours
 * with a full audience list is about 12 KiB; this leaves room for other
 * issuers' claims and keeps one call's JSON parsing small.
 */
export const MAX_VALIDATE_SVID_BYTES = 64 * 1024;

const NO_IDENTITY = 'workloadapi: no identity issued';

/** Refuses an empty audience list or one outside the bounds above. */
function checkAudiences(audience: string[]): void {
  if (audience.length === 0) throw new AnchorageError('invalid_argument', 'workloadapi: audience must be specified');
  if (audience.length > MAX_AUDIENCES) {
    throw new AnchorageError('invalid_argument', `workloadapi: at most ${MAX_AUDIENCES} audiences may be requested (got ${audience.length})`);
  }
  let total = 0;
  for (const a of audience) {
    if (a === '') throw new AnchorageError('invalid_argument', 'workloadapi: audience must not contain empty strings');
    const n = Buffer.byteLength(a, 'utf8');
    if (n > MAX_AUDIENCE_BYTES) {
      throw new AnchorageError('invalid_argument', `workloadapi: an audience must be at most ${MAX_AUDIENCE_BYTES} bytes (got ${n})`);
    }
    total += n;
  }
  if (total > MAX_TOTAL_AUDIENCE_BYTES) {
    throw new AnchorageError('invalid_argument', `workloadapi: the audiences must total at most ${MAX_TOTAL_AUDIENCE_BYTES} bytes (got ${total})`);
  }
}

/** Ends streams at close(); expected, so it is not logged as a failed request. */
export const SHUTTING_DOWN = new AnchorageError('unavailable', 'workloadapi: server is shutting down');

export function noIdentity(): AnchorageError {
  return new AnchorageError('permission_denied', NO_IDENTITY);
}

/**
 * An attestor's deliberate refusal (PERMISSION_DENIED: this connection gets
 * no identity, e.g. its process executed another binary after connecting),
 * found in the error or its causes. The server wraps attestor failures as
 * UNAVAILABLE so that clients retry a transient fault; a refusal is no fault
 * and retrying on the same connection cannot change it, so it reaches the
 * client as what it is.
 */
export function attestorRefusal(err: unknown): AnchorageError | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    if (isAnchorageError(e, 'permission_denied')) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function concatDer(ders: Uint8Array[]): Buffer {
  return Buffer.concat(ders.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength)));
}

/** Length-prefixed, so that no two different sequences of fields feed the hash the same bytes. */
function feed(h: Hash, ...parts: (string | Uint8Array)[]): void {
  for (const p of parts) {
    const b = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.byteLength, 0);
    h.update(len);
    h.update(b);
  }
}

/**
 * Keeps the first identity for each non-empty hint and drops later ones.
 * The spec requires hints to be unique within a response so a workload can
 * pick an SVID by hint; SPIRE resolves a clash the same way, which keeps the
 * default (first) identity stable.
 */
function uniqueHints<T extends { hint: string }>(items: T[], log: Logger, method: string): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  for (const item of items) {
    if (item.hint !== '') {
      if (seen.has(item.hint)) {
        log.warn({ method, hint: item.hint }, 'workloadapi: dropping an identity whose hint repeats an earlier one');
        continue;
      }
      seen.add(item.hint);
    }
    out.push(item);
  }
  return out;
}

/**
 * A JWKS document holding only the JWT authorities of a bundle: what
 * FetchJWTBundles serves. X.509 authorities are left out because relying
 * parties parse this as a plain JWT key set (go-spiffe's jwtbundle), where
 * a key without `kid` is an error.
 */
export function jwtBundleDocument(bundle: SpiffeBundle): string {
  const keys: Record<string, unknown>[] = [];
  for (const [kid, jwk] of bundle.jwt.keys()) {
    keys.push({ ...jwk, kid, use: 'jwt-svid' });
  }
  return JSON.stringify({ keys });
}

/**
 * Own trust domain first, then every trust domain the identities federate
 * with. Unparseable names are skipped with a warning: one bad entry must
 * not take the caller's own identity away.
 */
export function trustDomainsOf(source: IdentitySource, ids: X509Identity[], log: Logger): Set<string> {
  const tds = new Set<string>([source.trustDomain]);
  for (const id of ids) {
    for (const name of id.federatesWith) {
      try {
        tds.add(TrustDomain.parse(name).name);
      } catch (err) {
        log.warn({ spiffeId: id.spiffeId.toString(), federatesWith: name, err: errorMessage(err) }, 'workloadapi: ignoring an invalid federated trust domain');
      }
    }
  }
  return tds;
}

/**
 * Bundles a caller with these identities may see, keyed `spiffe://<td>`,
 * own trust domain first (the Workload API's and SDS's policy alike). The
 * own bundle must exist: an agent that has not synced yet cannot serve
 * anything useful, and UNAVAILABLE makes clients retry.
 */
export function callerBundles(source: IdentitySource, ids: X509Identity[], log: Logger): Map<string, SpiffeBundle> {
  const own = source.bundle(source.trustDomain);
  if (own === undefined) throw new AnchorageError('unavailable', 'workloadapi: the trust bundle is not available yet');
  const out = new Map<string, SpiffeBundle>();
  for (const name of trustDomainsOf(source, ids, log)) {
    const b = name === source.trustDomain ? own : source.bundle(name);
    if (b !== undefined) out.set(b.trustDomain.idString(), b);
  }
  return out;
}

/**
 * The SpiffeWorkloadAPI service. Every call is checked for the security
 * header, then attested; identities and bundles come from the
 * {@link IdentitySource} only, so the same handler serves any agent cache.
 *
 * Policy on bundles: FetchX509Bundles, FetchJWTBundles and ValidateJWTSVID
 * answer only callers that have at least one identity, and offer only the
 * trust domains those identities belong to or federate with. The spec allows
 * serving bundles to anyone; SPIRE does not by default, and a process
 * with no registration has no business learning which trust domains this node
 * federates with.
 */
export class WorkloadApiHandler {
  readonly #source: IdentitySource;
  readonly #attest: (call: IncomingCall) => Promise<Caller>;
  readonly #confirm: ((call: IncomingCall) => void) | undefined;
  readonly #log: Logger;
  readonly #observer: WorkloadApiObserver | undefined;
  /** Ends every open stream; used by close() so clients see UNAVAILABLE and reconnect elsewhere or later. */
  readonly #streams = new Set<(err: unknown) => void>();
  readonly #maxPerUid: number;
  /** Open streams per caller uid. */
  readonly #perUid = new Map<number, number>();
  /** Streams refused by the cap: a hostile caller can make many, so they are logged at most once per interval per uid. */
  readonly #refusals: RefusalLog;

  constructor(config: WorkloadApiHandlerConfig) {
    this.#source = config.source;
    this.#attest = config.attest;
    this.#confirm = config.confirm;
    this.#log = config.logger;
    this.#observer = config.observer;
    this.#maxPerUid = config.maxStreamsPerUid ?? MAX_STREAMS_PER_UID;
    if (!Number.isSafeInteger(this.#maxPerUid) || this.#maxPerUid < 1) throw new Error(`workloadapi: maxStreamsPerUid must be a positive integer, not ${this.#maxPerUid}`);
    this.#refusals = new RefusalLog(this.#log, REFUSAL_LOG_INTERVAL_MS, 'workloadapi: stream refused');
  }

  /** Number of streams currently open (for tests and metrics). */
  get openStreams(): number {
    return this.#streams.size;
  }

  /** Ends every open stream with UNAVAILABLE: the server is going away, clients should retry. */
  endAllStreams(): void {
    for (const end of [...this.#streams]) end(SHUTTING_DOWN);
  }

  /** The grpc-js implementation object for `SpiffeWorkloadAPI`. */
  implementation(): SpiffeWorkloadAPIHandlers {
    return {
      FetchX509SVID: (call) => {
        void this.#serveStream('FetchX509SVID', call as AnyStream, (c) => this.#x509Svids(c));
      },
      FetchX509Bundles: (call) => {
        void this.#serveStream('FetchX509Bundles', call as AnyStream, (c) => this.#x509Bundles(c));
      },
      FetchJWTBundles: (call) => {
        void this.#serveStream('FetchJWTBundles', call as AnyStream, (c) => this.#jwtBundles(c));
      },
      FetchJWTSVID: (call, callback) => {
        void this.#serveUnary('FetchJWTSVID', call, callback, async (caller) => {
          const spiffeId = call.request.spiffe_id === '' ? undefined : SpiffeId.parse(call.request.spiffe_id);
          const ids = this.#identities(caller);
          if (spiffeId !== undefined && !ids.some((i) => i.spiffeId.equals(spiffeId))) {
            throw new AnchorageError('permission_denied', `workloadapi: no identity ${spiffeId.toString()} issued to the caller`);
          }
          const svids = await this.#source.jwtSvids(caller.selectors, call.request.audience, spiffeId);
          if (svids.length === 0) throw noIdentity();
          const out: JWTSVID[] = uniqueHints(svids, this.#log, 'FetchJWTSVID').map((s) => ({
            spiffe_id: s.spiffeId.toString(),
            svid: s.token,
            hint: s.hint,
          }));
          return { svids: out };
        }, () => {
          // Checked before attestation: a malformed request is the caller's
          // bug and must not be retried, whatever the attestor thinks.
          const { audience, spiffe_id } = call.request;
          checkAudiences(audience);
          if (spiffe_id !== '') {
            try {
              SpiffeId.parse(spiffe_id);
            } catch (err) {
              throw new AnchorageError('invalid_argument', `workloadapi: spiffe_id is invalid: ${errorMessage(err)}`, { cause: err });
            }
          }
        });
      },
      ValidateJWTSVID: (call, callback) => {
        void this.#serveUnary('ValidateJWTSVID', call, callback, async (caller) => {
          const trusted = trustDomainsOf(this.#source, this.#identities(caller), this.#log);
          let verified;
          try {
            verified = await verifyJwtSvid(call.request.svid, (td) => (trusted.has(td.name) ? this.#source.bundle(td.name)?.jwt : undefined), [
              call.request.audience,
            ]);
          } catch (err) {
            // Every way a token can be bad is the caller's input; the reason
            // (expired, wrong audience…) is what a relying party needs to see.
            if (isAnchorageError(err, 'invalid_argument')) throw err;
            throw new AnchorageError('invalid_argument', `workloadapi: token could not be validated: ${errorMessage(err)}`, { cause: err });
          }
          return { spiffe_id: verified.spiffeId.toString(), claims: toStruct(verified.claims) };
        }, () => {
          const { audience, svid } = call.request;
          if (audience === '') throw new AnchorageError('invalid_argument', 'workloadapi: audience must be specified');
          const audienceBytes = Buffer.byteLength(audience, 'utf8');
          if (audienceBytes > MAX_AUDIENCE_BYTES) {
            throw new AnchorageError('invalid_argument', `workloadapi: an audience must be at most ${MAX_AUDIENCE_BYTES} bytes (got ${audienceBytes})`);
          }
          if (svid === '') throw new AnchorageError('invalid_argument', 'workloadapi: svid must be specified');
          const svidBytes = Buffer.byteLength(svid, 'utf8');
          if (svidBytes > MAX_VALIDATE_SVID_BYTES) {
            throw new AnchorageError('invalid_argument', `workloadapi: svid must be at most ${MAX_VALIDATE_SVID_BYTES} bytes (got ${svidBytes})`);
          }
        });
      },
    };
  }

  /** The caller's identities; none is PERMISSION_DENIED for every RPC (see the class comment). */
  #identities(caller: Caller): X509Identity[] {
    const ids = this.#source.x509Identities(caller.selectors);
    if (ids.length === 0) throw noIdentity();
    return ids;
  }

  #bundlesFor(ids: X509Identity[]): Map<string, SpiffeBundle> {
    return callerBundles(this.#source, ids, this.#log);
  }

  #x509Svids(caller: Caller): Rendered<X509SVIDResponse> {
    const ids = uniqueHints(this.#identities(caller), this.#log, 'FetchX509SVID');
    const bundles = this.#bundlesFor(ids);
    const ownKey = `spiffe://${this.#source.trustDomain}`;
    const ownDer = concatDer(bundles.get(ownKey)!.x509.authorities());
    const h = createHash('sha256');
    const svids: X509SVID[] = ids.map((id) => {
      const chain = concatDer(id.chain);
      // The private key is not hashed: a new key always comes with a new leaf.
      feed(h, 'svid', id.spiffeId.toString(), id.hint, chain);
      return { spiffe_id: id.spiffeId.toString(), x509_svid: chain, x509_svid_key: Buffer.from(id.privateKey), bundle: ownDer, hint: id.hint };
    });
    feed(h, 'bundle', ownDer);
    const federated: Record<string, Buffer> = {};
    for (const [key, b] of [...bundles].sort(([a], [b]) => a.localeCompare(b))) {
      if (key === ownKey) continue;
      const der = concatDer(b.x509.authorities());
      federated[key] = der;
      feed(h, 'federated', key, der);
    }
    return { response: { svids, crl: [], federated_bundles: federated }, digest: h.digest('hex') };
  }

  #x509Bundles(caller: Caller): Rendered<X509BundlesResponse> {
    const bundles = this.#bundlesFor(this.#identities(caller));
    const h = createHash('sha256');
    const out: Record<string, Buffer> = {};
    for (const [key, b] of [...bundles].sort(([a], [b]) => a.localeCompare(b))) {
      out[key] = concatDer(b.x509.authorities());
      feed(h, key, out[key]);
    }
    return { response: { crl: [], bundles: out }, digest: h.digest('hex') };
  }

  #jwtBundles(caller: Caller): Rendered<JWTBundlesResponse> {
    const bundles = this.#bundlesFor(this.#identities(caller));
    const h = createHash('sha256');
    const out: Record<string, Buffer> = {};
    for (const [key, b] of [...bundles].sort(([a], [b]) => a.localeCompare(b))) {
      const doc = jwtBundleDocument(b);
      out[key] = Buffer.from(doc, 'utf8');
      feed(h, key, doc);
    }
    return { response: { bundles: out }, digest: h.digest('hex') };
  }

  /** Header check, then attestation; every failure here ends the call before any identity is looked at. */
  async #admit(call: IncomingCall, validate?: () => void): Promise<Caller> {
    const values = call.metadata.get(SECURITY_HEADER);
    if (values.length !== 1 || values[0] !== 'true') {
      throw new AnchorageError('invalid_argument', 'workloadapi: security header missing from request');
    }
    validate?.();
    try {
      return await this.#attest(call);
    } catch (err) {
      throw attestorRefusal(err) ?? err;
    }
  }

  async #serveUnary<Res>(
    method: string,
    call: grpc.ServerUnaryCall<unknown, Res>,
    callback: grpc.sendUnaryData<Res>,
    run: (caller: Caller) => Promise<Res>,
    validate: () => void,
  ): Promise<void> {
    let caller: Caller | undefined;
    try {
      caller = await this.#admit(call, validate);
      const res = await run(caller);
      this.#log.debug({ method, callerPid: caller.pid, callerUid: caller.uid, outcome: 'OK' }, 'workloadapi: call');
      this.#observer?.callEnded(method, 'OK');
      callback(null, res);
    } catch (err) {
      const se = this.#fail(method, caller, err);
      this.#observer?.callEnded(method, grpc.status[se.code ?? grpc.status.UNKNOWN]);
      callback(se);
    }
  }

  /**
   * Drives one server stream: full state first, then again on every source
   * change that alters what this caller would receive. The caller is attested
   * at stream start; before every later message the attestor confirms that
   * the connection's process is still the one attested, running the same
   * binary, so a stream does not keep delivering new SVIDs to a process that
   * has since executed another binary or exited. Changes that alter nothing
   * this caller sees cost nothing.
   */
  async #serveStream<Res>(method: string, call: grpc.ServerWritableStream<unknown, Res>, render: (caller: Caller) => Rendered<Res>): Promise<void> {
    let caller: Caller;
    try {
      caller = await this.#admit(call);
    } catch (err) {
      const se = this.#fail(method, undefined, err);
      this.#observer?.callEnded(method, grpc.status[se.code ?? grpc.status.UNKNOWN]);
      call.emit('error', se);
      return;
    }
    if (call.cancelled) {
      this.#observer?.callEnded(method, 'CANCELLED');
      return;
    }
    const own = this.#perUid.get(caller.uid) ?? 0;
    if (own >= this.#maxPerUid) {
      const details = `workloadapi: too many open streams for uid ${caller.uid} (at most ${this.#maxPerUid})`;
      this.#refusals.note(`uid:${caller.uid}`, { uid: caller.uid, pid: caller.pid, method }, details);
      this.#observer?.callEnded(method, 'UNAVAILABLE');
      const metadata = new grpc.Metadata();
      metadata.set(ERROR_CODE_TRAILER, 'unavailable');
      call.emit('error', { code: grpc.status.UNAVAILABLE, details, metadata });
      return;
    }
    this.#perUid.set(caller.uid, own + 1);
    /** The status the stream ends with; a client's cancel unless the server ends it. */
    let endCode = 'CANCELLED';

    let ended = false;
    let lastDigest: string | undefined;
    let blocked = false;
    let pending: Res | undefined;
    let unsubscribe: (() => void) | undefined;
    const cleanup = (): void => {
      if (ended) return;
      ended = true;
      unsubscribe?.();
      unsubscribe = undefined;
      const left = (this.#perUid.get(caller.uid) ?? 1) - 1;
      if (left > 0) this.#perUid.set(caller.uid, left);
      else this.#perUid.delete(caller.uid);
      this.#streams.delete(endWith);
      this.#observer?.streamClosed(method);
      this.#observer?.callEnded(method, endCode);
      this.#log.debug({ method, callerPid: caller.pid, callerUid: caller.uid }, 'workloadapi: stream closed');
    };
    const endWith = (err: unknown): void => {
      if (ended) return;
      const se = this.#fail(method, caller, err);
      endCode = grpc.status[se.code ?? grpc.status.UNKNOWN];
      cleanup();
      call.emit('error', se);
    };
    const send = (res: Res): void => {
      // Under backpressure only the newest state matters: every message is
      // the full state, so older unsent ones can be dropped.
      if (blocked) {
        pending = res;
        return;
      }
      if (!call.write(res)) {
        blocked = true;
        call.once('drain', () => {
          blocked = false;
          const next = pending;
          pending = undefined;
          if (next !== undefined && !ended) send(next);
        });
      }
    };
    const update = (): void => {
      if (ended) return;
      let rendered: Rendered<Res>;
      try {
        rendered = render(caller);
      } catch (err) {
        endWith(err);
        return;
      }
      if (rendered.digest === lastDigest) return;
      const first = lastDigest === undefined;
      if (!first) {
        // A change this caller would see: only to the process that connected,
        // still running the binary it was attested with (the first message
        // follows the attestation at once).
        try {
          this.#confirm?.(call);
        } catch (err) {
          endWith(attestorRefusal(err) ?? err);
          return;
        }
      }
      lastDigest = rendered.digest;
      send(rendered.response);
      this.#log.debug({ method, callerPid: caller.pid, callerUid: caller.uid, outcome: first ? 'OK' : 'update' }, 'workloadapi: stream message');
    };

    this.#streams.add(endWith);
    this.#observer?.streamOpened(method);
    call.on('cancelled', cleanup);
    call.on('close', cleanup);
    // Subscribe before the first render so a change between the two is not lost.
    unsubscribe = this.#source.onChange(update);
    update();
  }

  /** Logs the outcome and turns the error into a status; nothing but the message reaches the client. */
  #fail(method: string, caller: Caller | undefined, err: unknown): Partial<grpc.ServiceError> {
    const se =
      err === SHUTTING_DOWN
        ? { code: grpc.status.UNAVAILABLE, details: SHUTTING_DOWN.message, metadata: new grpc.Metadata() }
        : toServiceError(err, this.#log, method);
    this.#log.debug(
      { method, callerPid: caller?.pid, callerUid: caller?.uid, outcome: grpc.status[se.code ?? grpc.status.UNKNOWN], reason: se.details },
      'workloadapi: call failed',
    );
    return se;
  }
}
