// Interop: a real SPIFFE client, go-spiffe v2, fetching from our Workload API.
//
// test/interop/go/ is a small Go program (its own module, go.sum committed)
// that does what a Go workload does with go-spiffe's workloadapi package and
// checks every answer with go-spiffe's own verifiers; it prints one JSON line.
// This file builds it once and runs the same checks against every target in
// TARGETS:
//
//  - a Workload API server in this process over a TestIdentitySource, which
//    also covers federated bundles (the real server cannot configure them yet);
//  - the real node agent: `anchorage agent run` attested with a join token to
//    `anchorage server run` on a SoftHSM2 token, both as separate processes
//    (as test/integration/agent.test.ts brings them up; needs `npm run build`).
//
// Against each target it also speaks mutual TLS with our own Node client
// library (@anchorage/client, in this process), both ways: the go-spiffe
// program, run as uid GO_PEER_UID with an entry of its own, serves or dials
// with spiffetls; this process dials with connectMtls or serves with
// createMtlsServer; each authorizes the other's exact SPIFFE ID and refuses
// any other. And it calls every RPC over a raw gRPC connection without the
// security header (go-spiffe's generated stubs), which must be refused with
// INVALID_ARGUMENT.
//
// The binary is cached in test/interop/.cache/go (gitignored) and rebuilt
// only when go.mod, go.sum, a .go file or the Go version changed. Outcomes
// go to the README's interop table through interopRecorder.
//
// Without a Go toolchain the suite is skipped with a warning, except in CI
// (CI=true), where it fails: there it must run.
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import { UnixWorkloadAttestor } from '../../node-agent/attestor/unix.js';
import { authorizeId, connectMtls, createMtlsServer, peerSpiffeId, X509Source, type Authorizer } from '@anchorage/client';
import { startWorkloadApi } from '../../workload-api/server.js';
import { startTestCa, TestIdentitySource, type TestCa } from '../helpers/test-ca.js';
import { cachedBinary, goToolchain, PROGRAM, requiredGoSpiffeVersion } from './go-program.js';
import {
  closerList,
  currentUid,
  describeWithToolchain,
  interopRecorder,
  jsonLine,
  NOBODY_UID,
  run,
  startTrustDomain,
  type RunResult,
} from './harness.js';

const AUDIENCE = 'spiffe://example.test/interop-audience';
const READY_MARKER = 'interop: ready-for-rotation';
/** What mtls-server writes on stderr, with its address, once it accepts connections. */
const LISTENING_MARKER = /interop: listening 127\.0\.0\.1:(\d+)\n/;
/** The uid (and gid) the go-spiffe peer runs as in the mTLS tests; its entry selects on it. */
const GO_PEER_UID = 23456;
/** What the server reports for a request without the security header (workload-api/handlers.ts). */
const NO_HEADER_MESSAGE = 'workloadapi: security header missing from request';

// --- the targets -------------------------------------------------------------------

/** Where the program gets PERMISSION_DENIED: an endpoint, and the uid/gid to run it as (default: ours). */
type DeniedCase = { endpoint: string; uid?: number } | { skip: string };

/**
 * The two workloads of the mTLS tests, both with identities at the target:
 * the go-spiffe program run as goUid, and this process (its X509Source
 * holds nodeId).
 */
interface MtlsPeers {
  goUid: number;
  goId: string;
  nodeId: string;
}

type PeersCase = MtlsPeers | { skip: string };

/** Spawning a program as another uid takes root. */
function peersCase(uid: number, goId: string, nodeId: string): PeersCase {
  return uid === 0 ? { goUid: GO_PEER_UID, goId, nodeId } : { skip: `not root (uid ${uid}): the go-spiffe peer cannot be run as uid ${GO_PEER_UID}` };
}

/** What the go-spiffe program is run against, and what it must find there. */
interface InteropTarget {
  /** `unix:///…` of a Workload API where this process has exactly one identity. */
  endpoint: string;
  /** How to get PERMISSION_DENIED there, or why that case cannot run here. */
  denied: DeniedCase;
  /** The mTLS peers, or why they cannot run here. */
  peers: PeersCase;
  expectedId: string;
  /** The hint of expectedId's entry (rotate() may change it). */
  hint: string;
  /** Trust domains whose X.509 and JWT bundles this process must get, sorted. */
  trustDomains: string[];
  /** Certificates in the X509-SVID as served (leaf + intermediates). */
  chainLength: number;
  /** Certificates in the chain go-spiffe verifies (up to and including the trust anchor). */
  verifiedChainLength: number;
  /** Lifetimes the SVIDs must not exceed, in seconds. */
  x509SvidTtl: number;
  jwtSvidTtl: number;
  /** The SVID being served, where the target can tell (serial: lowercase hex, notAfter: Unix seconds). */
  current?(): { serial: string; notAfter: number };
  /** Makes the served X509-SVID of expectedId rotate (new key, new serial). */
  rotate(): Promise<void>;
  /** Diagnostics to add to a failure message (e.g. the tail of the agent's log). */
  diagnostics?(): string;
  close(): Promise<void>;
}

interface TargetSpec {
  name: string;
  /** Starts the target with its files under `dir` (a fresh 0755 directory). */
  start(dir: string): Promise<InteropTarget>;
}

/** Lowercase hex without leading zeros, as go-spiffe's program prints serials. */
function serialHex(s: string): string {
  return BigInt(`0x${s}`).toString(16);
}


/** A Workload API server in this process over a TestIdentitySource, with a federated trust domain. */
async function startInProcessTarget(dir: string): Promise<InteropTarget> {
  const uid = currentUid();
  const expectedId = 'spiffe://example.test/interop/go-spiffe';
  const hint = 'interop';
  const closers = closerList();
  try {
    const ca: TestCa = await startTestCa('example.test', dir);
    closers.push(() => ca.close());
    const fedCa = await startTestCa('fed.test', dir);
    closers.push(() => fedCa.close());
    // An agent knows this bundle, but the caller does not federate with it: it must not be sent.
    const otherCa = await startTestCa('other.test', dir);
    closers.push(() => otherCa.close());

    const source = new TestIdentitySource(ca);
    source.setFederatedBundle(fedCa.ca.bundle());
    source.setFederatedBundle(otherCa.ca.bundle());
    let identity = await source.addIdentity({ spiffeId: expectedId, selectors: [`unix:uid:${uid}`], hint, federatesWith: ['fed.test'] });
    // The go-spiffe peer of the mTLS tests.
    const goPeerId = 'spiffe://example.test/interop/go-peer';
    await source.addIdentity({ spiffeId: goPeerId, selectors: [`unix:uid:${GO_PEER_UID}`] });

    // Same CA and bundles, but no entry for this uid.
    const denied = new TestIdentitySource(ca);
    denied.setFederatedBundle(fedCa.ca.bundle());
    await denied.addIdentity({ spiffeId: 'spiffe://example.test/someone-else', selectors: [`unix:uid:${uid + 1}`] });

    const attestor = new UnixWorkloadAttestor({ logger: silentLogger() });
    const socketPath = join(dir, 'api', 'workload.sock');
    const api = await startWorkloadApi({ socketPath, source, attestor, logger: silentLogger() });
    closers.push(() => api.close());
    const deniedPath = join(dir, 'denied', 'workload.sock');
    const deniedApi = await startWorkloadApi({ socketPath: deniedPath, source: denied, attestor, logger: silentLogger() });
    closers.push(() => deniedApi.close());

    return {
      endpoint: `unix://${socketPath}`,
      denied: { endpoint: `unix://${deniedPath}` },
      peers: peersCase(uid, goPeerId, expectedId),
      expectedId,
      hint,
      trustDomains: ['example.test', 'fed.test'],
      // What the Minter issues under a self-signed root: leaf + intermediate; the root is in the bundle.
      chainLength: 2,
      verifiedChainLength: 3,
      x509SvidTtl: 3600,
      jwtSvidTtl: 300,
      current: () => ({ serial: serialHex(new X509Certificate(identity.chain[0]!).serialNumber), notAfter: identity.notAfter }),
      rotate: async () => {
        identity = await source.rotate(expectedId);
      },
      close: closers.close,
    };
  } catch (err) {
    await closers.close();
    throw err;
  }
}

/**
 * The real thing: `anchorage server run` on a fresh SoftHSM2 token and
 * `anchorage agent run` attested with a join token, each its own process;
 * one entry for this process's uid and one for the go-spiffe peer's,
 * parented by the agent (harness.ts).
 */
async function startAgentTarget(dir: string): Promise<InteropTarget> {
  const uid = currentUid();
  const TD = 'go-interop.test';
  const expectedId = `spiffe://${TD}/interop/go-spiffe`;
  const goPeerId = `spiffe://${TD}/interop/go-peer`;
  const td = await startTrustDomain(dir, {
    trustDomain: TD,
    entries: [
      { spiffeId: expectedId, selectors: [`unix:uid:${uid}`], hint: 'interop' },
      { spiffeId: goPeerId, selectors: [`unix:uid:${GO_PEER_UID}`], hint: 'go-peer' },
    ],
  });
  const target: InteropTarget = {
    endpoint: td.endpoint,
    // Same socket, run as a uid without an entry: only root can start a process as another uid.
    denied:
      uid === 0
        ? { endpoint: td.endpoint, uid: NOBODY_UID }
        : { skip: `not root (uid ${uid}): the program cannot be run as uid ${NOBODY_UID}, which has no entry at the agent` },
    peers: peersCase(uid, goPeerId, expectedId),
    expectedId,
    hint: 'interop',
    trustDomains: [TD],
    chainLength: 2,
    verifiedChainLength: 3,
    x509SvidTtl: 3600,
    jwtSvidTtl: 300,
    rotate: async () => {
      target.hint = await td.rotate(0);
    },
    diagnostics: td.diagnostics,
    close: td.close,
  };
  return target;
}

const TARGETS: TargetSpec[] = [
  { name: 'in-process Workload API', start: startInProcessTarget },
  { name: 'anchorage agent run', start: startAgentTarget },
];

const toolchain = goToolchain();

/** The JSON line of test/interop/go/main.go, success or failure. */
interface GoOutput {
  ok: boolean;
  // success
  go_spiffe_version?: string;
  spiffe_id?: string;
  svid_count?: number;
  hint?: string;
  chain_length?: number;
  verified_chain_length?: number;
  serial?: string;
  not_after?: string;
  x509_bundle_trust_domains?: string[];
  x509_bundles_rpc_trust_domains?: string[];
  jwt_bundle_trust_domains?: string[];
  jwt_subject?: string;
  jwt_audience?: string[];
  jwt_expiry?: string;
  jwt_validated_subject?: string;
  jwt_wrong_audience_code?: string;
  rotation_watched?: boolean;
  rotation_seen?: boolean;
  rotated_spiffe_id?: string;
  rotated_serial?: string;
  rotated_not_after?: string;
  // failure
  step?: string;
  grpc_code?: string;
  error?: string;
}

/** The JSON line of `mtls-server` and `mtls-client` (test/interop/go/mtls.go). */
interface MtlsOutput {
  ok: boolean;
  mode: 'server' | 'client';
  spiffe_id?: string;
  authorized_id: string;
  addr?: string;
  peer_id?: string;
  tls_version?: string;
  received?: string;
  sent?: string;
  step?: string;
  error?: string;
  /** Set only when the failure is go-spiffe's authorizer refusing this peer. */
  refused_peer_id?: string;
}

interface RpcOutcome {
  code: string;
  message?: string;
  got?: string[];
}

/** The JSON line of `no-header` (test/interop/go/noheader.go). */
interface NoHeaderOutput {
  ok: boolean;
  with_header: Record<string, RpcOutcome>;
  without_header: Record<string, RpcOutcome>;
  step?: string;
  error?: string;
}

interface GoRun<T = GoOutput> extends RunResult {
  out: T;
}

function parseOutput<T = GoOutput>(r: RunResult): GoRun<T> {
  return { ...r, out: jsonLine<T>(r) };
}

const WORKLOAD_RPCS = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTSVID', 'FetchJWTBundles', 'ValidateJWTSVID'] as const;

// --- our Node client library's side of mTLS -----------------------------------------

/** How one connection of our Node client went. */
interface NodeClientRun {
  /** connect: connectMtls rejected; exchange: the connection failed after it; done: the reply line arrived. */
  phase: 'connect' | 'exchange' | 'done';
  peerId?: string;
  protocol?: string | null;
  reply?: string;
  error?: Error & { code?: string };
}

/** connectMtls to 127.0.0.1:port, sends `line`, reads one line back. Never rejects. */
async function nodeClient(source: X509Source, authorizer: Authorizer, port: number, line: string): Promise<NodeClientRun> {
  let socket: tls.TLSSocket;
  try {
    socket = await connectMtls(source, authorizer, { host: '127.0.0.1', port });
  } catch (err) {
    return { phase: 'connect', error: err as Error };
  }
  const base = { peerId: peerSpiffeId(socket)?.toString(), protocol: socket.getProtocol() };
  return new Promise((resolve) => {
    let buf = '';
    let settled = false;
    const done = (r: Omit<NodeClientRun, 'peerId' | 'protocol'>): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ ...base, ...r });
    };
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) done({ phase: 'done', reply: buf.slice(0, i) });
    });
    socket.on('error', (err: Error) => done({ phase: 'exchange', error: err }));
    socket.on('close', () => done({ phase: 'exchange', error: new Error(`connection closed before a reply line (got ${JSON.stringify(buf)})`) }));
    socket.setTimeout(20_000, () => done({ phase: 'exchange', error: new Error('no reply within 20 s') }));
    socket.write(`${line}\n`);
  });
}

/** A createMtlsServer on 127.0.0.1 that answers one line with `reply`, and what it saw. */
interface NodeServer {
  port: number;
  /** Authorized connections: who, and the line they sent. */
  accepted: { peerId: string | undefined; protocol: string | null; received: string }[];
  /** 'tlsClientError's: refusals by the guard, and TLS failures. */
  refusals: (Error & { code?: string })[];
  close(): Promise<void>;
}

async function nodeServer(source: X509Source, authorizer: Authorizer, reply: string): Promise<NodeServer> {
  const accepted: NodeServer['accepted'] = [];
  const refusals: NodeServer['refusals'] = [];
  const open = new Set<Socket>();
  const server = createMtlsServer(source, authorizer, {}, (socket) => {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      accepted.push({ peerId: peerSpiffeId(socket)?.toString(), protocol: socket.getProtocol(), received: buf.slice(0, i) });
      socket.end(`${reply}\n`);
    });
  });
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  server.on('tlsClientError', (err: Error) => refusals.push(err));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('interop: the mTLS server has no TCP address');
  return {
    port: address.port,
    accepted,
    refusals,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  };
}

/** Waits until `cond` holds (events of a peer that has already exited may still be on their way). */
async function eventually(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** Unix seconds of an RFC 3339 time printed by the Go program. */
function unixSeconds(rfc3339: string | undefined): number {
  const ms = Date.parse(rfc3339 ?? '');
  if (Number.isNaN(ms)) throw new Error(`interop: not a time: ${rfc3339}`);
  return ms / 1000;
}

// --- the suite -----------------------------------------------------------------------

describeWithToolchain('go-spiffe v2 against our Workload API', toolchain.unusable, () => {
  const results = interopRecorder('go-spiffe v2');
  let dir: string | undefined;
  let binary: string;
  /** Why the build failed; every test reports it (a failed hook alone counts as skips). */
  let buildError: unknown;

  beforeAll(async () => {
    try {
      if (toolchain.unusable !== undefined) throw new Error(`interop: ${toolchain.unusable}`);
      // 0755 all the way: the program also runs as other uids, and the agent's socket lives below.
      dir = mkdtempSync(join(tmpdir(), 'anchorage-interop-'));
      chmodSync(dir, 0o755);
      const started = Date.now();
      const cached = await cachedBinary(toolchain.version);
      // A copy where every uid can run it: the checkout may sit below a directory only we can enter.
      binary = join(dir, PROGRAM);
      copyFileSync(cached.path, binary);
      chmodSync(binary, 0o755);
      const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
      console.info(cached.built ? `interop: built the go-spiffe program in ${took}` : `interop: the go-spiffe program is up to date in ${cached.path} (${took})`);
    } catch (err) {
      buildError = err;
    }
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe.each(TARGETS.map((t) => [t.name, t] as const))('served by %s', (_name, spec) => {
    let target: InteropTarget | undefined;
    /** Why the target failed to start; every test reports it. */
    let setupError: unknown;

    beforeAll(async () => {
      if (buildError !== undefined) return;
      try {
        const targetDir = join(dir!, `target-${TARGETS.indexOf(spec)}`);
        mkdirSync(targetDir, { mode: 0o755 });
        chmodSync(targetDir, 0o755);
        const started = Date.now();
        target = await spec.start(targetDir);
        console.info(`interop: started ${spec.name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      } catch (err) {
        setupError = err;
      }
    }, 120_000);

    afterAll(async () => {
      await target?.close();
    }, 60_000);

    /** The target, once the program is built and the target started; otherwise the reason, as this test's failure. */
    const ready = (): InteropTarget => {
      if (buildError !== undefined) throw buildError;
      if (setupError !== undefined) throw setupError;
      return target!;
    };

    const runGo = async <T = GoOutput>(args: string[], opts: { uid?: number; onStderr?: (all: string) => void } = {}): Promise<GoRun<T>> =>
      parseOutput<T>(
        await run(binary, args, {
          env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: target!.endpoint },
          cwd: '/',
          uid: opts.uid,
          timeoutMs: 90_000,
          onStderr: opts.onStderr,
        }),
      );

    /** A failure message with the program's output and the target's diagnostics. */
    const explain = (r: RunResult): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}${target?.diagnostics?.() ?? ''}`;

    it('fetches, verifies and validates its X509-SVID, JWT-SVID and bundles', () =>
      results.check([...WORKLOAD_RPCS], async () => {
        const t = ready();
        const before = Date.now() / 1000;
        const r = await runGo(['-expect-id', t.expectedId, '-audience', AUDIENCE]);
        expect(r.code, explain(r)).toBe(0);
        expect(r.stderr).toBe('');
        const o = r.out;
        expect(o.ok).toBe(true);
        expect(o.go_spiffe_version).toBe(requiredGoSpiffeVersion());

        expect(o.spiffe_id).toBe(t.expectedId);
        expect(o.svid_count).toBe(1);
        expect(o.hint).toBe(t.hint);
        expect(o.chain_length).toBe(t.chainLength);
        expect(o.verified_chain_length).toBe(t.verifiedChainLength);
        const notAfter = unixSeconds(o.not_after);
        expect(notAfter).toBeGreaterThan(before);
        expect(notAfter).toBeLessThanOrEqual(before + t.x509SvidTtl + 5);
        const current = t.current?.();
        if (current) {
          expect(o.serial).toBe(current.serial);
          expect(notAfter).toBe(current.notAfter);
        }

        expect(o.x509_bundle_trust_domains).toEqual(t.trustDomains);
        expect(o.x509_bundles_rpc_trust_domains).toEqual(t.trustDomains);
        expect(o.jwt_bundle_trust_domains).toEqual(t.trustDomains);

        expect(o.jwt_subject).toBe(t.expectedId);
        expect(o.jwt_audience).toEqual([AUDIENCE]);
        const exp = unixSeconds(o.jwt_expiry);
        expect(exp).toBeGreaterThan(before);
        expect(exp).toBeLessThanOrEqual(before + t.jwtSvidTtl + 5);
        expect(o.jwt_validated_subject).toBe(t.expectedId);
        expect(o.jwt_wrong_audience_code).toBe('InvalidArgument');

        expect(o.rotation_watched).toBe(false);
        expect(o.rotation_seen).toBe(false);
      }));

    it('gets PERMISSION_DENIED where it has no entry, and says so', async (ctx) => {
      const denied = target?.denied;
      if (denied && 'skip' in denied) {
        console.warn(`interop: ${spec.name}: PERMISSION_DENIED case skipped: ${denied.skip}`);
        results.record('PermissionDenied (no identity)', 'skip');
        ctx.skip(denied.skip);
        return;
      }
      await results.check(['PermissionDenied (no identity)'], async () => {
        const t = ready();
        const d = t.denied as Exclude<DeniedCase, { skip: string }>;
        const r = await runGo(['-socket', d.endpoint, '-expect-id', t.expectedId, '-audience', AUDIENCE], { uid: d.uid });
        expect(r.code, explain(r)).toBe(1);
        expect(r.out).toMatchObject({ ok: false, step: 'fetch_x509_context', grpc_code: 'PermissionDenied' });
        expect(r.stderr).toContain('PermissionDenied');
      });
    });

    it('gets INVALID_ARGUMENT from every RPC called without the security header (raw gRPC, go-spiffe stubs)', () =>
      results.check(['InvalidArgument (no header)'], async () => {
        const t = ready();
        const refused: RpcOutcome = { code: 'InvalidArgument', message: NO_HEADER_MESSAGE };
        const allRefused = Object.fromEntries(WORKLOAD_RPCS.map((rpc) => [rpc, refused]));

        // The same calls with the header are answered: nothing but the header is missing.
        const r = await runGo<NoHeaderOutput>(['no-header', '-audience', AUDIENCE]);
        expect(r.code, explain(r)).toBe(0);
        expect(r.out.with_header).toEqual({
          FetchX509SVID: { code: 'OK', got: [t.expectedId] },
          FetchX509Bundles: { code: 'OK', got: t.trustDomains.map((td) => `spiffe://${td}`) },
          FetchJWTSVID: { code: 'OK', got: [t.expectedId] },
          FetchJWTBundles: { code: 'OK', got: t.trustDomains.map((td) => `spiffe://${td}`) },
          ValidateJWTSVID: { code: 'OK', got: [t.expectedId] },
        });
        expect(r.out.without_header).toEqual(allRefused);

        // A caller without an entry: the header is checked before the caller is attested.
        const d = t.denied;
        if ('skip' in d) return;
        const nobody = await runGo<NoHeaderOutput>(['no-header', '-socket', d.endpoint, '-audience', AUDIENCE], { uid: d.uid });
        expect(nobody.code, explain(nobody)).toBe(0);
        for (const rpc of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTSVID', 'FetchJWTBundles']) {
          expect(nobody.out.with_header[rpc]?.code, `${rpc} with the header, no entry`).toBe('PermissionDenied');
        }
        expect(nobody.out.without_header).toEqual(allRefused);
      }));

    describe('mutual TLS with our Node client library', () => {
      /** This process's side: an X509Source on the target (nodeId). */
      let source: X509Source | undefined;
      let sourceError: unknown;
      const WRONG_SUFFIX = '/interop/someone-else';

      beforeAll(async () => {
        const peers = target?.peers;
        if (!peers || 'skip' in peers) return;
        try {
          source = await X509Source.create({ address: target!.endpoint, timeoutMs: 30_000 });
        } catch (err) {
          sourceError = err;
        }
      }, 60_000);

      afterAll(async () => {
        await source?.close();
      });

      /** A test of one direction; the peers and our source, or skipped (recorded as such) where they cannot run. */
      const mtlsIt = (name: string, rpc: 'mTLS go→node' | 'mTLS node→go', body: (p: MtlsPeers, src: X509Source, wrongId: string) => Promise<void>): void => {
        it(
          name,
          async (ctx) => {
            const peers = target?.peers;
            if (peers && 'skip' in peers) {
              console.warn(`interop: ${spec.name}: mTLS case skipped: ${peers.skip}`);
              results.record(rpc, 'skip');
              ctx.skip(peers.skip);
              return;
            }
            await results.check([rpc], async () => {
              const p = ready().peers as MtlsPeers;
              if (sourceError !== undefined) throw sourceError;
              // Our side holds its own identity, not the Go peer's.
              expect(source!.svid().spiffeId.toString()).toBe(p.nodeId);
              const td = p.nodeId.slice(0, p.nodeId.indexOf('/', 'spiffe://'.length));
              await body(p, source!, `${td}${WRONG_SUFFIX}`);
            });
          },
          60_000,
        );
      };

      /**
       * Runs the go-spiffe server (mtls-server, as the Go peer's uid) and,
       * once it listens, `client` against it; both results.
       */
      const goServer = async <C>(p: MtlsPeers, authorize: string, reply: string, client: (port: number) => Promise<C>): Promise<{ go: GoRun<MtlsOutput>; node: C }> => {
        let node: Promise<C> | undefined;
        const go = await runGo<MtlsOutput>(['mtls-server', '-authorize-id', authorize, '-reply', reply], {
          uid: p.goUid,
          onStderr: (all) => {
            const m = LISTENING_MARKER.exec(all);
            if (m && node === undefined) node = client(Number(m[1]));
          },
        });
        if (node === undefined) throw new Error(`interop: the go-spiffe server never listened:\n${explain(go)}`);
        return { go, node: await node };
      };

      /** Runs the go-spiffe client (mtls-client, as the Go peer's uid) against our server. */
      const goClient = (p: MtlsPeers, authorize: string, port: number, message: string): Promise<GoRun<MtlsOutput>> =>
        runGo<MtlsOutput>(['mtls-client', '-authorize-id', authorize, '-connect', `127.0.0.1:${port}`, '-message', message], { uid: p.goUid });

      // --- node→go: our Node client dials the go-spiffe server ---

      mtlsIt('node→go: a go-spiffe server and our Node client authorize each other by exact SPIFFE ID', 'mTLS node→go', async (p, src) => {
        const { go, node } = await goServer(p, p.nodeId, 'pong from go-spiffe', (port) => nodeClient(src, authorizeId(p.goId), port, 'ping from node'));
        expect(go.code, explain(go)).toBe(0);
        expect(go.out).toEqual({
          ok: true,
          mode: 'server',
          spiffe_id: p.goId,
          authorized_id: p.nodeId,
          addr: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
          peer_id: p.nodeId,
          tls_version: 'TLS 1.3',
          received: 'ping from node',
          sent: 'pong from go-spiffe',
        });
        expect(node.error).toBeUndefined();
        expect(node).toEqual({ phase: 'done', peerId: p.goId, protocol: 'TLSv1.3', reply: 'pong from go-spiffe' });
      });

      mtlsIt('node→go: our Node client refuses a go-spiffe server with another SPIFFE ID', 'mTLS node→go', async (p, src, wrongId) => {
        const { go, node } = await goServer(p, p.nodeId, 'pong from go-spiffe', (port) => nodeClient(src, authorizeId(wrongId), port, 'ping from node'));
        // connectMtls rejects with the authorizer's refusal, naming the server it saw.
        expect(node.phase, `${node.error?.stack}`).toBe('connect');
        expect(isAnchorageError(node.error, 'permission_denied'), `${node.error?.stack}`).toBe(true);
        expect(node.error?.message).toBe(`spiffetls: peer ${p.goId} is not authorized: want ${wrongId}`);
        // The go-spiffe server did not refuse us: it lost the connection (Node closes it without a TLS
        // alert, before its Finished got out, so Go sees EOF in the handshake) and got no line.
        expect(go.code, explain(go)).toBe(1);
        expect(go.out).toMatchObject({ ok: false, mode: 'server', spiffe_id: p.goId, authorized_id: p.nodeId });
        expect(['mtls_handshake', 'exchange'], explain(go)).toContain(go.out.step);
        expect(go.out.error, explain(go)).toMatch(/EOF|connection reset by peer/);
        expect(go.out.refused_peer_id).toBeUndefined();
        expect(go.out.received).toBeUndefined();
      });

      mtlsIt('node→go: a go-spiffe server refuses our Node client with another SPIFFE ID', 'mTLS node→go', async (p, src, wrongId) => {
        const { go, node } = await goServer(p, wrongId, 'pong from go-spiffe', (port) => nodeClient(src, authorizeId(p.goId), port, 'ping from node'));
        // go-spiffe's tlsconfig.AuthorizeID refused exactly our SPIFFE ID during the handshake.
        expect(go.code, explain(go)).toBe(1);
        expect(go.out).toMatchObject({ ok: false, mode: 'server', spiffe_id: p.goId, authorized_id: wrongId, step: 'mtls_handshake', refused_peer_id: p.nodeId });
        expect(go.out.error).toBe(`unexpected ID "${p.nodeId}"`);
        expect(go.out.peer_id).toBeUndefined();
        // Our client got no reply; the server's alert is what ended it.
        expect(node.reply).toBeUndefined();
        expect(node.error?.code, `${node.error?.stack}`).toBe('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE');
      });

      // --- go→node: the go-spiffe client dials our Node server ---

      mtlsIt('go→node: a go-spiffe client and our Node server authorize each other by exact SPIFFE ID', 'mTLS go→node', async (p, src) => {
        const server = await nodeServer(src, authorizeId(p.goId), 'pong from node');
        try {
          const go = await goClient(p, p.nodeId, server.port, 'ping from go-spiffe');
          expect(go.code, explain(go)).toBe(0);
          expect(go.out).toEqual({
            ok: true,
            mode: 'client',
            spiffe_id: p.goId,
            authorized_id: p.nodeId,
            addr: `127.0.0.1:${server.port}`,
            peer_id: p.nodeId,
            tls_version: 'TLS 1.3',
            received: 'pong from node',
            sent: 'ping from go-spiffe',
          });
          expect(server.accepted).toEqual([{ peerId: p.goId, protocol: 'TLSv1.3', received: 'ping from go-spiffe' }]);
          expect(server.refusals).toEqual([]);
        } finally {
          await server.close();
        }
      });

      mtlsIt('go→node: a go-spiffe client refuses our Node server with another SPIFFE ID', 'mTLS go→node', async (p, src, wrongId) => {
        const server = await nodeServer(src, authorizeId(p.goId), 'pong from node');
        try {
          const go = await goClient(p, wrongId, server.port, 'ping from go-spiffe');
          // go-spiffe's tlsconfig.AuthorizeID refused exactly our SPIFFE ID during the handshake.
          expect(go.code, explain(go)).toBe(1);
          expect(go.out).toMatchObject({ ok: false, mode: 'client', spiffe_id: p.goId, authorized_id: wrongId, step: 'mtls_dial', refused_peer_id: p.nodeId });
          expect(go.out.error).toBe(`spiffetls: unable to dial: unexpected ID "${p.nodeId}"`);
          expect(go.out.peer_id).toBeUndefined();
          // Our server saw the client's alert, and no connection got through.
          await eventually(() => server.refusals.length > 0);
          expect(server.accepted).toEqual([]);
          expect(server.refusals.map((e) => e.code)).toEqual(['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE']);
        } finally {
          await server.close();
        }
      });

      mtlsIt('go→node: our Node server refuses a go-spiffe client with another SPIFFE ID', 'mTLS go→node', async (p, src, wrongId) => {
        const server = await nodeServer(src, authorizeId(wrongId), 'pong from node');
        try {
          const go = await goClient(p, p.nodeId, server.port, 'ping from go-spiffe');
          // Our guard refused exactly the Go peer's SPIFFE ID.
          await eventually(() => server.refusals.length > 0);
          expect(server.accepted).toEqual([]);
          expect(server.refusals).toHaveLength(1);
          const refusal = server.refusals[0];
          expect(isAnchorageError(refusal, 'permission_denied'), `${refusal?.stack}`).toBe(true);
          expect(refusal?.message).toBe(`spiffetls: peer ${p.goId} is not authorized: want ${wrongId}`);
          // With TLS 1.3 the client's handshake completed; then the connection closed without a reply.
          expect(go.code, explain(go)).toBe(1);
          expect(go.out).toMatchObject({ ok: false, mode: 'client', spiffe_id: p.goId, peer_id: p.nodeId, step: 'exchange' });
          expect(go.out.error, explain(go)).toMatch(/^reading the server's line \(got ""\): .*(EOF|connection reset by peer)$/);
          expect(go.out.refused_peer_id).toBeUndefined();
          expect(go.out.received).toBeUndefined();
        } finally {
          await server.close();
        }
      });
    });

    it('sees a rotated X509-SVID through WatchX509Context', () =>
      results.check(['Watch (rotation)'], async () => {
        const t = ready();
        const first = t.current?.();
        let rotation: Promise<void> | undefined;
        const r = await runGo(['-expect-id', t.expectedId, '-audience', AUDIENCE, '-watch-rotation', '-watch-timeout', '60s'], {
          onStderr: (stderr) => {
            if (rotation === undefined && stderr.includes(READY_MARKER)) {
              rotation = t.rotate();
              rotation.catch(() => {}); // awaited below, once the program has ended
            }
          },
        });
        expect(rotation, `the program never reported "${READY_MARKER}":\n${explain(r)}`).toBeDefined();
        await rotation;
        expect(r.code, explain(r)).toBe(0);
        const o = r.out;
        expect(o.ok).toBe(true);
        expect(o.rotation_watched).toBe(true);
        expect(o.rotation_seen).toBe(true);
        expect(o.rotated_spiffe_id).toBe(t.expectedId);
        expect(o.rotated_serial).toMatch(/^[0-9a-f]+$/);
        expect(o.rotated_serial).not.toBe(o.serial);
        expect(unixSeconds(o.rotated_not_after)).toBeGreaterThanOrEqual(unixSeconds(o.not_after));
        if (first) expect(o.serial).toBe(first.serial);
        const now = t.current?.();
        if (now) {
          expect(o.rotated_serial).toBe(now.serial);
          expect(unixSeconds(o.rotated_not_after)).toBe(now.notAfter);
        }

        // A new client gets the rotated SVID, with the entry as it is now (the agent target rotates by changing the hint).
        const after = await runGo(['-expect-id', t.expectedId, '-audience', AUDIENCE]);
        expect(after.code, explain(after)).toBe(0);
        expect(after.out.serial).toBe(o.rotated_serial);
        expect(after.out.hint).toBe(t.hint);
      }), 120_000);
  });
});
