import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseDuration } from '../common/duration.js';
import { errorMessage, invalid } from '@anchorage/client/errors';
import { loadServerConfig } from '../ca/config.js';
import { escapeControls, escapeJsonControls } from '../ca/admin/text.js';
import { Admin } from './client.js';

// What every `anchorage` subcommand shares: flag parsing, usage errors, output and the admin connection.

/** A usage error: exit code 2, as with most CLIs. */
export class UsageError extends Error {}

/** `-h` / `--help` anywhere: print the usage and exit 0. */
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
    return parseDuration(text, `--${flag}`);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}

export function socketPath(v: { socket?: string; config?: string }): string {
  if (v.socket && v.config) throw new UsageError('give either --socket or -c, not both');
  if (v.socket) return v.socket;
  if (v.config) return loadServerConfig(v.config).admin_socket;
  throw new UsageError('--socket PATH or -c server.yaml is required');
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
  const admin = new Admin(socketPath(v));
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
