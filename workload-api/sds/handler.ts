import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AnchorageError } from '../../common/errors.js';
import { ERROR_CODE_TRAILER, toServiceError } from '../../common/grpc.js';
import { REFUSAL_LOG_INTERVAL_MS, RefusalLog } from '../connection-limits.js';
import type { Logger } from '../../common/log.js';
import { attestorRefusal, callerBundles, noIdentity, SHUTTING_DOWN, type Caller, type IncomingCall } from '../handlers.js';
import type { IdentitySource } from '../IdentitySource.js';
import {
  SECRET_TYPE_URL,
  type DeltaDiscoveryResponse,
  type DiscoveryResponse,
  type NodeInfo,
  type SdsDeltaRequest,
  type SdsRequest,
} from './proto.js';
import { DEFAULT_SDS_NAMES, resolveNames, useSpiffeValidator, type CallerView, type Resolved, type SdsNames, type Unresolved } from './resources.js';

/**
 * Names one request (or one Delta stream in all) may ask for. An Envoy asks
 * for one or two per stream (a certificate, a validation context); SPIRE's
 * docs show no config with more than a handful.
 */
export const MAX_RESOURCE_NAMES = 64;
/** Longest resource name, in UTF-8 bytes: a SPIFFE ID may be 2,048. */
export const MAX_RESOURCE_NAME_BYTES = 2048;
/**
 * SDS streams one connection may hold at once. Envoy opens one per SDS
 * secret it uses on one HTTP/2 connection; past this a stream ends with
 * UNAVAILABLE. Connections themselves are capped per uid and in all by the
 * server (`workload_api.max_connections*`), so streams are bounded by both.
 */
export const MAX_STREAMS_PER_CONNECTION = 256;
/**
 * SDS streams one uid may hold at once, over all its connections: without
 * it one uid could hold max_connections_per_uid × the per-connection cap.
 * 4,096 is a node full of sidecars sharing a uid, a few streams each.
 */
export const MAX_STREAMS_PER_UID = 4096;
/** Requests a stream may send before its caller is attested (Envoy sends one); more end it. */
const MAX_EARLY_REQUESTS = 8;

/** What the agent's configuration and tests may set: the resource names and the stream caps. */
export interface SdsOptions {
  names?: SdsNames;
  /** Default {@link MAX_STREAMS_PER_CONNECTION}. */
  maxStreamsPerConnection?: number;
  /** Default {@link MAX_STREAMS_PER_UID}. */
  maxStreamsPerUid?: number;
}

/** Configuration of {@link SdsHandler}: the same attestation as the Workload API's, and the options. */
export interface SdsHandlerConfig extends SdsOptions {
  source: IdentitySource;
  attest: (call: IncomingCall) => Promise<Caller>;
  confirm?: (call: IncomingCall) => void;
  logger: Logger;
}

type Duplex<Req, Res> = grpc.ServerDuplexStream<Req, Res>;

/** Checks what every request shares; a bad one ends the call with INVALID_ARGUMENT. */
function checkRequest(typeUrl: string, names: string[], locators: number): void {
  // Singleton xDS services may leave type_url empty (the service implies it); Envoy sends it.
  if (typeUrl !== '' && typeUrl !== SECRET_TYPE_URL) {
    throw new AnchorageError('invalid_argument', `sds: type_url must be ${SECRET_TYPE_URL} (got ${JSON.stringify(typeUrl.slice(0, 200))})`);
  }
  if (locators > 0) throw new AnchorageError('invalid_argument', 'sds: resource locators (xdstp://) are not served; name resources with resource_names');
  if (names.length > MAX_RESOURCE_NAMES) throw new AnchorageError('invalid_argument', `sds: at most ${MAX_RESOURCE_NAMES} resource names may be requested (got ${names.length})`);
  for (const n of names) {
    const bytes = Buffer.byteLength(n, 'utf8');
    if (bytes > MAX_RESOURCE_NAME_BYTES) throw new AnchorageError('invalid_argument', `sds: a resource name may be at most ${MAX_RESOURCE_NAME_BYTES} bytes (got ${bytes})`);
    if (n === '') throw new AnchorageError('invalid_argument', 'sds: resource names must not be empty');
  }
}

const nonce = (): string => randomBytes(8).toString('hex');

/** Short per-resource version (Delta): the first 16 hex digits of its digest. */
const resourceVersion = (r: Resolved): string => r.digest.slice(0, 16);

/**
 * Envoy's Secret Discovery Service (v3) on the Workload API socket. Each
 * stream's caller is attested like any workload, once at stream start, and
 * confirmed (still the process that connected, running the same binary)
 * before every later push; it is served only its own SVIDs and the bundles of
 * the trust domains its identities belong to or federate with.
 *
 * State of the world (StreamSecrets), as xDS has it: each response carries
 * every requested resource the caller can have, a new version_info and a
 * nonce; a request whose response_nonce is not the last nonce sent is stale
 * and ignored; one carrying error_detail is a NACK, logged, and the rejected
 * version is not sent again (only a change of content or of the names asked
 * for makes a new response). A name the caller cannot have is not sent — the
 * rest of the stream is served — and is pushed if it becomes available
 * (an entry created, a federation set up). An empty response is never sent:
 * Envoy rejects one.
 */
export class SdsHandler {
  readonly #source: IdentitySource;
  readonly #attest: (call: IncomingCall) => Promise<Caller>;
  readonly #confirm: ((call: IncomingCall) => void) | undefined;
  readonly #log: Logger;
  readonly #names: SdsNames;
  readonly #maxPerConnection: number;
  readonly #maxPerUid: number;
  /** Open streams per connection (by the call's synthetic peer address). */
  readonly #perConnection = new Map<string, number>();
  /** Attested open streams per caller uid. */
  readonly #perUid = new Map<number, number>();
  /**
   * Streams refused by a cap: a hostile caller can make many, so they are
   * logged at most once per interval per uid, not once each at error level.
   */
  readonly #refused = new WeakSet<AnchorageError>();
  readonly #refusals: RefusalLog;
  readonly #streams = new Set<(err: unknown) => void>();

  constructor(config: SdsHandlerConfig) {
    this.#source = config.source;
    this.#attest = config.attest;
    this.#confirm = config.confirm;
    this.#log = config.logger.child({ component: 'sds' });
    this.#names = config.names ?? DEFAULT_SDS_NAMES;
    this.#maxPerConnection = config.maxStreamsPerConnection ?? MAX_STREAMS_PER_CONNECTION;
    this.#maxPerUid = config.maxStreamsPerUid ?? MAX_STREAMS_PER_UID;
    this.#refusals = new RefusalLog(this.#log, REFUSAL_LOG_INTERVAL_MS, 'sds: stream refused');
  }

  /** An UNAVAILABLE for a stream over a cap, logged through the rate-limited refusal log. */
  #refuse(key: string, fields: Record<string, unknown>, message: string): AnchorageError {
    const err = new AnchorageError('unavailable', message);
    this.#refused.add(err);
    this.#refusals.note(key, fields, message);
    return err;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  /** Ends every open stream with UNAVAILABLE (server shutdown); Envoy reconnects elsewhere or later. */
  endAllStreams(): void {
    for (const end of [...this.#streams]) end(SHUTTING_DOWN);
  }

  /** The grpc-js implementation object for `envoy.service.secret.v3.SecretDiscoveryService`. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      StreamSecrets: (call: Duplex<SdsRequest, DiscoveryResponse>) => this.#serve('StreamSecrets', call, (c, ctx) => this.#sotw(c, ctx)),
      DeltaSecrets: (call: Duplex<SdsDeltaRequest, DeltaDiscoveryResponse>) => this.#serve('DeltaSecrets', call, (c, ctx) => this.#delta(c, ctx)),
      FetchSecrets: (call: grpc.ServerUnaryCall<SdsRequest, DiscoveryResponse>, callback: grpc.sendUnaryData<DiscoveryResponse>) => {
        void this.#fetch(call).then(
          (res) => callback(null, res),
          (err) => callback(this.#fail('FetchSecrets', undefined, err)),
        );
      },
    };
  }

  async #fetch(call: grpc.ServerUnaryCall<SdsRequest, DiscoveryResponse>): Promise<DiscoveryResponse> {
    const req = call.request;
    if (req.kind === 'refused') throw new AnchorageError('invalid_argument', req.reason);
    checkRequest(req.type_url, req.resource_names, req.locators);
    if (req.resource_names.length === 0) throw new AnchorageError('invalid_argument', 'sds: resource_names must name at least one secret (SDS has no wildcard)');
    const caller = await this.#admit(call);
    const { resolved, unresolved } = resolveNames(new Set(req.resource_names), this.#view(caller), this.#names, useSpiffeValidator(this.#names, req.node));
    if (unresolved.length > 0) {
      throw new AnchorageError('not_found', `sds: not served to this caller: ${unresolved.map((u) => `${JSON.stringify(u.name)} (${u.reason})`).join(', ')}`);
    }
    this.#log.debug({ method: 'FetchSecrets', callerPid: caller.pid, callerUid: caller.uid, names: req.resource_names }, 'sds: call');
    return { version_info: digestOf(resolved).slice(0, 16), resources: resolved.map((r) => r.encode()), nonce: '' };
  }

  /** What this caller may be served now; PERMISSION_DENIED once it has no identity. */
  #view(caller: Caller): CallerView {
    const identities = this.#source.x509Identities(caller.selectors);
    if (identities.length === 0) throw noIdentity();
    return { identities, bundles: callerBundles(this.#source, identities, this.#log), ownTrustDomain: this.#source.trustDomain };
  }

  async #admit(call: IncomingCall): Promise<Caller> {
    // No security header here: Envoy does not send workload.spiffe.io, and
    // SPIRE does not ask SDS callers for it. Attestation decides, as for any call.
    try {
      return await this.#attest(call);
    } catch (err) {
      throw attestorRefusal(err) ?? err;
    }
  }

  /**
   * The part both stream flavours share: the per-connection cap, attestation
   * (requests that arrive meanwhile wait, a few at most), the source
   * subscription, backpressure, and ending the stream.
   */
  #serve<Req extends { kind: string }, Res>(method: string, call: Duplex<Req, Res>, protocol: (caller: Caller, ctx: StreamContext<Res>) => StreamProtocol<Req>): void {
    const peer = call.getPeer();
    const held = this.#perConnection.get(peer) ?? 0;
    if (held >= this.#maxPerConnection) {
      call.emit('error', this.#fail(method, undefined, this.#refuse(`conn:${peer}`, { peer }, `sds: too many streams on this connection (at most ${this.#maxPerConnection})`)));
      return;
    }
    this.#perConnection.set(peer, held + 1);

    let caller: Caller | undefined;
    let ended = false;
    let proto: StreamProtocol<Req> | undefined;
    let unsubscribe: (() => void) | undefined;
    const early: Req[] = [];
    let blocked = false;
    let deferred = false;

    const cleanup = (): void => {
      if (ended) return;
      ended = true;
      unsubscribe?.();
      this.#streams.delete(endWith);
      countDown(this.#perConnection, peer);
      if (caller !== undefined) countDown(this.#perUid, caller.uid);
      this.#log.debug({ method, callerPid: caller?.pid, callerUid: caller?.uid }, 'sds: stream closed');
    };
    const endWith = (err: unknown): void => {
      if (ended) return;
      cleanup();
      call.emit('error', this.#fail(method, caller, err));
    };
    const run = (fn: () => void): void => {
      if (ended) return;
      try {
        fn();
      } catch (err) {
        endWith(err);
      }
    };
    // Under backpressure no response is built: the protocol is asked again
    // once the Envoy has read, and then answers from the state of that
    // moment. So a reader that does not read cannot make us buffer one
    // response per request it sends, and no Delta change is ever dropped.
    call.on('drain', () => {
      blocked = false;
      if (deferred) {
        deferred = false;
        run(() => proto?.onChange());
      }
    });
    const ctx: StreamContext<Res> = {
      ready: () => {
        if (blocked) deferred = true;
        return !blocked;
      },
      send: (res) => {
        if (!call.write(res)) blocked = true;
      },
      confirm: () => this.#confirm?.(call),
      log: this.#log.child({ method, peer }),
    };
    const handle = (req: Req): void => run(() => proto!.onRequest(req));

    this.#streams.add(endWith);
    call.on('cancelled', cleanup);
    call.on('close', cleanup);
    call.on('error', cleanup);
    // Envoy never half-closes; a client that does is done.
    call.on('end', () => {
      if (ended) return;
      cleanup();
      call.end();
    });
    call.on('data', (req: Req) => {
      if (proto !== undefined) return handle(req);
      if (early.length >= MAX_EARLY_REQUESTS) return endWith(new AnchorageError('invalid_argument', `sds: more than ${MAX_EARLY_REQUESTS} requests before the first answer`));
      early.push(req);
    });

    void this.#admit(call).then(
      (c) => {
        if (ended) return;
        const own = this.#perUid.get(c.uid) ?? 0;
        if (own >= this.#maxPerUid) return endWith(this.#refuse(`uid:${c.uid}`, { uid: c.uid }, `sds: too many streams for uid ${c.uid} (at most ${this.#maxPerUid})`));
        this.#perUid.set(c.uid, own + 1);
        caller = c;
        proto = protocol(c, ctx);
        unsubscribe = this.#source.onChange(() => run(() => proto!.onChange()));
        for (const req of early.splice(0)) handle(req);
      },
      (err) => endWith(err),
    );
  }

  /** StreamSecrets: state of the world. */
  #sotw(caller: Caller, ctx: StreamContext<DiscoveryResponse>): StreamProtocol<SdsRequest> {
    let names: string[] = [];
    let node: NodeInfo | undefined;
    let version = 0;
    let lastNonce = '';
    let lastDigest: string | undefined;
    const unresolvedLog = new UnresolvedLog(ctx.log, caller);

    const update = (): void => {
      if (names.length === 0 || !ctx.ready()) return;
      const { resolved, unresolved } = resolveNames(names, this.#view(caller), this.#names, useSpiffeValidator(this.#names, node));
      unresolvedLog.note(unresolved);
      if (resolved.length === 0) return;
      const digest = digestOf(resolved);
      if (digest === lastDigest) return;
      ctx.confirm();
      lastDigest = digest;
      lastNonce = nonce();
      version++;
      ctx.send({ version_info: String(version), resources: resolved.map((r) => r.encode()), nonce: lastNonce });
      ctx.log.debug({ callerPid: caller.pid, callerUid: caller.uid, version, names: resolved.map((r) => r.name) }, 'sds: sent');
    };

    return {
      onChange: update,
      onRequest: (req) => {
        if (req.kind === 'refused') throw new AnchorageError('invalid_argument', req.reason);
        checkRequest(req.type_url, req.resource_names, req.locators);
        if (req.node !== undefined) node = req.node;
        if (lastNonce !== '' && req.response_nonce !== lastNonce) {
          // xDS: a request answering an older response is superseded by the
          // one the Envoy will send for the newest.
          ctx.log.debug({ nonce: req.response_nonce, expected: lastNonce }, 'sds: stale nonce, request ignored');
          return;
        }
        if (req.error_detail !== undefined) {
          ctx.log.warn(
            { callerPid: caller.pid, callerUid: caller.uid, node: node?.id, names: req.resource_names, rejectedVersion: String(version), keptVersion: req.version_info, error: req.error_detail.message },
            'sds: Envoy rejected the secrets (NACK); the same version is not sent again',
          );
        } else if (lastNonce !== '') {
          ctx.log.debug({ callerPid: caller.pid, callerUid: caller.uid, version: req.version_info }, 'sds: ACK');
        }
        names = [...new Set(req.resource_names)];
        update();
      },
    };
  }

  /** DeltaSecrets: incremental xDS; only changed resources go out, and removals by name. */
  #delta(caller: Caller, ctx: StreamContext<DeltaDiscoveryResponse>): StreamProtocol<SdsDeltaRequest> {
    const subscribed = new Set<string>();
    /** The version of each resource the Envoy has (as far as we know). */
    const has = new Map<string, string>();
    let node: NodeInfo | undefined;
    let system = 0;
    let first = true;
    const unresolvedLog = new UnresolvedLog(ctx.log, caller);

    const update = (): void => {
      if (subscribed.size === 0 || !ctx.ready()) return;
      const { resolved, unresolved } = resolveNames(subscribed, this.#view(caller), this.#names, useSpiffeValidator(this.#names, node));
      unresolvedLog.note(unresolved);
      const changed = resolved.filter((r) => has.get(r.name) !== resourceVersion(r));
      // A resource the Envoy has that this caller can no longer have (the
      // entry went, the federation ended) is removed, not left to expire.
      const removed = unresolved.map((u) => u.name).filter((n) => has.has(n));
      if (changed.length === 0 && removed.length === 0) return;
      ctx.confirm();
      for (const r of changed) has.set(r.name, resourceVersion(r));
      for (const n of removed) has.delete(n);
      system++;
      ctx.send({
        system_version_info: String(system),
        resources: changed.map((r) => ({ name: r.name, version: resourceVersion(r), secret: r.encode() })),
        removed_resources: removed,
        nonce: nonce(),
      });
      ctx.log.debug({ callerPid: caller.pid, callerUid: caller.uid, sent: changed.map((r) => r.name), removed }, 'sds: sent (delta)');
    };

    return {
      onChange: update,
      onRequest: (req) => {
        if (req.kind === 'refused') throw new AnchorageError('invalid_argument', req.reason);
        checkRequest(req.type_url, [...req.resource_names_subscribe, ...req.resource_names_unsubscribe], req.locators);
        if (req.node !== undefined) node = req.node;
        if (req.error_detail !== undefined) {
          ctx.log.warn(
            { callerPid: caller.pid, callerUid: caller.uid, node: node?.id, nonce: req.response_nonce, error: req.error_detail.message },
            'sds: Envoy rejected the secrets (NACK); the same versions are not sent again',
          );
        }
        if (first) {
          // After a reconnect the Envoy says what it already has: not resent unless changed.
          first = false;
          for (const [n, v] of Object.entries(req.initial_resource_versions)) has.set(n, v);
        }
        for (const n of req.resource_names_unsubscribe) {
          subscribed.delete(n);
          has.delete(n);
        }
        for (const n of req.resource_names_subscribe) subscribed.add(n);
        ctx.log.debug({ callerPid: caller.pid, subscribe: req.resource_names_subscribe, unsubscribe: req.resource_names_unsubscribe, nonce: req.response_nonce }, 'sds: delta request');
        if (subscribed.size > MAX_RESOURCE_NAMES) throw new AnchorageError('invalid_argument', `sds: at most ${MAX_RESOURCE_NAMES} resources may be subscribed on one stream`);
        update();
      },
    };
  }

  /** Logs the outcome and turns the error into a status; only the message reaches the client. */
  #fail(method: string, caller: Caller | undefined, err: unknown): Partial<grpc.ServiceError> {
    let se: Partial<grpc.ServiceError>;
    if (err === SHUTTING_DOWN) se = { code: grpc.status.UNAVAILABLE, details: SHUTTING_DOWN.message, metadata: new grpc.Metadata() };
    else if (err instanceof AnchorageError && this.#refused.has(err)) {
      const metadata = new grpc.Metadata();
      metadata.set(ERROR_CODE_TRAILER, err.code);
      se = { code: grpc.status.UNAVAILABLE, details: err.message, metadata };
    } else se = toServiceError(err, this.#log, method);
    this.#log.debug({ method, callerPid: caller?.pid, callerUid: caller?.uid, outcome: grpc.status[se.code ?? grpc.status.UNKNOWN], reason: se.details }, 'sds: call failed');
    return se;
  }
}

/** What a stream protocol gets from {@link SdsHandler}'s stream driver. */
interface StreamContext<Res> {
  /** False while the client has not read what was sent; the protocol's onChange() runs again once it has. */
  ready(): boolean;
  send(res: Res): void;
  /** Throws unless the caller is still the process attested at stream start. */
  confirm(): void;
  log: Logger;
}

interface StreamProtocol<Req> {
  onRequest(req: Req): void;
  onChange(): void;
}

/** Lowers a count, dropping the key at zero. */
function countDown<K>(counts: Map<K, number>, key: K): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/** One digest over a response's resources, names included: a new one means something the Envoy sees changed. */
function digestOf(resolved: Resolved[]): string {
  const h = createHash('sha256');
  for (const r of resolved) h.update(`${r.name}\0${r.digest}\0`);
  return h.digest('hex');
}

/** Logs the names a stream asks for and cannot have, once per distinct set (not on every push). */
class UnresolvedLog {
  #last = '';

  constructor(
    private readonly log: Logger,
    private readonly caller: Caller,
  ) {}

  note(unresolved: Unresolved[]): void {
    const key = unresolved.map((u) => u.name).join('\0');
    if (key === this.#last) return;
    this.#last = key;
    if (unresolved.length === 0) return;
    this.log.warn(
      { callerPid: this.caller.pid, callerUid: this.caller.uid, unresolved: unresolved.map((u) => ({ name: u.name.slice(0, 256), reason: u.reason })) },
      'sds: requested secrets this caller cannot have are not sent',
    );
  }
}
