// AttestAgent: the node attestation stream. The agent sends params (attestor
// type, payload, CSR); the server's attestor of that type may send challenges,
// each answered by one challenge_response; the server ends with the result.
// This file owns the stream and its bounds; ca/nodeattestor/ judges the
// evidence. Nothing here is authenticated (the agent has no SVID yet), so
// every size, the number of rounds and the total time are bounded.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AnchorageError, errorMessage, invalid, isAnchorageError } from '@anchorage/client/errors';
import { ERROR_CODE_TRAILER, toServiceError } from '../../common/grpc.js';
import type { Logger } from '../../common/log.js';
import { SpiffeId } from '@anchorage/client/spiffe/id';
import type { AttestAgentRequest__Output } from '../../proto/gen/anchorage/agent/v1/AttestAgentRequest.js';
import type { AttestAgentResponse } from '../../proto/gen/anchorage/agent/v1/AttestAgentResponse.js';
import type { AttestationParams__Output } from '../../proto/gen/anchorage/agent/v1/AttestationParams.js';
import type { DataStore } from '../datastore/DataStore.js';
import type { CaManager } from '../manager.js';
import type { Minter } from '../minter.js';
import type { AuditEvent, AuditSink } from '../audit/event.js';
import { resultOf } from '../../common/metrics-http.js';
import type { NodeAttestorRegistry } from '../nodeattestor/registry.js';

/** Limits of one attestation stream. */
export interface AttestationLimits {
  readonly maxPayloadBytes: number;
  readonly maxCsrBytes: number;
  readonly maxChallengeBytes: number;
  readonly maxRounds: number;
  readonly maxTypeLength: number;
  readonly timeoutMs: number;
}

/** The limits the server uses. Generous for tpm quotes and x509pop chains to come. */
export const ATTESTATION_LIMITS: AttestationLimits = Object.freeze({
  /** Bytes of params.payload. */
  maxPayloadBytes: 64 * 1024,
  /** Bytes of params.csr (a P-256 CSR is ~250, an RSA-4096 one under 2 KiB). */
  maxCsrBytes: 16 * 1024,
  /** Bytes of one challenge, and of one challenge_response. */
  maxChallengeBytes: 64 * 1024,
  /** Challenges per attestation. */
  maxRounds: 4,
  /** Characters of params.attestation_type. */
  maxTypeLength: 64,
  /** From the stream's start to the result. */
  timeoutMs: 30_000,
});

export interface AttestDeps {
  datastore: DataStore;
  ca: CaManager;
  minter: Minter;
  attestors: NodeAttestorRegistry;
  /** Lifetime of agent SVIDs, seconds. */
  agentSvidTtl: number;
  /** Seconds since the epoch. */
  now: () => number;
  logger: Logger;
  limits?: Partial<AttestationLimits>;
  /** Told every attestation's outcome (ca/metrics.ts): the attestor (an enabled type, else "other"), success or the error code, seconds. */
  metrics?: { attested(attestor: string, result: string, seconds: number): void };
  /** Every successful attestation is recorded here before the agent gets its SVID (ca/audit/). */
  audit?: AuditSink;
  /**
   * Every refused one (a status other than OK: the evidence, the stream, a
   * limit, a ban) is recorded here, without waiting: the server's is a
   * BudgetedRecorder (ATTEST_REFUSAL_BUDGET), since a peer can cause them
   * at will.
   */
  refusals?: { record(event: AuditEvent): void };
}

/** How many refused attestations are recorded one by one: 100 at once, 20 a second on average; the rest are counted. */
export const ATTEST_REFUSAL_BUDGET = Object.freeze({ burst: 100, perSecond: 20 });

type Call = grpc.ServerDuplexStream<AttestAgentRequest__Output, AttestAgentResponse>;

function serialHex(cert: X509Certificate): string {
  return cert.serialNumber.toUpperCase().replace(/^0+(?=.)/, '');
}

/** The AttestAgent handler. */
export function attestHandler(deps: AttestDeps): grpc.handleBidiStreamingCall<AttestAgentRequest__Output, AttestAgentResponse> {
  const { datastore: ds, ca, minter, attestors, logger: log } = deps;
  const lim = { ...ATTESTATION_LIMITS, ...deps.limits };

  return (call: Call) => {
    let done = false;
    let started = false;
    let halfClosed = false;
    let rounds = 0;
    const t0 = performance.now();
    let attestorName = 'other';
    const observe = (result: string) => deps.metrics?.attested(attestorName, result, (performance.now() - t0) / 1000);
    /** The attestor's pending question, waiting for its challenge_response. */
    let pending: { resolve: (b: Buffer) => void; reject: (e: unknown) => void } | undefined;

    const settle = () => {
      done = true;
      clearTimeout(timer);
      pending?.reject(new AnchorageError('unavailable', 'agent api: attestation stream ended'));
      pending = undefined;
    };
    /** The attestation type the peer asked for, as far as it got (bounded). */
    let askedType = '';
    const fail = (err: unknown, status?: Partial<grpc.ServiceError>) => {
      if (done) return;
      settle();
      const se = status ?? toServiceError(err, log, 'AttestAgent');
      observe(status ? 'deadline_exceeded' : resultOf(err));
      deps.refusals?.record({
        type: 'agent.attestation_refused',
        outcome: grpc.status[se.code ?? grpc.status.UNKNOWN] ?? String(se.code),
        details: { attestor: askedType, peer: call.getPeer().slice(0, 128), reason: (se.details ?? '').slice(0, 256) },
      });
      call.emit('error', se);
    };
    const timer = setTimeout(() => {
      const metadata = new grpc.Metadata();
      metadata.set(ERROR_CODE_TRAILER, 'unavailable');
      log.warn({ timeoutMs: lim.timeoutMs }, 'agent api: attestation timed out');
      fail(undefined, {
        code: grpc.status.DEADLINE_EXCEEDED,
        details: `agent api: attestation did not finish within ${lim.timeoutMs / 1000}s`,
        metadata,
      });
    }, lim.timeoutMs);

    /** One round: send the attestor's challenge, wait for the answer. */
    const challenge = (c: Buffer): Promise<Buffer> => {
      if (done) return Promise.reject(new AnchorageError('unavailable', 'agent api: attestation stream ended'));
      if (++rounds > lim.maxRounds) return Promise.reject(invalid(`agent api: attestation needs more than ${lim.maxRounds} challenge rounds`));
      if (c.length > lim.maxChallengeBytes) {
        return Promise.reject(new AnchorageError('internal', `agent api: node attestor made a challenge of ${c.length} bytes (limit ${lim.maxChallengeBytes})`));
      }
      if (halfClosed) return Promise.reject(invalid('agent api: the agent closed its side of the stream before answering a challenge'));
      return new Promise<Buffer>((resolve, reject) => {
        pending = { resolve, reject };
        call.write({ challenge: c });
      });
    };

    const run = async (p: AttestationParams__Output): Promise<void> => {
      const type = p.attestation_type;
      if (!type) throw invalid('agent api: params.attestation_type is required');
      if (type.length > lim.maxTypeLength) throw invalid(`agent api: params.attestation_type is longer than ${lim.maxTypeLength} characters`);
      const attestor = attestors.get(type);
      if (!attestor) {
        throw invalid(`agent api: node attestor "${type}" is not enabled on this server (enabled: ${attestors.types().join(', ')})`);
      }
      attestorName = type;
      if (p.payload.length > lim.maxPayloadBytes) throw invalid(`agent api: params.payload is larger than ${lim.maxPayloadBytes} bytes`);
      attestor.precheck?.(p.payload);
      if (p.csr.length === 0) throw invalid('agent api: csr is required');
      if (p.csr.length > lim.maxCsrBytes) throw invalid(`agent api: params.csr is larger than ${lim.maxCsrBytes} bytes`);
      // The CSR is checked before the evidence is spent, so a bad request does not burn a token.
      const spki = await minter.verifyCsr(p.csr);
      const attested = await attestor.attest(p.payload, challenge);
      const prefix = `/anchorage/agent/${type}/`;
      if (!attested.agentIdPath.startsWith(prefix) || attested.agentIdPath.length === prefix.length) {
        throw new AnchorageError('internal', `agent api: node attestor ${type} named ${attested.agentIdPath}, outside ${prefix}`);
      }
      if (done) return; // timed out or cancelled meanwhile: nobody is waiting for an SVID
      const id = SpiffeId.fromPath(ca.trustDomain, attested.agentIdPath);
      const banned = () => new AnchorageError('permission_denied', `agent api: agent ${id.toString()} is banned ("anchorage agent unban" lifts it)`);
      if (await ds.isAgentBanned(id.toString())) throw banned();
      const minted = await minter.mintX509({ spiffeId: id, spki, ttl: deps.agentSvidTtl, capToCa: true, agent: id.toString() });
      const leaf = new X509Certificate(minted.chain[0]!);
      const t = deps.now();
      await ds.putAgent({
        spiffeId: id.toString(),
        attestationType: type,
        certSerial: serialHex(leaf),
        certNotAfter: minted.notAfter,
        selectors: attested.selectors,
        evicted: false,
        createdAt: t,
        updatedAt: t,
      });
      // A ban made while this attestation ran must not be outrun: the record just written is evicted again.
      if (await ds.isAgentBanned(id.toString())) {
        await ds.putAgent({ ...(await ds.getAgent(id.toString()))!, evicted: true, updatedAt: deps.now() });
        throw banned();
      }
      await deps.audit?.record({
        type: 'agent.attested',
        agent: id.toString(),
        spiffeId: id.toString(),
        serial: minted.serial,
        expiresAt: minted.notAfter,
        outcome: 'ok',
        details: { attestor: type, selectors: attested.selectors.length },
      });
      log.info({ agent: id.toString(), type }, 'agent api: agent attested');
      if (done) return;
      settle();
      observe('success');
      call.write({ result: { spiffe_id: id.toString(), svid_chain: minted.chain.map((d) => Buffer.from(d)), bundle: ca.bundle().marshal() } });
      call.end();
    };

    call.on('data', (m: AttestAgentRequest__Output) => {
      if (done) return;
      if (!started) {
        started = true;
        if (m.step !== 'params' || !m.params) return fail(invalid('agent api: the first message must be params'));
        const type = m.params.attestation_type.slice(0, lim.maxTypeLength);
        askedType = type;
        run(m.params).catch((err: unknown) => {
          // Refused evidence is the operator's business: say which and why, never what the evidence was.
          if (isAnchorageError(err, 'permission_denied') || isAnchorageError(err, 'invalid_argument')) {
            log.warn({ type, peer: call.getPeer(), reason: errorMessage(err) }, 'agent api: attestation refused');
          }
          fail(err);
        });
        return;
      }
      if (m.step !== 'challenge_response') return fail(invalid('agent api: params may be sent only once, as the first message'));
      if (!pending) return fail(invalid('agent api: challenge_response sent without a challenge'));
      const answer = m.challenge_response ?? Buffer.alloc(0);
      if (answer.length > lim.maxChallengeBytes) return fail(invalid(`agent api: challenge_response is larger than ${lim.maxChallengeBytes} bytes`));
      const p = pending;
      pending = undefined;
      p.resolve(answer);
    });
    call.on('end', () => {
      halfClosed = true;
      if (done) return;
      if (!started) fail(invalid('agent api: the stream ended before params'));
      else if (pending) fail(invalid('agent api: the agent closed its side of the stream before answering a challenge'));
    });
    call.on('cancelled', () => {
      if (!done) observe('cancelled');
      settle();
    });
    call.on('error', () => settle());
  };
}
