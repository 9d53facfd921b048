import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from the TypeScript tree or from dist/ (benchmarks run compiled). */
export const REPO = ((): string => {
  let dir = resolve(fileURLToPath(import.meta.url), '..');
  while (!existsSync(join(dir, 'package.json')) && dir !== resolve(dir, '..')) dir = resolve(dir, '..');
  return dir;
})();
export const BIN = join(REPO, 'bin', 'anchorage.js');

export function assertBuilt(): void {
  if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run "npm run build" (npm test does it for you)');
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `anchorage` command (the repository's, or `bin`, e.g. an installed one) and waits for it. */
export function cli(args: string[], env: NodeJS.ProcessEnv = process.env, bin = BIN): CliResult {
  const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI asynchronously (for calls that must not block the test's event loop). */
export function cliAsync(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
  });
}

export interface AnchorageProcess {
  child: ChildProcess;
  socket: string;
  /** Everything the process wrote to stderr (its JSON log). */
  log(): string;
  /** Waits for the process to exit. */
  exited(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export type ServerProcess = AnchorageProcess;

/** Starts `anchorage <args>` (`bin`: another `anchorage`, e.g. an installed one) and resolves once it logged `ready` and `socket` exists. */
async function startAnchorage(args: string[], ready: string, socket: string, env: NodeJS.ProcessEnv, bin: string): Promise<AnchorageProcess> {
  if (bin === BIN) assertBuilt();
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  child.stdout!.on('data', (d) => (log += d));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (log.includes(`"${ready}"`) && existsSync(socket)) break;
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}:\n${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${args.join(' ')} did not become ready in 30 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    socket,
    log: () => log,
    exited: () => exit,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
  };
}

/** Starts `anchorage server run -c config` and resolves once the admin socket exists. */
export function startServerProcess(config: string, socket: string, env: NodeJS.ProcessEnv, bin = BIN): Promise<ServerProcess> {
  return startAnchorage(['server', 'run', '-c', config], 'server: ready', socket, env, bin);
}

/** Starts `anchorage agent run -c config` and resolves once the Workload API socket exists. */
export function startAgentProcess(config: string, socket: string, env: NodeJS.ProcessEnv, bin = BIN): Promise<AnchorageProcess> {
  return startAnchorage(['agent', 'run', '-c', config], 'agent: workload api listening', socket, env, bin);
}

/** Starts `anchorage helper -c config` and resolves once it logged ready and its first files are in `certFile`'s place. */
export function startHelperProcess(config: string, certFile: string, env: NodeJS.ProcessEnv): Promise<AnchorageProcess> {
  return startAnchorage(['helper', '-c', config], 'helper: ready', certFile, env, BIN);
}

/** A free TCP port on loopback (for a server that must come back on the same address). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A temp dir removed by the returned function. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeFile(path: string, text: string, mode = 0o600): string {
  writeFileSync(path, text, { mode });
  return path;
}

/**
 * Runs `bin` to the end without blocking the event loop (a server it talks to
 * may run on it): its exit status or signal and what it wrote to each stream.
 * With `timeoutMs`, it is killed (SIGKILL) past that.
 */
export function runCollect(bin: string, args: string[], timeoutMs?: number): Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(timeoutMs !== undefined && { timeout: timeoutMs, killSignal: 'SIGKILL' as const }) });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}
