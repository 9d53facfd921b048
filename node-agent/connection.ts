import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { AnchorageError, errorMessage, type ErrorCode } from '@anchorage/client/errors';
import { codeForStatus } from '@anchorage/client/grpc-status';
import { toPem } from '@anchorage/client/pem';
import { loadAgentProto } from '../proto/load.js';
import type { AgentClient } from '../proto/gen/anchorage/agent/v1/Agent.js';
import type { AttestAgentRequest } from '../proto/gen/anchorage/agent/v1/AttestAgentRequest.js';
import type { AttestAgentResponse__Output } from '../proto/gen/anchorage/agent/v1/AttestAgentResponse.js';
import type { AttestationResult__Output } from '../proto/gen/anchorage/agent/v1/AttestationResult.js';
import type { BatchSignX509SVIDResponse__Output } from '../proto/gen/anchorage/agent/v1/BatchSignX509SVIDResponse.js';
import type { SyncAuthorizedEntriesResponse__Output } from '../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import type { X509SVIDParams } from '../proto/gen/anchorage/agent/v1/X509SVIDParams.js';
import type { X509Bundle } from '@anchorage/client/spiffe/bundle';
import type { SpiffeId } from '@anchorage/client/spiffe/id';
import { uriSansOf } from '@anchorage/client/spiffe/x509svid';

/** How the agent proves itself to the server: its SVID and key. */
export interface AgentCredentials {
  keyPem: string;
  /** DER, leaf first. */
  chain: Uint8Array[];
}

/** How the agent decides the server is the server. */
export type ServerTrust =
  | { kind: 'bundle'; authorities: X509Bundle }
  /** First contact without verification (`insecure_bootstrap`): only ever used for AttestAgent. */
  | { kind: 'insecure' };

/** Deadline of unary calls to the server. */
const CALL_TIMEOUT_MS = 30_000;


/** Challenges the agent answers in one attestation; the server allows 4 (ca/agentapi/attest.ts). */
const MAX_CHALLENGES = 8;

/** params of an AttestAgent stream. */
export interface AttestationRequest {
  type: string;
  payload: Buffer;
  /** DER PKCS#10 for the agent's new key. */
  csr: Uint8Array;
  /** Answers one challenge of the server's attestor. */
  respond: (challenge: Buffer) => Promise<Buffer>;
}

/**
 * Drives one AttestAgent stream: params, then an answer per challenge, until
 * the result. Rejects with the gRPC error as it came (tests read its code),
 * or with the responder's own error (the stream is then cancelled).
 */
export function runAttestation(
  call: grpc.ClientDuplexStream<AttestAgentRequest, AttestAgentResponse__Output>,
  req: AttestationRequest,
): Promise<AttestationResult__Output> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let challenges = 0;
    const finish = (err: unknown, res?: AttestationResult__Output) => {
      if (settled) return;
      settled = true;
      if (err) {
        call.cancel();
        reject(err);
      } else resolve(res!);
    };
    call.on('data', (m: AttestAgentResponse__Output) => {
      if (settled) return;
      if (m.step === 'result' && m.result) return finish(undefined, m.result);
      if (m.step !== 'challenge' || !m.challenge) return finish(new AnchorageError('internal', 'agent: the server sent an attestation message without challenge or result'));
      if (++challenges > MAX_CHALLENGES) return finish(new AnchorageError('internal', `agent: the server sent more than ${MAX_CHALLENGES} attestation challenges`));
      req.respond(m.challenge).then(
        (answer) => {
          if (!settled) call.write({ challenge_response: answer });
        },
        (err) => finish(err),
      );
    });
    call.on('error', (err) => finish(err));
    call.on('status', (st: grpc.StatusObject) => {
      if (st.code === grpc.status.OK) finish(new AnchorageError('unavailable', 'agent: the server ended attestation without a result'));
    });
    call.write({ params: { attestation_type: req.type, payload: req.payload, csr: req.csr } });
  });
}

/**
 * The server's word that this agent was evicted (`anchorage agent evict`):
 * PERMISSION_DENIED with exactly this message (ca/agentapi/service.ts). It is
 * told apart from every other refusal (a superseded SVID, an unknown agent)
 * and from an unreachable server, because it alone means "no longer
 * authorized to hold what you hold".
 */
const EVICTED = /^agent api: agent (spiffe:\/\/\S+) has been evicted$/;

/** The server refused the agent because it was evicted; `agentId` is the ID it named. */
export class EvictedError extends AnchorageError {
  readonly agentId: string;

  constructor(agentId: string, message: string, options?: { cause?: unknown }) {
    super('permission_denied', message, options);
    this.agentId = agentId;
  }
}

/** A gRPC failure from the server as our error, keeping the server's message. */
export function fromGrpc(err: unknown, what: string): AnchorageError {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code !== 'number') return new AnchorageError('unavailable', `agent: ${what}: ${errorMessage(err)}`, { cause: err });
  const evicted = e.code === grpc.status.PERMISSION_DENIED ? EVICTED.exec(e.details ?? '') : null;
  if (evicted) return new EvictedError(evicted[1]!, `agent: ${what}: ${e.details}`, { cause: err });
  // Statuses without an error code of ours (CANCELLED, DEADLINE_EXCEEDED, ...) mean "try again".
  const mapped = codeForStatus(e.code);
  const code: ErrorCode = mapped === 'internal' && e.code !== grpc.status.INTERNAL ? 'unavailable' : mapped;
  return new AnchorageError(code, `agent: ${what}: ${e.details || grpc.status[e.code]}`, { cause: err });
}

/**
 * Checks that the peer's certificate names exactly the server's SPIFFE ID.
 * Hostnames mean nothing here: SVIDs carry no DNS names.
 */
export function serverIdentityCheck(serverId: SpiffeId): (host: string, cert: PeerCertificate) => Error | undefined {
  const want = serverId.toString();
  return (_host, cert) => {
    const uris = uriSansOf(cert);
    if (uris.length === 1 && uris[0] === want) return undefined;
    return new Error(`agent: the server presented ${uris.join(', ') || 'no SPIFFE ID'}, expected ${want}`);
  };
}

/**
 * One gRPC channel to the server's agent API with fixed credentials. The
 * agent replaces it when its SVID is renewed or the server's authorities
 * change.
 */
export class ServerConnection {
  readonly #client: AgentClient;

  constructor(address: string, serverId: SpiffeId, trust: ServerTrust, identity?: AgentCredentials) {
    const Ctor = loadAgentProto().anchorage.agent.v1.Agent;
    const roots = trust.kind === 'bundle' ? Buffer.from(trust.authorities.authorities().map((d) => toPem('CERTIFICATE', d)).join('')) : null;
    const creds = grpc.credentials.createSsl(
      roots,
      identity ? Buffer.from(identity.keyPem) : null,
      identity ? Buffer.from(identity.chain.map((d) => toPem('CERTIFICATE', d)).join('')) : null,
      trust.kind === 'insecure' ? { rejectUnauthorized: false } : { checkServerIdentity: serverIdentityCheck(serverId) },
    );
    this.#client = new Ctor(address, creds, {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5_000,
      // SNI must be a name, not the IP of server_address; identity is checked on the SPIFFE ID.
      'grpc.ssl_target_name_override': serverId.trustDomain.name,
    });
  }

  close(): void {
    this.#client.close();
  }

  /** Node attestation (AttestAgent) with the agent's node attestor. */
  attest(req: AttestationRequest): Promise<AttestationResult__Output> {
    return runAttestation(this.#client.AttestAgent(this.#opts()), req).catch((err: unknown) => {
      throw err instanceof AnchorageError ? err : fromGrpc(err, 'attestation');
    });
  }

  renew(csr: Uint8Array): Promise<Buffer[]> {
    return this.#unary<{ svid_chain: Buffer[] }>('agent svid renewal', (cb) => this.#client.RenewAgent({ csr }, this.#opts(), cb)).then(
      (r) => r.svid_chain,
    );
  }

  batchSign(params: X509SVIDParams[]): Promise<BatchSignX509SVIDResponse__Output> {
    return this.#unary('signing', (cb) => this.#client.BatchSignX509SVID({ params }, this.#opts(), cb));
  }

  mintJwt(entryId: string, audience: string[]): Promise<{ token: string; expiresAt: number }> {
    return this.#unary<{ token: string; expires_at: number }>('jwt-svid', (cb) =>
      this.#client.MintJWTSVID({ entry_id: entryId, audience }, this.#opts(), cb),
    ).then((r) => ({ token: r.token, expiresAt: Number(r.expires_at) }));
  }

  /** Tells the server which bundle the agent holds and what its clock says. */
  report(bundleSequence: number, agentTimeMs: number): Promise<void> {
    return this.#unary('state report', (cb) => this.#client.ReportState({ bundle_sequence: bundleSequence, agent_time_ms: agentTimeMs }, this.#opts(), cb)).then(() => undefined);
  }

  /**
   * Opens the sync stream. `onMessage` gets every full-state message;
   * the returned promise settles when the stream ends (rejects with the
   * reason), and `cancel` ends it from our side.
   */
  sync(onMessage: (m: SyncAuthorizedEntriesResponse__Output) => void): { done: Promise<void>; cancel: () => void } {
    const call = this.#client.SyncAuthorizedEntries({});
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: SyncAuthorizedEntriesResponse__Output) => {
        try {
          onMessage(m);
        } catch (err) {
          call.cancel();
          reject(err);
        }
      });
      call.on('error', (err) => reject(fromGrpc(err, 'sync stream')));
      call.on('end', () => resolve());
    });
    return { done, cancel: () => call.cancel() };
  }

  #opts(): grpc.CallOptions {
    return { deadline: Date.now() + CALL_TIMEOUT_MS };
  }

  #unary<T>(what: string, fn: (cb: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => fn((err, res) => (err ? reject(fromGrpc(err, what)) : resolve(res as T))));
  }
}
