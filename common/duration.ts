import { invalid } from '@anchorage/client/errors';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/**
 * Parses a duration such as `90s`, `15m`, `1h30m` or `30d` into whole seconds.
 * Units must appear in descending order, each at most once; a bare number is
 * rejected because "is 3600 seconds or minutes?" is exactly the ambiguity
 * that ends in a CA outliving its intended life.
 */
export function parseDuration(text: string, what = 'duration', examples = 'e.g. 30s, 15m, 1h30m, 7d'): number {
  // Quoted as JSON: the text comes from config files and the command line,
  // and a raw newline or escape sequence would break the one-line error or
  // reach the operator's terminal.
  const quoted = JSON.stringify(text);
  const m = DURATION.exec(text.trim());
  if (!m || text.trim() === '') {
    throw invalid(`${what}: ${quoted} is not a duration (use ${examples})`);
  }
  const [, d, h, mi, s] = m;
  const total =
    Number(d ?? 0) * UNIT_SECONDS.d! + Number(h ?? 0) * UNIT_SECONDS.h! + Number(mi ?? 0) * UNIT_SECONDS.m! + Number(s ?? 0);
  if (!Number.isSafeInteger(total)) throw invalid(`${what}: ${quoted} is too large`);
  if (total <= 0) throw invalid(`${what}: ${quoted} must be greater than zero`);
  return total;
}

/** Formats seconds as the shortest duration string parseDuration accepts. */
export function formatDuration(seconds: number): string {
  if (seconds <= 0) return '0s';
  let rest = Math.floor(seconds);
  let out = '';
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

/**
 * A duration flag of the command line: a whole number of seconds (`3600`),
 * as SPIRE's CLI takes them, or a duration {@link parseDuration} accepts.
 * Config files keep to units; on the command line the flag's own help says
 * "seconds", and operators coming from SPIRE type bare numbers.
 */
export function parseDurationFlag(text: string, what: string): number {
  if (!/^\s*\d+\s*$/.test(text)) return parseDuration(text, what, 'seconds, or e.g. 30s, 15m, 1h30m, 7d');
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n)) throw invalid(`${what}: ${JSON.stringify(text)} is too large`);
  if (n <= 0) throw invalid(`${what}: ${JSON.stringify(text)} must be greater than zero`);
  return n;
}
