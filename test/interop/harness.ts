// Shared pieces of the interop suites (test/interop/*.test.ts): a real trust
// domain to run a client library against, child processes that do not block
// the event loop, toolchain gating (skip on a developer's machine, fail in
// CI), the build cache, and the results behind the README's interop table.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, it } from 'vitest';
import { Admin } from '../../cli/client.js';
import { loadWorkloadProto } from '../../proto/load.js';
import type { X509SVIDResponse__Output } from '../../proto/gen/X509SVIDResponse.js';
import { cli, freePort, REPO, startAgentProcess, startServerProcess, writeFile, type AnchorageProcess } from '../helpers/process.js';
import { createSoftHsmToken } from '../helpers/softhsm.js';

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

// --- closers -------------------------------------------------------------------------

/** Runs the closers in reverse order; used both by close() and when a start fails half-way. */
export function closerList(): { push(c: () => Promise<unknown> | unknown): void; close(): Promise<void> } {
  const closers: (() => Promise<unknown> | unknown)[] = [];
  return {
    push: (c) => void closers.push(c),
    close: async () => {
      for (const c of closers.reverse()) await c();
      closers.length = 0;
    },
  };
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
    writeFileSync(file, `${JSON.stringify({ library, at: new Date().toISOString(), results: Object.fromEntries(outcomes) }, null, 2)}\n`);
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

// --- a real trust domain -------------------------------------------------------------

/**
 * The first FetchX509SVID answer this process gets from the Workload API at
 * `socket`, once it serves `spiffeId` (the agent mints an entry's SVID a
 * moment after the entry is created; until then callers get PERMISSION_DENIED).
 */
export async function waitForSvid(socket: string, spiffeId: string, timeoutMs: number): Promise<X509SVIDResponse__Output> {
  const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socket}`, grpc.credentials.createInsecure());
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  try {
    for (;;) {
      const got = await new Promise<X509SVIDResponse__Output | undefined>((resolve) => {
        const md = new grpc.Metadata();
        md.set('workload.spiffe.io', 'true');
        const call = client.FetchX509SVID({}, md, { deadline: Date.now() + 5_000 });
        call.on('data', (m: X509SVIDResponse__Output) => {
          call.cancel();
          if (m.svids.some((s) => s.spiffe_id === spiffeId)) resolve(m);
          else {
            last = `served ${m.svids.map((s) => s.spiffe_id).join(', ') || 'no SVID'}`;
            resolve(undefined);
          }
        });
        call.on('error', (e: grpc.ServiceError) => {
          if (e.code !== grpc.status.CANCELLED) last = `${grpc.status[e.code]}: ${e.details}`;
          resolve(undefined);
        });
      });
      if (got) return got;
      if (Date.now() > deadline) throw new Error(`interop: the agent did not serve ${spiffeId} within ${timeoutMs} ms (${last})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
}

export interface EntrySpec {
  spiffeId: string;
  /** Selectors as "type:value", e.g. `unix:uid:0`. */
  selectors: string[];
  hint?: string;
  dnsNames?: string[];
  federatesWith?: string[];
}

export interface TrustDomainOptions {
  trustDomain: string;
  /** Entries parented by the agent; the harness waits until the first one is served to this process. */
  entries: EntrySpec[];
  /** server.yaml durations (defaults 1h / 5m / 24h). */
  x509SvidTtl?: string;
  jwtSvidTtl?: string;
  caTtl?: string;
  /** Extra server.yaml text (e.g. a federation block). */
  serverYaml?: string;
}

export interface RealTrustDomain {
  trustDomain: string;
  adminSocket: string;
  /** Environment for `anchorage` commands against this server (SOFTHSM2_CONF set). */
  env: NodeJS.ProcessEnv;
  admin: Admin;
  /** The agent's Workload API: `unix:///…/api.sock` and the bare path. */
  endpoint: string;
  workloadSocket: string;
  agentId: string;
  /** Entry IDs, in the order of options.entries. */
  entryIds: string[];
  /** Makes the agent mint a new X509-SVID for entry i at once (changes its hint); returns the new hint. */
  rotate(i?: number): Promise<string>;
  /** The tails of the server's and agent's logs, for failure messages. */
  diagnostics(): string;
  close(): Promise<void>;
}

/**
 * The real thing: `anchorage server run` on a fresh SoftHSM2 token and
 * `anchorage agent run` attested with a join token, each its own process,
 * with the given entries parented by the agent. `dir` must be reachable by
 * every uid that will call the Workload API (0755 all the way down).
 */
export async function startTrustDomain(dir: string, opts: TrustDomainOptions): Promise<RealTrustDomain> {
  const TD = opts.trustDomain;
  const closers = closerList();
  let server: AnchorageProcess | undefined;
  let agent: AnchorageProcess | undefined;
  try {
    const hsm = createSoftHsmToken(`anchorage-${TD}`.slice(0, 32), '1357');
    closers.push(() => hsm.cleanup());
    const env = { ...hsm.env, ANCHORAGE_LOG_LEVEL: 'debug' };
    const port = await freePort();
    const adminSocket = join(dir, 'admin.sock');
    const publicDir = join(dir, 'public');
    mkdirSync(publicDir, { recursive: true, mode: 0o755 });
    chmodSync(publicDir, 0o755);
    const workloadSocket = join(publicDir, 'api.sock');
    writeFile(join(dir, 'pin'), `${hsm.pin}\n`);
    const serverConfig = writeFile(
      join(dir, 'server.yaml'),
      `trust_domain: ${TD}
data_dir: ${join(dir, 'server')}
admin_socket: ${adminSocket}
bind_address: 127.0.0.1:${port}
key_manager:
  type: pkcs11
  module: ${hsm.module}
  token_label: ${hsm.label}
  pin_file: ${join(dir, 'pin')}
ca:
  ttl: ${opts.caTtl ?? '24h'}
x509_svid_ttl: ${opts.x509SvidTtl ?? '1h'}
jwt_svid_ttl: ${opts.jwtSvidTtl ?? '5m'}
${opts.serverYaml ?? ''}`,
    );
    server = await startServerProcess(serverConfig, adminSocket, env);
    closers.push(() => server?.kill('SIGTERM'));
    const admin = new Admin(adminSocket);
    closers.push(() => admin.close());

    const token = await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 });
    const bundle = cli(['bundle', 'show', '--format', 'pem', '--socket', adminSocket], env);
    if (bundle.code !== 0) throw new Error(`interop: anchorage bundle show failed (exit ${bundle.code}): ${bundle.stderr}`);
    writeFile(join(dir, 'bundle.pem'), bundle.stdout);
    const agentConfig = writeFile(
      join(dir, 'agent.yaml'),
      `trust_domain: ${TD}
server_address: 127.0.0.1:${port}
data_dir: ${join(dir, 'agent')}
socket_path: ${workloadSocket}
join_token: ${token.token}
trust_bundle_file: ${join(dir, 'bundle.pem')}
`,
    );
    agent = await startAgentProcess(agentConfig, workloadSocket, env);
    closers.push(() => agent?.kill('SIGTERM'));
    const agentId = `spiffe://${TD}/anchorage/agent/join_token/${token.token}`;

    const entryIds: string[] = [];
    const hints: string[] = [];
    for (const e of opts.entries) {
      const hint = e.hint ?? '';
      const created = await admin.call('CreateEntry', {
        entry: {
          spiffe_id: e.spiffeId,
          parent_id: agentId,
          selectors: e.selectors.map((s) => {
            const i = s.indexOf(':');
            return { type: s.slice(0, i), value: s.slice(i + 1) };
          }),
          hint,
          dns_names: e.dnsNames ?? [],
          federates_with: e.federatesWith ?? [],
        },
      });
      entryIds.push(created.id);
      hints.push(hint);
    }
    if (opts.entries[0]) await waitForSvid(workloadSocket, opts.entries[0].spiffeId, 30_000);

    let rotations = 0;
    return {
      trustDomain: TD,
      adminSocket,
      env,
      admin,
      endpoint: `unix://${workloadSocket}`,
      workloadSocket,
      agentId,
      entryIds,
      // A new revision of the entry (here: its hint) makes the agent mint a new SVID at once.
      rotate: async (i = 0) => {
        const hint = `${hints[i] || 'entry'}-rotated-${++rotations}`;
        await admin.call('UpdateEntry', { id: entryIds[i], patch: { hint } });
        return hint;
      },
      diagnostics: () => `\n--- agent log (tail) ---\n${agent?.log().slice(-4000) ?? ''}\n--- server log (tail) ---\n${server?.log().slice(-2000) ?? ''}`,
      close: closers.close,
    };
  } catch (err) {
    const logs = `${agent ? `\n--- agent log ---\n${agent.log().slice(-4000)}` : ''}${server ? `\n--- server log ---\n${server.log().slice(-4000)}` : ''}`;
    await closers.close();
    if (logs && err instanceof Error) err.message += logs;
    throw err;
  }
}
