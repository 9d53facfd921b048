import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError, isAnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../common/log.js';
import { UnixWorkloadAttestor } from '../node-agent/attestor/unix.js';
import type { PeerCredentials, WorkloadAttestor } from './WorkloadAttestor.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { SpiffeWorkloadAPIClient } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import { JwtBundle, SpiffeBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyJwtSvid } from '@anchorage/client/spiffe/jwtsvid';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { captureLogger } from '../test/helpers/log.js';
import { runWorkloadClient, WORKLOAD_CLIENT, type WorkloadClientResult } from '../test/helpers/workload.js';
import { EMPTY_SETTINGS, FrameType, Http2ErrorCode } from './grpc-java/frames.js';
import { MAX_STREAMS_PER_CONNECTION, startWorkloadApi, type WorkloadApi } from './server.js';
import { splitDer, startTestCa, TestIdentitySource, type TestCa } from '../test/helpers/test-ca.js';
import { lacks } from '../test/helpers/needs.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLIENT = WORKLOAD_CLIENT;
const TD = 'example.test';
const FED_TD = 'fed.test';
const ROOT_ID = `spiffe://${TD}/root-workload`;
const ROOT_ALT_ID = `spiffe://${TD}/root-alt`;
const NOBODY_ID = `spiffe://${TD}/nobody-workload`;
const NOBODY_UID = 65534;
const STRANGER_UID = 12345;
const isRoot = process.getuid?.() === 0;

let dir: string;
let ca: TestCa;
let fedCa: TestCa;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-wlapi-'));
  // Child processes run as other users and must reach the sockets below.
  chmodSync(dir, 0o755);
  ca = await startTestCa(TD, join(dir, 'ca'));
  fedCa = await startTestCa(FED_TD, join(dir, 'fedca'));
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await ca?.close();
  await fedCa?.close();
  rmSync(dir, { recursive: true, force: true });
});

let socketCount = 0;
function newSocketPath(): string {
  return join(dir, `s${++socketCount}`, 'api.sock');
}

interface Env {
  source: TestIdentitySource;
  api: WorkloadApi;
  socketPath: string;
  client: SpiffeWorkloadAPIClient;
}

/** A fresh source and server on its own socket, so tests that mutate identities do not disturb each other. */
async function startEnv(
  opts: {
    attestor?: WorkloadAttestor;
    socketMode?: number;
    populate?: boolean;
    logger?: ReturnType<typeof silentLogger>;
    maxConnections?: number;
    maxConnectionsPerUid?: number;
    maxStreamsPerUid?: number;
  } = {},
): Promise<Env> {
  const source = new TestIdentitySource(ca);
  if (opts.populate !== false) {
    await source.addIdentity({ spiffeId: ROOT_ID, selectors: ['unix:uid:0'], hint: 'main', federatesWith: [FED_TD, 'missing.test'] });
    await source.addIdentity({ spiffeId: NOBODY_ID, selectors: [`unix:uid:${NOBODY_UID}`], hint: 'nobody' });
    source.setFederatedBundle(fedCa.ca.bundle());
  }
  const socketPath = newSocketPath();
  const api = await startWorkloadApi({
    socketPath,
    source,
    attestor: opts.attestor ?? new UnixWorkloadAttestor({ logger: silentLogger() }),
    logger: opts.logger ?? silentLogger(),
    socketMode: opts.socketMode,
    maxConnections: opts.maxConnections,
    maxConnectionsPerUid: opts.maxConnectionsPerUid,
    maxStreamsPerUid: opts.maxStreamsPerUid,
  });
  const client = newClient(socketPath);
  const env = { source, api, socketPath, client };
  cleanups.push(async () => {
    client.close();
    await api.close();
  });
  return env;
}

function newClient(socketPath: string): SpiffeWorkloadAPIClient {
  const { SpiffeWorkloadAPI } = loadWorkloadProto();
  return new SpiffeWorkloadAPI(`unix://${socketPath}`, grpc.credentials.createInsecure());
}

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

/** Collects a server stream's messages and its final status, and lets a test wait for either. */
class Reader<T> {
  readonly messages: T[] = [];
  error: grpc.ServiceError | undefined;
  #read = 0;
  #wake: (() => void) | undefined;

  constructor(readonly stream: grpc.ClientReadableStream<T>) {
    stream.on('data', (m: T) => {
      this.messages.push(m);
      this.#wake?.();
    });
    stream.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.#wake?.();
    });
  }

  async #until(ready: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** The next message not yet returned; fails if the stream ends first. */
  async next(timeoutMs = 5000): Promise<T> {
    await this.#until(() => this.messages.length > this.#read || this.error !== undefined, 'a message', timeoutMs);
    if (this.messages.length > this.#read) return this.messages[this.#read++]!;
    throw new Error(`stream ended: ${this.error?.code} ${this.error?.details}`);
  }

  /** The status the stream ended with (cancellation excluded). */
  async status(timeoutMs = 5000): Promise<grpc.ServiceError> {
    await this.#until(() => this.error !== undefined, 'the stream to end', timeoutMs);
    return this.error!;
  }

  get unread(): number {
    return this.messages.length - this.#read;
  }
}

function unary<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
  req: Req,
  md: grpc.Metadata = header(),
): Promise<{ res?: Res; err?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    fn(req, md, (err, res) => resolve(err ? { err } : { res: res! }));
  });
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function ownX509Bundle(): X509Bundle {
  return new X509Bundle(TrustDomain.parse(TD), ca.ca.bundle().x509.authorities());
}

/** Every check a workload would make on an X509SVID message: chain, bundle, key pair. */
function checkSvid(svid: { spiffe_id: string; x509_svid: Buffer | string; x509_svid_key: Buffer | string; bundle: Buffer | string }, expectedId: string): X509Certificate {
  const raw = (v: Buffer | string) => (typeof v === 'string' ? Buffer.from(v, 'base64') : v);
  expect(svid.spiffe_id).toBe(expectedId);
  const bundleCerts = splitDer(raw(svid.bundle));
  expect(bundleCerts.length).toBeGreaterThan(0);
  const bundle = new X509Bundle(TrustDomain.parse(TD), bundleCerts);
  expect(bundle.equals(ownX509Bundle())).toBe(true);
  const chain = splitDer(raw(svid.x509_svid));
  const verified = verifyX509Svid(chain, (td) => (td.name === TD ? bundle : undefined));
  expect(verified.spiffeId.toString()).toBe(expectedId);
  const leaf = new X509Certificate(chain[0]!);
  const key = createPrivateKey({ key: raw(svid.x509_svid_key), format: 'der', type: 'pkcs8' });
  expect(createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(leaf.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
  return leaf;
}

function serialsOf(res: X509SVIDResponse__Output): string[] {
  return res.svids.map((s) => new X509Certificate(splitDer(s.x509_svid)[0]!).serialNumber);
}

describe('connection plumbing', () => {
  it("ties each call to its own connection's kernel credentials", async () => {
    const seen: PeerCredentials[] = [];
    const inner = new UnixWorkloadAttestor({ logger: silentLogger() });
    const env = await startEnv({
      attestor: {
        name: 'recording',
        attest: async (peer) => {
          seen.push({ ...peer });
          return inner.attest(peer);
        },
      },
    });
    const r = new Reader(env.client.FetchX509SVID({}, header()));
    await r.next();
    r.stream.cancel();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.pid).toBe(process.pid);
    expect(seen[0]!.uid).toBe(process.getuid!());
    expect(env.api.openConnections).toBe(1);
  });

  it('closes each connection\'s pidfd when the connection goes away', async () => {
    const env = await startEnv();
    const fds = () => readdirSync('/proc/self/fd').length;
    // One call first, so lazily opened descriptors (libc, /etc files) are not counted as leaks.
    const warm = new Reader(env.client.FetchX509SVID({}, header()));
    await warm.next();
    warm.stream.cancel();
    env.client.close();
    await waitFor(() => env.api.openConnections === 0, 'the first connection to close');
    const before = fds();
    for (let i = 0; i < 5; i++) {
      const c = newClient(env.socketPath);
      const r = new Reader(c.FetchX509SVID({}, header()));
      await r.next();
      r.stream.cancel();
      c.close();
    }
    await waitFor(() => env.api.openConnections === 0, 'all connections to close');
    await waitFor(() => fds() <= before, `descriptors back to ${before} (now ${fds()})`);
    expect(env.source.listenerCount).toBe(0);
  });

  it('creates the directory, applies the socket mode and removes the socket on close', async () => {
    const socketPath = newSocketPath();
    expect(existsSync(dirname(socketPath))).toBe(false);
    const source = new TestIdentitySource(ca);
    const api = await startWorkloadApi({ socketPath, source, attestor: new UnixWorkloadAttestor({ logger: silentLogger() }), logger: silentLogger() });
    expect(statSync(dirname(socketPath)).mode & 0o777).toBe(0o755);
    expect(statSync(socketPath).isSocket()).toBe(true);
    expect(statSync(socketPath).mode & 0o777).toBe(0o777);
    await api.close();
    expect(existsSync(socketPath)).toBe(false);

    const api2 = await startWorkloadApi({ socketPath, source, attestor: new UnixWorkloadAttestor({ logger: silentLogger() }), logger: silentLogger(), socketMode: 0o700 });
    expect(statSync(socketPath).mode & 0o777).toBe(0o700);
    await api2.close();
  });

  it('replaces a stale socket but refuses a live one or a regular file', async () => {
    const socketPath = newSocketPath();
    mkdirSync(dirname(socketPath), { recursive: true });
    // A socket left behind by a process that died without cleaning up.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(statSync(socketPath).isSocket()).toBe(true);
    const source = new TestIdentitySource(ca);
    const attestor = new UnixWorkloadAttestor({ logger: silentLogger() });
    const api = await startWorkloadApi({ socketPath, source, attestor, logger: silentLogger() });
    await api.close();

    const live = createServer();
    await new Promise<void>((resolve) => live.listen(socketPath, resolve));
    await expect(startWorkloadApi({ socketPath, source, attestor, logger: silentLogger() })).rejects.toSatisfy(
      (e) => isAnchorageError(e, 'failed_precondition') && /another server/.test((e as Error).message),
    );
    await new Promise<void>((resolve) => live.close(() => resolve()));

    writeFileSync(socketPath, 'not a socket');
    await expect(startWorkloadApi({ socketPath, source, attestor, logger: silentLogger() })).rejects.toSatisfy(
      (e) => isAnchorageError(e, 'failed_precondition') && /not a socket/.test((e as Error).message),
    );
    expect(existsSync(socketPath)).toBe(true);
  });

  it('refuses a socket directory others could write to or that belongs to another user', async () => {
    const source = new TestIdentitySource(ca);
    const attestor = new UnixWorkloadAttestor({ logger: silentLogger() });
    const open = join(dir, 'open-dir');
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o777);
    const inOpen = join(open, 'api.sock');
    await expect(startWorkloadApi({ socketPath: inOpen, source, attestor, logger: silentLogger() })).rejects.toThrow(
      `workloadapi: ${open} is writable by group or others (mode 777); make it 0755 or choose another socket_path`,
    );
    // Below a writable directory is no better: the directory could be renamed away.
    const nested = join(open, 'sub', 'api.sock');
    await expect(startWorkloadApi({ socketPath: nested, source, attestor, logger: silentLogger() })).rejects.toThrow(`workloadapi: ${open} is writable by group or others`);
    expect(existsSync(inOpen)).toBe(false);
    if (isRoot) {
      const foreign = join(dir, 'foreign-dir');
      mkdirSync(foreign, { mode: 0o755 });
      chownSync(foreign, NOBODY_UID, NOBODY_UID);
      await expect(startWorkloadApi({ socketPath: join(foreign, 'api.sock'), source, attestor, logger: silentLogger() })).rejects.toThrow(
        `workloadapi: ${foreign} belongs to uid ${NOBODY_UID}, not to this process (uid 0) or root; choose another socket_path`,
      );
    }
  });

  it('close() ends open streams with UNAVAILABLE and unsubscribes them', async () => {
    const env = await startEnv();
    const r = new Reader(env.client.FetchX509SVID({}, header()));
    const b = new Reader(env.client.FetchJWTBundles({}, header()));
    await r.next();
    await b.next();
    expect(env.source.listenerCount).toBe(2);
    await env.api.close();
    expect((await r.status()).code).toBe(grpc.status.UNAVAILABLE);
    expect((await b.status()).code).toBe(grpc.status.UNAVAILABLE);
    expect(env.source.listenerCount).toBe(0);
    expect(existsSync(env.socketPath)).toBe(false);
  });

  it('serves reflection for SpiffeWorkloadAPI', async () => {
    const env = await startEnv();
    const def = protoLoader.loadSync(join(HERE, '..', 'node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto'), {
      keepCase: true,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client & Record<string, (...a: unknown[]) => grpc.ClientDuplexStream<unknown, unknown>> } } };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(`unix://${env.socketPath}`, grpc.credentials.createInsecure());
    const call = client.ServerReflectionInfo!();
    const responses: Record<string, unknown>[] = [];
    const got = new Promise<void>((resolve, reject) => {
      call.on('data', (d) => {
        responses.push(d as Record<string, unknown>);
        if (responses.length === 2) resolve();
      });
      call.once('error', reject);
    });
    call.write({ list_services: '' });
    call.write({ file_containing_symbol: 'SpiffeWorkloadAPI' });
    await got;
    call.end();
    client.close();
    const list = responses[0] as { list_services_response: { service: { name: string }[] } };
    expect(list.list_services_response.service.map((s) => s.name)).toContain('SpiffeWorkloadAPI');
    const files = responses[1] as { file_descriptor_response?: { file_descriptor_proto: Buffer[] } };
    expect(files.file_descriptor_response?.file_descriptor_proto.length).toBeGreaterThan(0);
    expect(Buffer.concat(files.file_descriptor_response!.file_descriptor_proto).includes('FetchX509SVID')).toBe(true);
  });
});

describe('FetchX509SVID', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });

  it('sends the full state at once: own SVID first, own bundle, federated bundles', async () => {
    await env.source.addIdentity({ spiffeId: ROOT_ALT_ID, selectors: ['unix:uid:0', 'unix:gid:0'], hint: 'alt' });
    const r = new Reader(env.client.FetchX509SVID({}, header()));
    const res = await r.next();
    r.stream.cancel();
    expect(res.svids.map((s) => s.spiffe_id)).toEqual([ROOT_ID, ROOT_ALT_ID]);
    expect(res.svids.map((s) => s.hint)).toEqual(['main', 'alt']);
    checkSvid(res.svids[0]!, ROOT_ID);
    checkSvid(res.svids[1]!, ROOT_ALT_ID);
    expect(Object.keys(res.federated_bundles)).toEqual([`spiffe://${FED_TD}`]);
    const fed = new X509Bundle(TrustDomain.parse(FED_TD), splitDer(res.federated_bundles[`spiffe://${FED_TD}`]!));
    expect(fed.equals(fedCa.ca.bundle().x509)).toBe(true);
    env.source.removeIdentity(ROOT_ALT_ID);
  });

  it('drops a later SVID whose hint repeats an earlier one', async () => {
    await env.source.addIdentity({ spiffeId: ROOT_ALT_ID, selectors: ['unix:uid:0'], hint: 'main' });
    const r = new Reader(env.client.FetchX509SVID({}, header()));
    const res = await r.next();
    r.stream.cancel();
    expect(res.svids.map((s) => s.spiffe_id)).toEqual([ROOT_ID]);
    env.source.removeIdentity(ROOT_ALT_ID);
  });

  it('streams a rotated SVID, and nothing when a change does not affect the caller', async () => {
    const r = new Reader(env.client.FetchX509SVID({}, header()));
    const first = await r.next();
    const [oldSerial] = serialsOf(first);
    // Someone else's identity rotates: this caller's answer is the same, so no message.
    await env.source.rotate(NOBODY_ID);
    env.source.emitChange();
    await env.source.rotate(ROOT_ID);
    const second = await r.next();
    const [newSerial] = serialsOf(second);
    expect(newSerial).not.toBe(oldSerial);
    expect(serialsOf(second)).not.toContain(oldSerial);
    checkSvid(second.svids[0]!, ROOT_ID);
    expect(r.unread).toBe(0);
    r.stream.cancel();
    await waitFor(() => env.source.listenerCount === 0, 'the listener to be removed after cancel');
  });

  it('resends when a federated bundle changes', async () => {
    const r = new Reader(env.client.FetchX509SVID({}, header()));
    await r.next();
    const extra = await startTestCa('fed.test', join(dir, 'fedca2'));
    const merged = new SpiffeBundle(TrustDomain.parse(FED_TD), {
      x509Authorities: [...fedCa.ca.bundle().x509.authorities(), ...extra.ca.bundle().x509.authorities()],
    });
    env.source.setFederatedBundle(merged);
    const res = await r.next();
    expect(splitDer(res.federated_bundles[`spiffe://${FED_TD}`]!)).toHaveLength(2);
    r.stream.cancel();
    env.source.setFederatedBundle(fedCa.ca.bundle());
    await extra.close();
  });

  it('ends the stream with PERMISSION_DENIED when the caller loses its last identity', async () => {
    const own = await startEnv();
    const r = new Reader(own.client.FetchX509SVID({}, header()));
    await r.next();
    expect(own.source.listenerCount).toBe(1);
    own.source.removeIdentity(ROOT_ID);
    const st = await r.status();
    expect(st.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.messages).toHaveLength(1);
    expect(own.source.listenerCount).toBe(0);
    expect(own.api.openStreams).toBe(0);
  });
});

describe('bundle streams', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });

  it('FetchX509Bundles: own and federated trust domains, keyed spiffe://, resent on change', async () => {
    const r = new Reader(env.client.FetchX509Bundles({}, header()));
    const res = await r.next();
    expect(Object.keys(res.bundles).sort()).toEqual([`spiffe://${TD}`, `spiffe://${FED_TD}`].sort());
    expect(new X509Bundle(TrustDomain.parse(TD), splitDer(res.bundles[`spiffe://${TD}`]!)).equals(ownX509Bundle())).toBe(true);
    expect(new X509Bundle(TrustDomain.parse(FED_TD), splitDer(res.bundles[`spiffe://${FED_TD}`]!)).equals(fedCa.ca.bundle().x509)).toBe(true);
    // A rotated SVID does not change bundles: no message. A bundle change does.
    await env.source.rotate(ROOT_ID);
    const extra = await startTestCa('fed.test', join(dir, 'fedca3'));
    env.source.setFederatedBundle(extra.ca.bundle());
    const next = await r.next();
    expect(new X509Bundle(TrustDomain.parse(FED_TD), splitDer(next.bundles[`spiffe://${FED_TD}`]!)).equals(extra.ca.bundle().x509)).toBe(true);
    expect(r.unread).toBe(0);
    r.stream.cancel();
    env.source.setFederatedBundle(fedCa.ca.bundle());
    await extra.close();
    await waitFor(() => env.source.listenerCount === 0, 'the listener to be removed');
  });

  it('FetchJWTBundles: JWKS documents with only the jwt-svid keys', async () => {
    const r = new Reader(env.client.FetchJWTBundles({}, header()));
    const res = await r.next();
    r.stream.cancel();
    expect(Object.keys(res.bundles).sort()).toEqual([`spiffe://${TD}`, `spiffe://${FED_TD}`].sort());
    const doc = JSON.parse(res.bundles[`spiffe://${TD}`]!.toString('utf8')) as { keys: Record<string, unknown>[] };
    expect(doc.keys.length).toBe(ca.ca.bundle().jwt.size);
    for (const k of doc.keys) {
      expect(k).toMatchObject({ use: 'jwt-svid', kty: 'EC', crv: 'P-256' });
      expect(typeof k.kid).toBe('string');
      expect(k.x5c).toBeUndefined();
      expect(k.d).toBeUndefined();
    }
    const parsed = SpiffeBundle.parse(TrustDomain.parse(TD), res.bundles[`spiffe://${TD}`]!);
    expect(parsed.jwt.equals(ca.ca.bundle().jwt)).toBe(true);
    expect(parsed.x509.size).toBe(0);
  });
});

describe('JWT-SVIDs', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });
  const fetchJwt = (req: { audience?: string[]; spiffe_id?: string }, md?: grpc.Metadata) =>
    unary(env.client.FetchJWTSVID.bind(env.client) as never, req, md) as Promise<{ res?: { svids: { spiffe_id: string; svid: string; hint: string }[] }; err?: grpc.ServiceError }>;
  const validate = (req: { audience?: string; svid?: string }, md?: grpc.Metadata) =>
    unary(env.client.ValidateJWTSVID.bind(env.client) as never, req, md) as Promise<{
      res?: { spiffe_id: string; claims: { fields: Record<string, { kind?: string; stringValue?: string; numberValue?: number; listValue?: { values: { stringValue?: string }[] } }> } };
      err?: grpc.ServiceError;
    }>;

  it('FetchJWTSVID refuses a missing or empty audience and a malformed spiffe_id', async () => {
    expect((await fetchJwt({ audience: [] })).err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await fetchJwt({ audience: ['a', ''] })).err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await fetchJwt({ audience: ['a'], spiffe_id: 'not-an-id' })).err?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('FetchJWTSVID refuses an identity that is not the caller’s', async () => {
    const { err } = await fetchJwt({ audience: ['svc'], spiffe_id: NOBODY_ID });
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('FetchJWTSVID returns a token that verifies against the bundle', async () => {
    const { res, err } = await fetchJwt({ audience: ['svc', 'other'], spiffe_id: ROOT_ID });
    expect(err).toBeUndefined();
    expect(res!.svids).toHaveLength(1);
    expect(res!.svids[0]).toMatchObject({ spiffe_id: ROOT_ID, hint: 'main' });
    const jwtBundle = new JwtBundle(TrustDomain.parse(TD), ca.ca.bundle().jwt.keys());
    const v = await verifyJwtSvid(res!.svids[0]!.svid, (td) => (td.name === TD ? jwtBundle : undefined), ['svc']);
    expect(v.spiffeId.toString()).toBe(ROOT_ID);
    expect(v.audience).toEqual(['svc', 'other']);
    const all = await fetchJwt({ audience: ['svc'] });
    expect(all.res!.svids.map((s) => s.spiffe_id)).toEqual([ROOT_ID]);
  });

  it('ValidateJWTSVID returns the ID and the claims as a Struct', async () => {
    const token = (await ca.minter.mintJwt({ spiffeId: SpiffeId.parse(NOBODY_ID), audience: ['svc'] })).token;
    const { res, err } = await validate({ audience: 'svc', svid: token });
    expect(err).toBeUndefined();
    expect(res!.spiffe_id).toBe(NOBODY_ID);
    const f = res!.claims.fields;
    expect(f.sub).toMatchObject({ kind: 'stringValue', stringValue: NOBODY_ID });
    expect(f.aud!.kind).toBe('listValue');
    expect(f.aud!.listValue!.values.map((v) => v.stringValue)).toEqual(['svc']);
    expect(f.exp!.kind).toBe('numberValue');
    expect(f.exp!.numberValue).toBeGreaterThan(Date.now() / 1000);
  });

  it('ValidateJWTSVID trusts federated trust domains the caller federates with', async () => {
    const token = (await fedCa.minter.mintJwt({ spiffeId: SpiffeId.parse(`spiffe://${FED_TD}/peer`), audience: ['svc'] })).token;
    const { res } = await validate({ audience: 'svc', svid: token });
    expect(res!.spiffe_id).toBe(`spiffe://${FED_TD}/peer`);
  });

  it('ValidateJWTSVID refuses empty fields and bad tokens with INVALID_ARGUMENT', async () => {
    const token = (await ca.minter.mintJwt({ spiffeId: SpiffeId.parse(ROOT_ID), audience: ['svc'] })).token;
    expect((await validate({ audience: '', svid: token })).err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await validate({ audience: 'svc', svid: '' })).err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: NOBODY_ID })).toString('base64url')}.${s}`;
    const tampered = await validate({ audience: 'svc', svid: forged });
    expect(tampered.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(tampered.err?.details).toMatch(/signature/);
    const wrongAud = await validate({ audience: 'elsewhere', svid: token });
    expect(wrongAud.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(wrongAud.err?.details).toMatch(/audience/);
  });
});

describe('status codes', () => {
  it('INVALID_ARGUMENT without the security header, on every RPC', async () => {
    const env = await startEnv();
    const bad = new grpc.Metadata();
    bad.set('workload.spiffe.io', 'false');
    for (const md of [new grpc.Metadata(), bad]) {
      for (const method of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles'] as const) {
        const st = await new Reader(env.client[method]({}, md)).status();
        expect(st.code, method).toBe(grpc.status.INVALID_ARGUMENT);
        expect(st.details).toMatch(/security header/);
      }
      const j = await unary(env.client.FetchJWTSVID.bind(env.client) as never, { audience: ['a'] }, md);
      expect(j.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      const v = await unary(env.client.ValidateJWTSVID.bind(env.client) as never, { audience: 'a', svid: 'x.y.z' }, md);
      expect(v.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect(env.source.listenerCount).toBe(0);
  });

  it('PERMISSION_DENIED for a caller without identity, on every RPC', async () => {
    const env = await startEnv({ populate: false });
    for (const method of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles'] as const) {
      const r = new Reader(env.client[method]({}, header()));
      expect((await r.status()).code, method).toBe(grpc.status.PERMISSION_DENIED);
      expect(r.messages).toHaveLength(0);
    }
    expect((await unary(env.client.FetchJWTSVID.bind(env.client) as never, { audience: ['a'] })).err?.code).toBe(grpc.status.PERMISSION_DENIED);
    const token = (await ca.minter.mintJwt({ spiffeId: SpiffeId.parse(ROOT_ID), audience: ['svc'] })).token;
    expect((await unary(env.client.ValidateJWTSVID.bind(env.client) as never, { audience: 'svc', svid: token })).err?.code).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    expect(env.source.listenerCount).toBe(0);
  });

  it('UNAVAILABLE when attestation fails, whatever the attestor throws', async () => {
    for (const error of [new AnchorageError('unavailable', 'attestor: caller exited'), new Error('boom')]) {
      const env = await startEnv({ attestor: { name: 'failing', attest: () => Promise.reject(error) } });
      const st = await new Reader(env.client.FetchX509SVID({}, header())).status();
      expect(st.code).toBe(grpc.status.UNAVAILABLE);
      const j = await unary(env.client.FetchJWTSVID.bind(env.client) as never, { audience: ['a'] });
      expect(j.err?.code).toBe(grpc.status.UNAVAILABLE);
      expect(j.err?.details).not.toMatch(/at .*\.ts:/);
    }
  });
});

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('callers under different uids (child processes)', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });

  it('root and nobody each get only their own SVID', async () => {
    const [root, nobody] = await Promise.all([
      runWorkloadClient(0, { socket: env.socketPath, method: 'FetchX509SVID' }),
      runWorkloadClient(NOBODY_UID, { socket: env.socketPath, method: 'FetchX509SVID' }),
    ]);
    expect(root.ok, JSON.stringify(root)).toBe(true);
    expect(nobody.ok, JSON.stringify(nobody)).toBe(true);
    expect(root.response!.svids!.map((s) => s.spiffe_id)).toEqual([ROOT_ID]);
    expect(nobody.response!.svids!.map((s) => s.spiffe_id)).toEqual([NOBODY_ID]);
    checkSvid(root.response!.svids![0]!, ROOT_ID);
    checkSvid(nobody.response!.svids![0]!, NOBODY_ID);
    expect(Object.keys(root.response!.federated_bundles!)).toEqual([`spiffe://${FED_TD}`]);
    expect(nobody.response!.federated_bundles).toEqual({});
  });

  it('nobody cannot ask for root’s JWT-SVID, but gets its own', async () => {
    const denied = await runWorkloadClient(NOBODY_UID, { socket: env.socketPath, method: 'FetchJWTSVID', audience: ['svc'], spiffeId: ROOT_ID });
    expect(denied).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    const own = (await runWorkloadClient(NOBODY_UID, { socket: env.socketPath, method: 'FetchJWTSVID', audience: ['svc'] })) as WorkloadClientResult & {
      response: { svids: { spiffe_id: string }[] };
    };
    expect(own.response.svids.map((s) => s.spiffe_id)).toEqual([NOBODY_ID]);
  });

  it('a client killed mid-stream leaves no listener and no connection behind', async () => {
    const child = spawn(process.execPath, [CLIENT, JSON.stringify({ socket: env.socketPath, method: 'FetchX509SVID', hold: true })], {
      uid: NOBODY_UID,
      gid: NOBODY_UID,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    expect(env.source.listenerCount).toBe(1);
    expect(env.api.openStreams).toBe(1);
    child.kill('SIGKILL');
    await waitFor(() => env.source.listenerCount === 0 && env.api.openConnections === 0, 'the stream and connection to be released');
    expect(env.api.openStreams).toBe(0);
  });

  it('a uid without identity gets PERMISSION_DENIED; a call without the header INVALID_ARGUMENT', async () => {
    const stranger = await runWorkloadClient(STRANGER_UID, { socket: env.socketPath, method: 'FetchX509SVID' });
    expect(stranger).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    const noHeader = await runWorkloadClient(NOBODY_UID, { socket: env.socketPath, method: 'FetchX509SVID', header: false });
    expect(noHeader).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
  });
});

/** A raw connection that only reads: what the server sent, and whether it closed the connection. */
interface RawConn {
  received(): Buffer;
  closed(): boolean;
  destroy(): void;
}

function rawConnect(socketPath: string): Promise<RawConn> {
  return new Promise((resolve) => {
    const s = connect(socketPath);
    const got: Buffer[] = [];
    let closed = false;
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => (closed = true));
    const conn: RawConn = { received: () => Buffer.concat(got), closed: () => closed, destroy: () => s.destroy() };
    // settled once the server spoke (SETTINGS, or SETTINGS + GOAWAY) or closed
    const settle = setInterval(() => {
      if (got.length > 0 || closed) {
        clearInterval(settle);
        resolve(conn);
      }
    }, 5);
  });
}

/** The GOAWAY in `bytes` (after our SETTINGS), as error code and debug text. */
function goawayOf(bytes: Buffer): { code: number; debug: string } | undefined {
  if (bytes.length <= EMPTY_SETTINGS.length || bytes[EMPTY_SETTINGS.length + 3] !== FrameType.GOAWAY) return undefined;
  const p = bytes.subarray(EMPTY_SETTINGS.length + 9);
  return { code: p.readUInt32BE(4), debug: p.subarray(8).toString('latin1') };
}

describe('connection caps', () => {
  it('refuses connections over the per-uid cap at accept with a GOAWAY, without keeping a descriptor, and logs them sparingly', async () => {
    const logs = captureLogger();
    const env = await startEnv({ maxConnections: 100, maxConnectionsPerUid: 3, logger: logs.logger });
    const uid = process.getuid!();
    const held = await Promise.all([0, 1, 2].map(() => rawConnect(env.socketPath)));
    await waitFor(() => env.api.openConnections === 3, 'three connections');
    for (const c of held) expect(c.received().equals(EMPTY_SETTINGS)).toBe(true);
    const fds = readdirSync('/proc/self/fd').length;
    const refused: RawConn[] = [];
    for (let i = 0; i < 20; i++) refused.push(await rawConnect(env.socketPath));
    await waitFor(() => refused.every((c) => c.closed()), 'the refused connections to close');
    for (const c of refused) {
      expect(goawayOf(c.received())).toEqual({ code: Http2ErrorCode.ENHANCE_YOUR_CALM, debug: `workloadapi: too many connections from uid ${uid} (max_connections_per_uid 3)` });
    }
    expect(env.api.openConnections).toBe(3);
    // no pidfd or socket of a refused connection stays open in the server (this process)
    await waitFor(() => readdirSync('/proc/self/fd').length <= fds, 'descriptors of refused connections to be released');
    // 20 refusals, one log line (the next one would carry the count of those not logged)
    const lines = logs.records.filter((r) => r.msg === 'workloadapi: connection refused');
    expect(lines).toEqual([expect.objectContaining({ uid, reason: `too many connections from uid ${uid} (max_connections_per_uid 3)`, suppressed: 0 })]);
    // a freed slot is taken again
    held[0]!.destroy();
    await waitFor(() => env.api.openConnections === 2, 'a slot to free');
    const again = await rawConnect(env.socketPath);
    expect(again.received().equals(EMPTY_SETTINGS)).toBe(true);
    expect(env.api.openConnections).toBe(3);
    for (const c of [...held, again]) c.destroy();
  });

  it('refuses every connection over the global cap, before reading credentials', async () => {
    const env = await startEnv({ maxConnections: 2, maxConnectionsPerUid: 2 });
    const held = await Promise.all([0, 1].map(() => rawConnect(env.socketPath)));
    await waitFor(() => env.api.openConnections === 2, 'two connections');
    const over = await rawConnect(env.socketPath);
    await waitFor(() => over.closed(), 'the refused connection to close');
    expect(goawayOf(over.received())).toEqual({ code: Http2ErrorCode.ENHANCE_YOUR_CALM, debug: 'workloadapi: too many connections (max_connections 2)' });
    for (const c of held) c.destroy();
  });

  it(`lets one connection have ${MAX_STREAMS_PER_CONNECTION} streams open at once; the next waits until one ends`, async () => {
    const env = await startEnv();
    const session = http2.connect('http://localhost', { createConnection: () => connect(env.socketPath) });
    session.on('error', () => {});
    try {
      // Our accept path speaks an empty SETTINGS first; the cap comes in the HTTP/2 server's own.
      await waitFor(() => session.remoteSettings?.maxConcurrentStreams === MAX_STREAMS_PER_CONNECTION, 'the SETTINGS that carry the cap');
      let answered = 0;
      const streams = Array.from({ length: MAX_STREAMS_PER_CONNECTION + 1 }, () => {
        const st = session.request({ ':method': 'POST', ':path': '/SpiffeWorkloadAPI/FetchX509Bundles', 'content-type': 'application/grpc', te: 'trailers', 'workload.spiffe.io': 'true' });
        st.on('error', () => {});
        st.once('response', () => answered++);
        st.end(Buffer.alloc(5)); // one empty gRPC message
        return st;
      });
      await waitFor(() => answered === MAX_STREAMS_PER_CONNECTION, 'every stream within the cap to be answered', 30_000);
      // The one past the cap is not open yet: a slot must free first.
      await new Promise((r) => setTimeout(r, 300));
      expect(answered).toBe(MAX_STREAMS_PER_CONNECTION);
      streams[0]!.close();
      await waitFor(() => answered === MAX_STREAMS_PER_CONNECTION + 1, 'the waiting stream to be served once a slot frees');
    } finally {
      session.destroy();
    }
  });

  it('ends a stream over the per-uid cap at once with UNAVAILABLE, over all connections, logs it sparingly, and frees the slot when one ends', async () => {
    const logs = captureLogger();
    const env = await startEnv({ maxStreamsPerUid: 3, logger: logs.logger });
    const other = newClient(env.socketPath);
    const md = () => {
      const m = new grpc.Metadata();
      m.set('workload.spiffe.io', 'true');
      return m;
    };
    // Three streams, on two connections, each answered with the bundles.
    const open = (client: SpiffeWorkloadAPIClient) => {
      const s = client.FetchX509Bundles({}, md());
      const first = new Promise<void>((resolve, reject) => {
        s.once('data', () => resolve());
        s.once('error', reject);
      });
      return { s, first };
    };
    const held = [open(env.client), open(env.client), open(other)];
    await Promise.all(held.map((h) => h.first));
    const uid = process.getuid!();
    for (let i = 0; i < 5; i++) {
      const over = open(i % 2 === 0 ? env.client : other);
      const err = await over.first.then(
        () => {
          throw new Error('a stream over the cap was served');
        },
        (e: unknown) => e as grpc.ServiceError,
      );
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect(err.details).toBe(`workloadapi: too many open streams for uid ${uid} (at most 3)`);
    }
    // Five refusals, one log line.
    expect(logs.records.filter((r) => r.msg === 'workloadapi: stream refused')).toEqual([
      expect.objectContaining({ uid, reason: `workloadapi: too many open streams for uid ${uid} (at most 3)`, suppressed: 0 }),
    ]);
    held[0]!.s.cancel();
    await waitFor(() => env.api.openStreams === 2, 'the cancelled stream to close');
    const again = open(other);
    await again.first;
    for (const h of [...held, again]) h.s.cancel();
    other.close();
  });

  it('refuses nonsense caps', async () => {
    for (const [opt, value] of [
      ['maxConnections', 0],
      ['maxConnectionsPerUid', 1.5],
    ] as const) {
      await expect(startEnv({ [opt]: value })).rejects.toThrow(`workloadapi: ${opt} must be a positive integer, not ${value}`);
    }
  });
});

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('connection caps across uids (child processes)', () => {
  it('unset caps shrink to what the open-files limit can hold (4 descriptors per connection, 512 spare)', async () => {
    const limits = () => /^Max open files\s+(\d+)\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))!;
    const [, soft, hard] = limits();
    const set = (s: string, h: string) => {
      const r = spawnSync('prlimit', [`--pid=${process.pid}`, `--nofile=${s}:${h}`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    };
    set('2000', hard!);
    try {
      const logs = captureLogger();
      await startEnv({ logger: logs.logger });
      expect(logs.records.find((r) => r.msg === 'workloadapi: listening')).toMatchObject({ maxConnections: 372, maxConnectionsPerUid: 372 });
      // explicit caps are kept, with a warning when the descriptors cannot follow
      const explicit = captureLogger();
      await startEnv({ logger: explicit.logger, maxConnections: 1000, maxConnectionsPerUid: 10 });
      expect(explicit.records.find((r) => r.msg === 'workloadapi: listening')).toMatchObject({ maxConnections: 1000, maxConnectionsPerUid: 10 });
      expect(explicit.records.find((r) => r.level === 40 && String(r.msg).startsWith('workloadapi: max_connections 1000 may need up to 4000 file descriptors'))).toBeDefined();
    } finally {
      set(soft!, hard!);
    }
  });

  it('root holding its whole per-uid cap does not keep nobody from its SVID', async () => {
    const env = await startEnv({ maxConnections: 10, maxConnectionsPerUid: 4 });
    const held = await Promise.all([0, 1, 2, 3].map(() => rawConnect(env.socketPath)));
    await waitFor(() => env.api.openConnections === 4, 'four connections');
    const over = await rawConnect(env.socketPath);
    await waitFor(() => over.closed(), 'the fifth root connection to be refused');
    const nobody = await runWorkloadClient(NOBODY_UID, { socket: env.socketPath, method: 'FetchX509SVID' });
    expect(nobody.ok, JSON.stringify(nobody)).toBe(true);
    expect(nobody.response!.svids!.map((s) => s.spiffe_id)).toEqual([NOBODY_ID]);
    for (const c of held) c.destroy();
  });
});
