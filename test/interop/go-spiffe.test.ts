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
// Without a Go toolchain the suite is skipped with a warning, except in CI
// (CI=true), where it fails: there it must run.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/log.js';
import { UnixWorkloadAttestor } from '../../node-agent/attestor/unix.js';
import { startWorkloadApi } from '../../workload-api/server.js';
import { startTestCa, TestIdentitySource, type TestCa } from '../../workload-api/testing.js';
import { closerList, currentUid, describeWithToolchain, jsonLine, NOBODY_UID, run, startTrustDomain, type RunResult } from './harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const GO_DIR = join(HERE, 'go');
const AUDIENCE = 'spiffe://example.test/interop-audience';
const READY_MARKER = 'interop: ready-for-rotation';

// --- the targets -------------------------------------------------------------------

/** Where the program gets PERMISSION_DENIED: an endpoint, and the uid/gid to run it as (default: ours). */
type DeniedCase = { endpoint: string; uid?: number } | { skip: string };

/** What the go-spiffe program is run against, and what it must find there. */
interface InteropTarget {
  /** `unix:///…` of a Workload API where this process has exactly one identity. */
  endpoint: string;
  /** How to get PERMISSION_DENIED there, or why that case cannot run here. */
  denied: DeniedCase;
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
 * one entry for this process's uid, parented by the agent (harness.ts).
 */
async function startAgentTarget(dir: string): Promise<InteropTarget> {
  const uid = currentUid();
  const TD = 'go-interop.test';
  const expectedId = `spiffe://${TD}/interop/go-spiffe`;
  const td = await startTrustDomain(dir, { trustDomain: TD, entries: [{ spiffeId: expectedId, selectors: [`unix:uid:${uid}`], hint: 'interop' }] });
  const target: InteropTarget = {
    endpoint: td.endpoint,
    // Same socket, run as a uid without an entry: only root can start a process as another uid.
    denied:
      uid === 0
        ? { endpoint: td.endpoint, uid: NOBODY_UID }
        : { skip: `not root (uid ${uid}): the program cannot be run as uid ${NOBODY_UID}, which has no entry at the agent` },
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

// --- the Go toolchain and the program -------------------------------------------------

/** The `go` line of test/interop/go/go.mod, e.g. "1.24.0". */
function requiredGoVersion(): string {
  const m = /^go\s+(\S+)\s*$/m.exec(readFileSync(join(GO_DIR, 'go.mod'), 'utf8'));
  if (!m) throw new Error('interop: test/interop/go/go.mod has no go line');
  return m[1]!;
}

/** The go-spiffe version go.mod asks for, e.g. "v2.9.0". */
function requiredGoSpiffeVersion(): string {
  const m = /github\.com\/spiffe\/go-spiffe\/v2 (v\S+)/.exec(readFileSync(join(GO_DIR, 'go.mod'), 'utf8'));
  if (!m) throw new Error('interop: test/interop/go/go.mod does not require go-spiffe v2');
  return m[1]!;
}

function versionAtLeast(have: string, need: string): boolean {
  const parse = (v: string): number[] => v.replace(/^go/, '').split(/[^0-9]+/).filter(Boolean).map(Number);
  const a = parse(have);
  const b = parse(need);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/**
 * The environment for `go`: default caches (so repeated runs are fast), no
 * automatic toolchain download, and caches under the temp dir only when the
 * machine has no HOME for Go's defaults.
 */
function goEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GOTOOLCHAIN: 'local' };
  // Go's own installer puts it in /usr/local/go; a CI shell may not have that on PATH.
  const goRoot = '/usr/local/go/bin';
  if (existsSync(join(goRoot, 'go')) && !(env.PATH ?? '').split(':').includes(goRoot)) env.PATH = `${env.PATH ?? ''}:${goRoot}`;
  if (!env.HOME && !env.XDG_CACHE_HOME && !env.GOCACHE) env.GOCACHE = join(tmpdir(), 'anchorage-go-cache', 'build');
  if (!env.HOME && !env.GOPATH && !env.GOMODCACHE) env.GOMODCACHE = join(tmpdir(), 'anchorage-go-cache', 'mod');
  return env;
}

/** Why the suite cannot run here, or undefined when it can. */
function goUnusable(): string | undefined {
  const r = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: goEnv(), timeout: 30_000 });
  if (r.error) return 'Go toolchain not found';
  if (r.status !== 0) return `"go env GOVERSION" failed: ${r.stderr.trim()}`;
  const have = r.stdout.trim();
  const need = requiredGoVersion();
  if (!versionAtLeast(have, need)) return `${have} is older than go${need}, which go-spiffe ${requiredGoSpiffeVersion()} needs`;
  return undefined;
}

const unusable = goUnusable();

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

interface GoRun extends RunResult {
  out: GoOutput;
}

function parseOutput(r: RunResult): GoRun {
  return { ...r, out: jsonLine<GoOutput>(r) };
}

/** Unix seconds of an RFC 3339 time printed by the Go program. */
function unixSeconds(rfc3339: string | undefined): number {
  const ms = Date.parse(rfc3339 ?? '');
  if (Number.isNaN(ms)) throw new Error(`interop: not a time: ${rfc3339}`);
  return ms / 1000;
}

// --- the suite -----------------------------------------------------------------------

describeWithToolchain('go-spiffe v2 against our Workload API', unusable, () => {
  let dir: string | undefined;
  let binary: string;
  /** Why the build failed; every test reports it (a failed hook alone counts as skips). */
  let buildError: unknown;

  beforeAll(async () => {
    try {
      // 0755 all the way: the program also runs as another uid, and the agent's socket lives below.
      dir = mkdtempSync(join(tmpdir(), 'anchorage-interop-'));
      chmodSync(dir, 0o755);
      binary = join(dir, 'gospiffe-interop');
      const started = Date.now();
      // -buildvcs=false: the module sits inside this repository; its VCS state is irrelevant and needs git.
      const build = await run('go', ['build', '-buildvcs=false', '-o', binary, '.'], { cwd: GO_DIR, env: goEnv(), timeoutMs: 290_000 });
      if (build.code !== 0) {
        throw new Error(`interop: go build failed (exit ${build.code}, signal ${build.signal}):\n${build.stderr}${build.stdout}`);
      }
      chmodSync(binary, 0o755);
      console.info(`interop: built the go-spiffe program in ${((Date.now() - started) / 1000).toFixed(1)} s`);
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

    const runGo = async (args: string[], opts: { uid?: number; onStderr?: (all: string) => void } = {}): Promise<GoRun> =>
      parseOutput(
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

    it('fetches, verifies and validates its X509-SVID, JWT-SVID and bundles', async () => {
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
    });

    it('gets PERMISSION_DENIED where it has no entry, and says so', async (ctx) => {
      const t = ready();
      const denied = t.denied;
      if ('skip' in denied) {
        console.warn(`interop: ${spec.name}: PERMISSION_DENIED case skipped: ${denied.skip}`);
        ctx.skip(denied.skip);
        return;
      }
      const r = await runGo(['-socket', denied.endpoint, '-expect-id', t.expectedId, '-audience', AUDIENCE], { uid: denied.uid });
      expect(r.code, explain(r)).toBe(1);
      expect(r.out).toMatchObject({ ok: false, step: 'fetch_x509_context', grpc_code: 'PermissionDenied' });
      expect(r.stderr).toContain('PermissionDenied');
    });

    it('sees a rotated X509-SVID through WatchX509Context', async () => {
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
    }, 120_000);
  });
});
