import { pino, type DestinationStream, type Logger } from 'pino';
import { escapeJsonControls, findControl } from './text.js';

export type { Logger };

/** `log_format` of both configs: `text` for a person at a terminal, `json` lines for a log pipeline. */
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Text when stderr is a terminal (someone is reading it), JSON lines otherwise (a collector is). */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stderr): LogFormat {
  return stream.isTTY ? 'text' : 'json';
}

/**
 * The process logger, on stderr (stdout stays free for command output).
 * Fields that could carry secrets are redacted at the source as a second
 * line of defence: no code path should log them in the first place.
 */
export function createLogger(name: string, level: string, format: LogFormat = defaultLogFormat()): Logger {
  const dest = pino.destination({ dest: 2, sync: true });
  return pino(
    {
      name,
      level,
      redact: { paths: ['pin', '*.pin', 'privateKey', '*.privateKey', 'key', '*.key', 'token', '*.token'], censor: '[redacted]' },
    },
    format === 'text' ? textDestination(dest, { color: process.stderr.isTTY === true && !process.env.NO_COLOR }) : dest,
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** ANSI colours of the level names (only on a terminal, and not with NO_COLOR). */
const COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
/** Fields every record has; the text line shows them in its fixed columns or not at all. */
const FIXED = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** A value as `key=value` shows it: bare when unambiguous, else JSON (which escapes quotes and C0 controls). */
function textValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) && findControl(v) === undefined ? v : escapeJsonControls(JSON.stringify(v));
  return escapeJsonControls(JSON.stringify(v) ?? String(v));
}

/**
 * One pino JSON record as one line a person can read:
 * `2026-12-05T18:00:00.000Z INFO  server: ready trustDomain=example.org root={"kind":"self-signed"}`.
 * Every caller-controlled string is escaped, as in the JSON form, so a log line
 * cannot be forged or a terminal driven by what a caller sent.
 */
export function formatTextRecord(line: string, color = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return escapeJsonControls(JSON.stringify(line.trimEnd())) + '\n';
  }
  const level = typeof rec.level === 'number' ? rec.level : 30;
  const name = (LEVELS[level] ?? String(level)).padEnd(5);
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString() : '';
  const msg = typeof rec.msg === 'string' ? rec.msg : '';
  let out = `${time} ${color ? `\u001b[${COLORS[level] ?? '0'}m${name}\u001b[0m` : name} ${findControl(msg) === undefined ? msg : escapeJsonControls(JSON.stringify(msg))}`;
  for (const [k, v] of Object.entries(rec)) {
    if (FIXED.has(k) || v === undefined) continue;
    out += ` ${textValue(k)}=${textValue(v)}`;
  }
  return out + '\n';
}

/**
 * A pino destination that turns each JSON record into a text line and writes
 * it to `dest`, in the calling thread. pino-pretty would do the same through a
 * worker-thread transport (a thread and a dependency for a formatter this
 * small); records here are few and the format is fixed.
 */
export function textDestination(dest: DestinationStream, opts: { color?: boolean } = {}): DestinationStream {
  return { write: (line: string) => dest.write(formatTextRecord(line, opts.color ?? false)) };
}
