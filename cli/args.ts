import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ADMIN_SOCKET_ENV, DEFAULT_ADMIN_SOCKET } from '../common/admin-socket.js';
import { parseDurationFlag } from '../common/duration.js';
import { AnchorageError, errorMessage, invalid } from '@anchorage/client/errors';
import { escapeControls, escapeJsonControls } from '../ca/admin/text.js';
import type { Admin } from './client.js';

// What every `anchorage` subcommand shares: flag parsing, usage errors, output and the admin connection.

/** A usage error: exit code 2, as with most CLIs. */
export class UsageError extends Error {}

/**
 * `-h` / `--help` anywhere: print the usage and exit 0. With {@link COMMON}
 * and {@link parse}, for a command written as a plain `(sub, args)` function
 * rather than declared through cli/command.ts.
 */
export class HelpRequested extends Error {}

export const COMMON = {
  socket: { type: 'string' },
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  if (args.includes('--help') || args.includes('-h')) throw new HelpRequested();
  try {
    return parseArgs({ args, options: { ...COMMON, ...options }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(errorMessage(err).replace(/^TypeError \[[A-Z_]+\]: /, '').split('\n')[0]);
  }
}

export function need<T>(value: T | undefined, flag: string): T {
  if (value === undefined || value === '') throw new UsageError(`--${flag} is required`);
  return value;
}

export function seconds(text: string | undefined, flag: string): number {
  if (text === undefined) return 0;
  try {
    return parseDurationFlag(text, `--${flag}`);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}

/**
 * Where the admin socket is, and what said so (for the message when nothing
 * listens there): --socket or -c (not both), else $ANCHORAGE_ADMIN_SOCKET,
 * else the server's own default.
 */
export async function socketPath(v: { socket?: string; config?: string }): Promise<{ path: string; from: string }> {
  if (v.socket && v.config) throw new UsageError('give either --socket or -c, not both');
  if (v.socket) return { path: v.socket, from: '--socket' };
  if (v.config) {
    // zod and the config schema only when a config is named: they cost more than the whole of most commands.
    const { loadServerConfig } = await import('../ca/config.js');
    return { path: loadServerConfig(v.config).admin_socket, from: `admin_socket of ${v.config}` };
  }
  const env = process.env[ADMIN_SOCKET_ENV];
  if (env) {
    if (!isAbsolute(env)) throw new UsageError(`${ADMIN_SOCKET_ENV} must be an absolute path, not ${JSON.stringify(env)}`);
    return { path: env, from: `$${ADMIN_SOCKET_ENV}` };
  }
  return { path: DEFAULT_ADMIN_SOCKET, from: `the default; give --socket, -c server.yaml or $${ADMIN_SOCKET_ENV}` };
}

/**
 * Writes a command's result. Nothing from the server reaches the terminal
 * raw: text templates escape each field with {@link esc} (a newline in a
 * field must not forge a line), and whatever a template forgot is escaped
 * here, but for the template's own newlines. JSON is escaped by
 * JSON.stringify but for DEL, C1 and bidi characters, escaped here.
 */
export function out(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(json ? escapeJsonControls(JSON.stringify(value, null, 2)) + '\n' : escapeControls(text(), true));
}

/** A field of a server answer, for text output: control and bidi characters made visible (`\x1b`). */
export function esc(value: string | number | boolean): string {
  return escapeControls(String(value));
}

export async function withAdmin<T>(v: { socket?: string; config?: string }, fn: (a: Admin) => Promise<T>): Promise<T> {
  const { path, from } = await socketPath(v);
  if (!existsSync(path)) throw new AnchorageError('unavailable', `cli: no admin socket at ${path} (${from}); is "anchorage server run" running?`);
  // node:http2 and the admin descriptor only for commands that call the server (not for help or usage errors).
  const { Admin } = await import('./client.js');
  const admin = new Admin(path);
  try {
    return await fn(admin);
  } finally {
    admin.close();
  }
}

/** The text of a file named by a flag, or standard input for "-". */
export function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw invalid(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

/** Keeps a long-running process up until SIGINT or SIGTERM, then closes it cleanly. */
export function untilSignal(logger: { info(o: object, msg: string): void }, who: string, close: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, `${who}: shutting down`);
      close().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
