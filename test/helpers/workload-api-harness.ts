/**
 * Test support for the client tests: real Workload API servers (the one in
 * workload-api/server.ts, attesting this process through SO_PEERCRED with
 * the unix attestor) fed by TestIdentitySource over a real in-process CA,
 * and a tiny gRPC server for answers the real one never gives.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '../../common/log.js';
import { UnixWorkloadAttestor } from '../../node-agent/attestor/unix.js';
import type { WorkloadAttestor } from '../../workload-api/WorkloadAttestor.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { SpiffeWorkloadAPIHandlers } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import type { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import type { X509Identity } from '../../workload-api/IdentitySource.js';
import { startWorkloadApi, type WorkloadApi } from '../../workload-api/server.js';
import { startTestCa, TestIdentitySource, type TestCa, type TestEntry } from './test-ca.js';

/** The selector the unix attestor gives this very process. */
export const SELF = `unix:uid:${process.getuid!()}`;

/** A Workload API server on its own socket, restartable at the same path. */
export class Env {
  readonly source: TestIdentitySource;
  readonly socketPath: string;
  readonly attestor: WorkloadAttestor;
  api: WorkloadApi | undefined;

  constructor(source: TestIdentitySource, socketPath: string, attestor: WorkloadAttestor) {
    this.source = source;
    this.socketPath = socketPath;
    this.attestor = attestor;
  }

  /** `unix:///…` — the form SPIFFE_ENDPOINT_SOCKET takes. */
  get address(): string {
    return `unix://${this.socketPath}`;
  }

  async start(): Promise<void> {
    this.api = await startWorkloadApi({ socketPath: this.socketPath, source: this.source, attestor: this.attestor, logger: silentLogger(), shutdownGraceMs: 100 });
  }

  async stop(): Promise<void> {
    const api = this.api;
    this.api = undefined;
    await api?.close();
  }

  /** Adds an identity for this process. */
  addSelf(spiffeId: string, extra: Partial<TestEntry> = {}): ReturnType<TestIdentitySource['addIdentity']> {
    return this.source.addIdentity({ spiffeId, selectors: [SELF], ...extra });
  }
}

/** One CA per trust domain, servers on temp sockets, all torn down by close(). */
export class Harness {
  dir = '';
  readonly cas = new Map<string, TestCa>();
  readonly #cleanups: (() => Promise<void> | void)[] = [];
  #sockets = 0;

  async setup(trustDomains: string[]): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'anchorage-wlclient-'));
    chmodSync(this.dir, 0o755);
    for (const td of trustDomains) this.cas.set(td, await startTestCa(td, join(this.dir, `ca-${td}`)));
  }

  async close(): Promise<void> {
    for (const c of this.#cleanups.reverse()) await c();
    for (const ca of this.cas.values()) await ca.close();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs `fn` at teardown (in reverse order of registration). */
  defer(fn: () => Promise<void> | void): void {
    this.#cleanups.push(fn);
  }

  ca(td: string): TestCa {
    const ca = this.cas.get(td);
    if (!ca) throw new Error(`harness: no CA for ${td}`);
    return ca;
  }

  newSocketPath(): string {
    return join(this.dir, `s${++this.#sockets}`, 'api.sock');
  }

  /** A running server over a fresh TestIdentitySource of `td`'s CA. */
  async startEnv(td: string, opts: { attestor?: WorkloadAttestor } = {}): Promise<Env> {
    const env = new Env(new TestIdentitySource(this.ca(td)), this.newSocketPath(), opts.attestor ?? new UnixWorkloadAttestor({ logger: silentLogger() }));
    await env.start();
    this.defer(() => env.stop());
    return env;
  }

  /**
   * A bare gRPC server implementing SpiffeWorkloadAPI with `handlers`
   * (unimplemented methods answer UNIMPLEMENTED), on a Unix socket or on
   * 127.0.0.1. Returns the address to give the client.
   */
  async startFake(handlers: Partial<SpiffeWorkloadAPIHandlers>, network: 'unix' | 'tcp' = 'unix'): Promise<{ address: string; server: grpc.Server }> {
    const server = new grpc.Server();
    const unimplemented = (name: string) => (call: unknown, cb?: (e: Partial<grpc.ServiceError>) => void) => {
      const err = { code: grpc.status.UNIMPLEMENTED, details: `fake: ${name}` };
      if (cb) cb(err);
      else (call as grpc.ServerWritableStream<unknown, unknown>).emit('error', err);
    };
    const impl: SpiffeWorkloadAPIHandlers = {
      FetchX509SVID: handlers.FetchX509SVID ?? unimplemented('FetchX509SVID'),
      FetchX509Bundles: handlers.FetchX509Bundles ?? unimplemented('FetchX509Bundles'),
      FetchJWTBundles: handlers.FetchJWTBundles ?? unimplemented('FetchJWTBundles'),
      FetchJWTSVID: handlers.FetchJWTSVID ?? unimplemented('FetchJWTSVID'),
      ValidateJWTSVID: handlers.ValidateJWTSVID ?? unimplemented('ValidateJWTSVID'),
    };
    server.addService(loadWorkloadProto().SpiffeWorkloadAPI.service, impl);
    let address: string;
    if (network === 'unix') {
      const path = this.newSocketPath();
      mkdirSync(dirname(path), { recursive: true });
      await new Promise<number>((resolve, reject) => server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
      address = `unix://${path}`;
    } else {
      const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
      address = `tcp://127.0.0.1:${port}`;
    }
    // Handlers that never end their streams would hold tryShutdown forever.
    this.defer(() => server.forceShutdown());
    return { address, server };
  }
}

/** Polls until `cond` holds. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the arguments of the next `event` that satisfies `match`. */
export function nextEvent<A extends unknown[]>(
  emitter: { on(e: string, l: (...a: A) => void): unknown; off(e: string, l: (...a: A) => void): unknown },
  event: string,
  match: (...args: A) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<A> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out waiting for '${event}'`));
    }, timeoutMs);
    const listener = (...args: A): void => {
      if (!match(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    };
    emitter.on(event, listener);
  });
}

/** An X509SVIDResponse on the wire for `identities`, as the real server would send it. */
export function x509Response(identities: X509Identity[], bundle: SpiffeBundle, federated: Record<string, Buffer> = {}): X509SVIDResponse__Output {
  return {
    svids: identities.map((id) => ({
      spiffe_id: id.spiffeId.toString(),
      x509_svid: Buffer.concat(id.chain),
      x509_svid_key: Buffer.from(id.privateKey),
      bundle: Buffer.concat(bundle.x509.authorities()),
      hint: id.hint,
    })),
    crl: [],
    federated_bundles: federated,
  };
}

/** The error a promise rejects with; fails the test if it resolves. */
export async function rejectionOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the promise to reject');
}
