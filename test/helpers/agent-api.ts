import * as grpc from '@grpc/grpc-js';
import { toPem } from '@anchorage/client/pem';
import { loadAgentProto } from '../../proto/load.js';
import type { AgentClient } from '../../proto/gen/anchorage/agent/v1/Agent.js';

/** A call's outcome as its gRPC status code and details (OK and '' on success). */
export interface CallStatus {
  code: number;
  details: string;
}

/** A callback-style unary call as a promise. */
export function unary<T>(fn: (cb: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res as T))));
}

/** Awaits a call and reports its status instead of throwing. */
export async function callStatus(p: Promise<unknown>): Promise<CallStatus> {
  try {
    await p;
    return { code: grpc.status.OK, details: '' };
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
}

/** TLS checks that accept the server only if it presents `spiffe://<td>/anchorage/server` (SVIDs carry no DNS names). */
export function agentApiVerifyOptions(trustDomain: string): grpc.VerifyOptions {
  const serverId = `URI:spiffe://${trustDomain}/anchorage/server`;
  return {
    checkServerIdentity: (_host: string, cert: { subjectaltname?: string }) =>
      cert.subjectaltname === serverId ? undefined : new Error(`unexpected server ${cert.subjectaltname}`),
  };
}

/**
 * A client of a real server's TLS agent API, checking the server as
 * {@link agentApiVerifyOptions} does; with `identity`, it authenticates as
 * that agent (mutual TLS).
 */
export function agentApiClient(opts: {
  port: number;
  trustDomain: string;
  rootPem: Buffer;
  identity?: { keyPem: string; chain: Uint8Array[] };
}): AgentClient {
  const verify = agentApiVerifyOptions(opts.trustDomain);
  const { identity } = opts;
  const creds = identity
    ? grpc.credentials.createSsl(opts.rootPem, Buffer.from(identity.keyPem), Buffer.from(identity.chain.map((d) => toPem('CERTIFICATE', d)).join('')), verify)
    : grpc.credentials.createSsl(opts.rootPem, null, null, verify);
  return new (loadAgentProto().anchorage.agent.v1.Agent)(`127.0.0.1:${opts.port}`, creds);
}
