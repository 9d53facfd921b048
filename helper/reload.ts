import { spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { Backoff } from '../common/backoff.js';
import { AnchorageError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { escapeControls } from '../ca/admin/text.js';

/** How the server that reads the files is told about new ones. */
export type ReloadAction =
  | { kind: 'none' }
  | { kind: 'cmd'; cmd: string; args: readonly string[]; timeoutMs: number }
  | { kind: 'signal'; pidFile: string; signal: NodeJS.Signals };

/** Output of a reload command kept for the log, per stream. */
const MAX_OUTPUT = 4096;
/** A pid file is a number and a newline; more is not a pid file. */
const MAX_PID_FILE = 64;

/**
 * Runs the reload action after every new generation, one at a time. A
 * request made while one runs is served by another run after it, so the last
 * generation written is always followed by a reload that started after it.
 * A failed reload is logged and retried with backoff until it succeeds or a
 * newer generation asks again (the retry then happens at once); the files
 * are already complete and stay as they are meanwhile.
 */
export class Reloader {
  readonly #action: ReloadAction;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  #pending: { generation: string; since: number } | undefined;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #closed = false;
  /** Reloads that failed and were retried, since start (for tests and the log). */
  failures = 0;

  constructor(action: ReloadAction, log: Logger, retry: { initialMs: number; maxMs: number }) {
    this.#action = action;
    this.#log = log;
    this.#backoff = new Backoff({ initialMs: retry.initialMs, maxMs: retry.maxMs });
  }

  /** Asks for a reload for `generation`, written in response to an update received at `since` (performance.now()). */
  request(generation: string, since: number): void {
    if (this.#action.kind === 'none' || this.#closed) return;
    this.#pending = { generation, since };
    this.#wake?.();
    this.#loop ??= this.#run().finally(() => (this.#loop = undefined));
  }

  /** Runs the action once, now (the one-shot mode); throws on failure. */
  async once(): Promise<void> {
    if (this.#action.kind !== 'none') await this.#perform();
  }

  /** Stops retrying; waits for a reload in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (this.#pending !== undefined && !this.#closed) {
      const job = this.#pending;
      this.#pending = undefined;
      try {
        await this.#perform();
        this.#backoff.reset();
        this.#log.info({ generation: job.generation, since_update_ms: Math.round(performance.now() - job.since) }, 'helper: reload done');
      } catch (err) {
        this.failures++;
        const delay = this.#backoff.next();
        this.#log.error({ generation: job.generation, err: errorMessage(err), retry_in_ms: delay }, 'helper: reload failed; the files are in place, retrying');
        this.#pending ??= job;
        await this.#sleep(delay);
      }
    }
  }

  /** Sleeps `ms`, cut short by a new request or close(). */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  #perform(): Promise<void> {
    const a = this.#action;
    if (a.kind === 'cmd') return runCommand(a.cmd, a.args, a.timeoutMs);
    if (a.kind === 'signal') {
      const pid = readPidFile(a.pidFile);
      try {
        process.kill(pid, a.signal);
      } catch (err) {
        throw new AnchorageError('unavailable', `helper: cannot send ${a.signal} to pid ${pid} (from ${a.pidFile}): ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
      }
    }
    return Promise.resolve();
  }
}

/**
 * Runs `cmd args…` without a shell; resolves on exit status 0. Anything else
 * (non-zero status, a signal, not started, over `timeoutMs` — then it is
 * killed) rejects with what it printed, bounded and escaped.
 */
export function runCommand(cmd: string, args: readonly string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    let output = '';
    const collect = (d: Buffer): void => {
      if (output.length < MAX_OUTPUT) output += d.toString('utf8').slice(0, MAX_OUTPUT - output.length);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const what = `helper: reload command ${JSON.stringify(cmd)}`;
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new AnchorageError('unavailable', `${what} could not start: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const how = timedOut ? `did not finish within ${timeoutMs} ms and was killed` : signal ? `was killed by ${signal}` : `exited with status ${code}`;
      const said = output.trim() ? `: ${escapeControls(output.trim().replace(/\s*\n\s*/g, ' | '))}` : '';
      reject(new AnchorageError('unavailable', `${what} ${how}${said}`));
    });
  });
}

/**
 * The pid in `path`. The file decides which process we signal, so it must be
 * a regular file (not followed if a link) that only root or our uid can
 * change; 0 and negative numbers (process groups, every process) are refused.
 */
export function readPidFile(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new AnchorageError('unavailable', `helper: cannot read pid_file_name ${path}: ${code === 'ELOOP' ? 'it is a symbolic link' : code}`);
  }
  try {
    const st = fstatSync(fd);
    const uid = process.getuid?.();
    if (!st.isFile()) throw new AnchorageError('failed_precondition', `helper: pid_file_name ${path} is not a regular file`);
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) throw new AnchorageError('failed_precondition', `helper: pid_file_name ${path} is owned by uid ${st.uid}; only root or uid ${uid} may own it`);
    if ((st.mode & 0o022) !== 0) throw new AnchorageError('failed_precondition', `helper: pid_file_name ${path} is writable by group or others`);
    const buf = Buffer.alloc(MAX_PID_FILE + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString('latin1');
    const m = /^\s*(\d{1,10})\s*$/.exec(text);
    const pid = m ? Number(m[1]) : 0;
    if (n > MAX_PID_FILE || !m || pid < 1 || pid > 0x7fffffff) {
      throw new AnchorageError('failed_precondition', `helper: pid_file_name ${path} does not hold a process id: ${JSON.stringify(text.slice(0, 32))}`);
    }
    return pid;
  } finally {
    closeSync(fd);
  }
}
