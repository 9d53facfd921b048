// Shared pieces of the interop suites (test/interop/*.test.ts): a real trust
// domain to run a client library against, child processes that do not block
// the event loop, toolchain gating (skip on a developer's machine, fail in
// CI), the build cache, and the results behind the README's interop table.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, it } from 'vitest';
import { REPO } from '../helpers/process.js';

// A real trust domain (server + agent) lives in test/helpers/trust-domain.ts; re-exported for the suites here.
export { closerList, startTrustDomain, waitForSvid, type EntrySpec, type RealTrustDomain, type TrustDomainOptions } from '../helpers/trust-domain.js';

export const INTEROP_DIR = dirname(fileURLToPath(import.meta.url));
export const IN_CI = process.env.CI === 'true';
/** A uid (and gid) with no entry at the agent; a program can only be run as it by root. */
export const NOBODY_UID = 65534;

/** Gitignored: built interop programs (Go binary, cargo target dir, Maven output) live here between runs. */
export const BUILD_CACHE = join(INTEROP_DIR, '.cache');

/** A directory in the build cache for one toolchain, created on first use. */
export function cacheDir(name: string): string {
  const d = join(BUILD_CACHE, name);
  mkdirSync(d, { recursive: true });
  return d;
}

export function currentUid(): number {
  const uid = process.getuid?.();
  if (uid === undefined) throw new Error('interop: process.getuid() is not available on this platform');
  return uid;
}

/** A fresh 0755 temp dir (programs also run as another uid and must reach the socket below it). */
export function openDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// --- child processes -----------------------------------------------------------------

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (a Workload API under test may live in this process). */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; timeoutMs: number; onStderr?: (all: string) => void; onStdout?: (all: string) => void },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      // gid = uid, as for nobody (65534:65534).
      ...(opts.uid !== undefined && { uid: opts.uid, gid: opts.uid }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      opts.onStdout?.(stdout);
    });
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

/** The one JSON line a program printed on stdout, or an error carrying all it printed. */
export function jsonLine<T>(r: RunResult): T {
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 1) {
    throw new Error(`interop: expected one JSON line on stdout, got ${lines.length} (exit ${r.code}, signal ${r.signal}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  return JSON.parse(lines[0]!) as T;
}

// --- toolchains ----------------------------------------------------------------------

/**
 * describe() for a suite that needs a toolchain. `unusable` is why it cannot
 * run here (undefined when it can). Off CI the suite is skipped with that one
 * line; in CI a failing test says so instead (a skip there would hide a
 * missing install step).
 */
export function describeWithToolchain(suite: string, unusable: string | undefined, body: () => void): void {
  if (unusable !== undefined && !IN_CI) console.warn(`interop: ${unusable}; ${suite} skipped`);
  if (unusable !== undefined && IN_CI) {
    describe(`${suite} prerequisites`, () => {
      it('has its toolchain (required when CI=true)', () => {
        throw new Error(`interop: ${unusable}, and CI=true: the ${suite} suite must run in CI`);
      });
    });
  }
  describe.skipIf(unusable !== undefined)(suite, body);
}

// --- the README table ----------------------------------------------------------------

/** Where each suite writes what passed, for scripts/interop-table.mjs. */
export const RESULTS_DIR = join(REPO, '.test-results', 'interop');

export type Outcome = 'pass' | 'fail' | 'skip';

/**
 * Records, per client library, the outcome of each RPC (or check) a test
 * exercised; written when the suite ends. The README's table is made from
 * these files by scripts/interop-table.mjs.
 */
export function interopRecorder(library: string): { record(rpc: string, outcome: Outcome): void; check<T>(rpcs: string[], fn: () => Promise<T>): Promise<T> } {
  const outcomes = new Map<string, Outcome>();
  const record = (rpc: string, outcome: Outcome): void => {
    // One failure for an RPC anywhere in the suite makes it a failure.
    if (outcomes.get(rpc) === 'fail') return;
    if (outcomes.get(rpc) === 'pass' && outcome === 'skip') return;
    outcomes.set(rpc, outcome);
  };
  afterAll(() => {
    if (outcomes.size === 0) return;
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `${library.replace(/[^a-zA-Z0-9_.-]/g, '_')}.json`);
    // A filtered run (-t) records only what it ran: what it did not run keeps its last outcome.
    let earlier: Record<string, Outcome> = {};
    try {
      earlier = (JSON.parse(readFileSync(file, 'utf8')) as { results: Record<string, Outcome> }).results;
    } catch {
      /* first run */
    }
    const results = { ...earlier, ...Object.fromEntries(outcomes) };
    writeFileSync(file, `${JSON.stringify({ library, at: new Date().toISOString(), results }, null, 2)}\n`);
  });
  return {
    record,
    /** Runs fn; every RPC in `rpcs` is recorded as passed if it returns and failed if it throws. */
    async check(rpcs, fn) {
      try {
        const v = await fn();
        for (const r of rpcs) record(r, 'pass');
        return v;
      } catch (err) {
        for (const r of rpcs) record(r, 'fail');
        throw err;
      }
    },
  };
}

