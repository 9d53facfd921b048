// Interop: a real SPIFFE client, go-spiffe v2, fetching from our Workload API.
//
// test/interop/go/ is a small Go program (its own module, go.sum committed)
// that does what a Go workload does with go-spiffe's workloadapi package and
// checks every answer with go-spiffe's own verifiers; it prints one JSON line.
// This file builds it once and runs it against a target from startTarget().
//
// Without a Go toolchain the suite is skipped with a warning, except in CI
// (CI=true), where it fails: there it must run.
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/log.js';
import { UnixWorkloadAttestor } from '../../node-agent/attestor/unix.js';
import { startWorkloadApi } from '../../workload-api/server.js';
import { startTestCa, TestIdentitySource, type TestCa } from '../../workload-api/testing.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const GO_DIR = join(HERE, 'go');
const AUDIENCE = 'spiffe://example.test/interop-audience';
const READY_MARKER = 'interop: ready-for-rotation';
const IN_CI = process.env.CI === 'true';

// --- the target --------------------------------------------------------------------

/**
 * What the go-spiffe program is run against, and what it must find there.
 * Today a Workload API server in this process over a TestIdentitySource;
 * to run against the real agent, replace startTarget() and nothing else.
 */
interface InteropTarget {
  /** `unix:///…` of a Workload API where this process has exactly one identity. */
  endpoint: string;
  /** `unix:///…` of a Workload API where this process has no entry. */
  deniedEndpoint: string;
  expectedId: string;
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
  close(): Promise<void>;
}

/** Lowercase hex without leading zeros, as go-spiffe's program prints serials. */
function serialHex(s: string): string {
  return BigInt(`0x${s}`).toString(16);
}

async function startTarget(dir: string): Promise<InteropTarget> {
  const uid = process.getuid?.();
  if (uid === undefined) throw new Error('interop: process.getuid() is not available on this platform');
  const expectedId = 'spiffe://example.test/interop/go-spiffe';
  const hint = 'interop';
  const closers: (() => Promise<void> | void)[] = [];
  const close = async (): Promise<void> => {
    for (const c of closers.reverse()) await c();
  };
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
      deniedEndpoint: `unix://${deniedPath}`,
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
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

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
if (unusable !== undefined && !IN_CI) console.warn(`interop: ${unusable}; go-spiffe interop skipped`);

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (the Workload API under test lives in this process). */
function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number; onStderr?: (all: string) => void },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(stderr);
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

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
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 1) {
    throw new Error(`interop: expected one JSON line on stdout, got ${lines.length} (exit ${r.code}, signal ${r.signal}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  return { ...r, out: JSON.parse(lines[0]!) as GoOutput };
}

/** Unix seconds of an RFC 3339 time printed by the Go program. */
function unixSeconds(rfc3339: string | undefined): number {
  const ms = Date.parse(rfc3339 ?? '');
  if (Number.isNaN(ms)) throw new Error(`interop: not a time: ${rfc3339}`);
  return ms / 1000;
}

// --- the suite -----------------------------------------------------------------------

// In CI a missing or too old toolchain is a failed test, not a skip (and not
// only a failed hook, which vitest's summary would count as skipped tests).
if (unusable !== undefined && IN_CI) {
  describe('go-spiffe v2 interop prerequisites', () => {
    it('has a usable Go toolchain (required when CI=true)', () => {
      throw new Error(`interop: ${unusable}, and CI=true: the go-spiffe interop suite must run in CI (install Go ${requiredGoVersion()} or newer)`);
    });
  });
}

describe.skipIf(unusable !== undefined)('go-spiffe v2 against our Workload API', () => {
  let dir: string | undefined;
  let binary: string;
  let target: InteropTarget | undefined;
  /** Why the build or the target failed; every test reports it (a failed hook alone counts as skips). */
  let setupError: unknown;

  beforeAll(async () => {
    try {
      dir = mkdtempSync(join(tmpdir(), 'anchorage-interop-'));
      chmodSync(dir, 0o755);
      binary = join(dir, 'gospiffe-interop');
      const started = Date.now();
      // -buildvcs=false: the module sits inside this repository; its VCS state is irrelevant and needs git.
      const build = await run('go', ['build', '-buildvcs=false', '-o', binary, '.'], { cwd: GO_DIR, env: goEnv(), timeoutMs: 290_000 });
      if (build.code !== 0) {
        throw new Error(`interop: go build failed (exit ${build.code}, signal ${build.signal}):\n${build.stderr}${build.stdout}`);
      }
      console.info(`interop: built the go-spiffe program in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      target = await startTarget(dir);
    } catch (err) {
      setupError = err;
    }
  }, 300_000);

  afterAll(async () => {
    await target?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The target, once the program is built and the target started; otherwise the reason, as this test's failure. */
  const ready = (): InteropTarget => {
    if (setupError !== undefined) throw setupError;
    return target!;
  };

  const runGo = async (args: string[], onStderr?: (all: string) => void): Promise<GoRun> =>
    parseOutput(await run(binary, args, { env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: target!.endpoint }, timeoutMs: 90_000, onStderr }));

  it('fetches, verifies and validates its X509-SVID, JWT-SVID and bundles', async () => {
    const t = ready();
    const before = Date.now() / 1000;
    const r = await runGo(['-expect-id', t.expectedId, '-audience', AUDIENCE]);
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
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

  it('gets PERMISSION_DENIED where it has no entry, and says so', async () => {
    const t = ready();
    const r = await runGo(['-socket', t.deniedEndpoint, '-expect-id', t.expectedId, '-audience', AUDIENCE]);
    expect(r.code).toBe(1);
    expect(r.out).toMatchObject({ ok: false, step: 'fetch_x509_context', grpc_code: 'PermissionDenied' });
    expect(r.stderr).toContain('PermissionDenied');
  });

  it('sees a rotated X509-SVID through WatchX509Context', async () => {
    const t = ready();
    const first = t.current?.();
    let rotation: Promise<void> | undefined;
    const r = await runGo(['-expect-id', t.expectedId, '-audience', AUDIENCE, '-watch-rotation', '-watch-timeout', '60s'], (stderr) => {
      if (rotation === undefined && stderr.includes(READY_MARKER)) {
        rotation = t.rotate();
        rotation.catch(() => {}); // awaited below, once the program has ended
      }
    });
    expect(rotation, `the program never reported "${READY_MARKER}":\n${r.stderr}`).toBeDefined();
    await rotation;
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
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
  });
});
