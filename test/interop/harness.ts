// Shared pieces of the interop suites (test/interop/*.test.ts): a real trust
// domain to run a client library against, child processes that do not block
// the event loop, toolchain gating (skip on a developer's machine, fail in
// CI), Go and Python toolchains, the build cache, and the results behind the
// README's interop table.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

/**
 * A build (or install) in the build cache, redone only when what it is made
 * from changes. `stampInputs` (pin files, sources, toolchain versions) are
 * hashed into the stamp file in `dir`; when it matches and every file of
 * `products` is there, the build is reused. Otherwise `dir` is emptied and
 * `build` fills it; the stamp is written last, so a build cut short is
 * redone. Resolves to whether it built now.
 */
export async function cachedBuild(dir: string, stampInputs: (string | Uint8Array)[], build: () => Promise<void>, products: string[] = []): Promise<boolean> {
  const h = createHash('sha256');
  for (const part of stampInputs) {
    const bytes = typeof part === 'string' ? Buffer.from(part) : part;
    h.update(`${bytes.length}:`);
    h.update(bytes);
  }
  const stamp = h.digest('hex');
  const stampFile = join(dir, '.anchorage-stamp');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stamp && products.every((p) => existsSync(p))) return false;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await build();
  writeFileSync(stampFile, `${stamp}\n`);
  return true;
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

/** Whether version `have` is at least `need`, comparing their runs of digits as numbers ("go1.24.1" vs "1.24", "3.6.3"). */
export function versionAtLeast(have: string, need: string): boolean {
  const parse = (v: string): number[] => v.split(/[^0-9]+/).filter(Boolean).map(Number);
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
 * automatic toolchain download, go.mod and go.sum never rewritten, and caches
 * in the build cache only when the machine has no HOME for Go's defaults.
 */
export function goEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };
  // Go's own installer puts it in /usr/local/go; a CI shell may not have that on PATH.
  const goRoot = '/usr/local/go/bin';
  if (existsSync(join(goRoot, 'go')) && !(env.PATH ?? '').split(':').includes(goRoot)) env.PATH = `${env.PATH ?? ''}:${goRoot}`;
  if (!env.HOME && !env.XDG_CACHE_HOME && !env.GOCACHE) env.GOCACHE = join(cacheDir('go-build'), 'build');
  if (!env.HOME && !env.GOPATH && !env.GOMODCACHE) env.GOMODCACHE = join(cacheDir('go-build'), 'mod');
  return env;
}

/** Python's environment (plus `extra`): nothing from the caller's Python setup leaks in, pip never asks. */
export function pythonEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONNOUSERSITE: '1', PYTHONDONTWRITEBYTECODE: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', ...extra };
  for (const k of ['PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV', 'PYTHONSTARTUP']) delete env[k];
  return env;
}

export interface PythonInfo {
  /** The interpreter's real path (not a pyenv shim). */
  executable: string;
  version: string;
  stdlib: string;
}

export type PythonChoice =
  | {
      python: PythonInfo;
      unusable?: undefined;
      /** With reachableByOthers: why no interpreter here could be run as uid 65534 (`python` is then the first usable one). */
      notForNobody?: string;
    }
  /** Why the suite cannot run here. */
  | { python?: undefined; unusable: string; notForNobody?: undefined };

const PYTHON_PROBE = `
import json, os, sys, sysconfig
try:
    import ensurepip, venv
    venv_ok = True
except ImportError as e:
    venv_ok = str(e)
print(json.dumps({"executable": os.path.realpath(sys.executable), "version": ".".join(map(str, sys.version_info[:3])),
                  "stdlib": os.path.realpath(sysconfig.get_paths()["stdlib"]), "venv": venv_ok}))
`;

/** The interpreter behind `cmd`, or why it cannot be used. */
function probePython(cmd: string, min: string): PythonInfo | string {
  const r = spawnSync(cmd, ['-c', PYTHON_PROBE], { encoding: 'utf8', env: pythonEnv(), timeout: 30_000 });
  if (r.error) return `${cmd}: not found`;
  if (r.status !== 0) return `${cmd}: exit ${r.status}: ${r.stderr.trim().split('\n').pop() ?? ''}`;
  let p: PythonInfo & { venv: true | string };
  try {
    p = JSON.parse(r.stdout.trim()) as PythonInfo & { venv: true | string };
  } catch {
    return `${cmd}: printed ${JSON.stringify(r.stdout.slice(0, 200))}`;
  }
  if (!versionAtLeast(p.version, min)) return `${cmd}: Python ${p.version} is older than ${min}`;
  if (p.venv !== true) return `${cmd}: no venv/ensurepip (install python3-venv): ${p.venv}`;
  return { executable: p.executable, version: p.version, stdlib: p.stdlib };
}

/** Why uid 65534 (other, to the file mode) could not read `path`, or undefined. */
function unreachableByOthers(path: string): string | undefined {
  const st = statSync(path);
  if (!(st.mode & 0o004)) return `${path} is not world-readable`;
  for (let d = dirname(path); ; d = dirname(d)) {
    if (!(statSync(d).mode & 0o001)) return `${d} is not world-searchable`;
    if (d === '/') return undefined;
  }
}

/**
 * The Python a venv is made with: the first of python3 on PATH, Debian's and
 * /usr/local's that is at least `min` and has venv and ensurepip
 * (ANCHORAGE_INTEROP_PYTHON names the one to use instead). With
 * `reachableByOthers`, the first such that uid 65534 can also run.
 */
export function choosePython(opts: { min: string; purpose: string; reachableByOthers?: boolean }): PythonChoice {
  const forced = process.env.ANCHORAGE_INTEROP_PYTHON;
  const reasons: string[] = [];
  let first: { python: PythonInfo; why: string } | undefined;
  for (const cmd of forced ? [forced] : ['python3', '/usr/bin/python3', '/usr/local/bin/python3']) {
    const p = probePython(cmd, opts.min);
    if (typeof p === 'string') {
      reasons.push(p);
      continue;
    }
    const why = opts.reachableByOthers ? (unreachableByOthers(p.executable) ?? unreachableByOthers(join(p.stdlib, 'os.py'))) : undefined;
    if (why === undefined) return { python: p };
    first ??= { python: p, why };
  }
  if (first) return { python: first.python, notForNobody: `no Python here that uid ${NOBODY_UID} can run (${first.python.executable}: ${first.why})` };
  return { unusable: `python3 (>= ${opts.min}) with venv not found for ${opts.purpose} (${reasons.join('; ')})` };
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

