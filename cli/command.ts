import { parseArgs } from 'node:util';
import { ADMIN_SOCKET_ENV, DEFAULT_ADMIN_SOCKET } from '../common/admin-socket.js';
import { errorMessage } from '@anchorage/client/errors';
import { UsageError } from './args.js';

/**
 * How a command of `anchorage` is declared: its flags with their help, from
 * which come the parser's options, the `--help` text and the hints for flags
 * it does not know (SPIRE's spellings among them). Each command group is a
 * module under cli/commands/, loaded by cli/main.ts only when named.
 */

export interface FlagSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** The value's placeholder in the help (`ID`, `FILE`). */
  arg?: string;
  help: string;
}

export type Flags = Record<string, FlagSpec>;

type FlagValue<S extends FlagSpec> = S['type'] extends 'string' ? (S['multiple'] extends true ? string[] : string) : boolean;
export type Values<F extends Flags> = { [K in keyof F]?: FlagValue<F[K]> };

/** Flags of every command that talks to the server. */
export const ADMIN_FLAGS = {
  socket: { type: 'string', arg: 'PATH', help: `the server's admin socket (else -c, else $${ADMIN_SOCKET_ENV}, else ${DEFAULT_ADMIN_SOCKET})` },
  config: { type: 'string', short: 'c', arg: 'FILE', help: 'take the admin socket from this server.yaml (admin_socket)' },
  json: { type: 'boolean', help: 'print JSON' },
  output: { type: 'string', arg: 'FORMAT', help: 'text (the default) or json' },
} as const satisfies Flags;

export type AdminValues = Values<typeof ADMIN_FLAGS>;

export interface Action<F extends Flags = Flags> {
  /** The words that name it: `entry create`. */
  name: string;
  /** What follows the name on the usage line. */
  synopsis: string;
  /** One or more sentences under the usage line. */
  summary: string;
  flags: F;
  /** False for the commands that run a process from a config (`server run`): no --socket, --json. */
  admin?: boolean;
  /** Resolves to the exit code, if not 0. */
  run(v: Values<F> & AdminValues): Promise<number | void>;
}

/** Declares an action, inferring the types of its flag values. */
export function action<F extends Flags>(a: Action<F>): Action {
  return a as unknown as Action;
}

/** A command group: `entry` and its actions by subcommand; or a command with none (`check`), its `bare` action. */
export interface CommandGroup {
  name: string;
  summary: string;
  actions: Record<string, Action>;
  bare?: Action;
  /** Groups one word further down: `authority x509 list`. */
  groups?: Record<string, CommandGroup>;
}

function flagColumn(name: string, f: FlagSpec): string {
  const long = `--${name}${f.arg ? ` ${f.arg}` : ''}`;
  return f.short ? `-${f.short}, ${long}` : long;
}

function flagLines(flags: Flags): string {
  const width = Math.max(...Object.entries(flags).map(([n, f]) => flagColumn(n, f).length)) + 3;
  return Object.entries(flags)
    .map(([n, f]) => `  ${flagColumn(n, f).padEnd(width)}${f.help}${f.multiple ? ' (repeatable)' : ''}`)
    .join('\n');
}

const DURATIONS = 'Durations: whole seconds (3600) or with units: 30s, 15m, 1h30m, 7d.';

export function actionHelp(a: Action): string {
  const common = a.admin === false ? { help: HELP_FLAG } : { ...ADMIN_FLAGS, help: HELP_FLAG };
  const parts = [`usage: anchorage ${a.name} ${a.synopsis}`.trimEnd(), '', a.summary];
  if (Object.keys(a.flags).length > 0) parts.push('', 'Flags:', flagLines(a.flags));
  parts.push('', 'Common flags:', flagLines(common));
  if (Object.values(a.flags).some((f) => f.arg === 'DURATION')) parts.push('', DURATIONS);
  return parts.join('\n') + '\n';
}

export function groupHelp(g: CommandGroup): string {
  const lines = [
    ...Object.values(g.groups ?? {}).map((sub) => ({ name: `${sub.name} <${Object.keys(sub.actions).join('|')}>`, summary: sub.summary })),
    ...Object.values(g.actions),
  ];
  const width = Math.max(...lines.map((a) => a.name.length)) + 3;
  const words = [...Object.keys(g.groups ?? {}), ...Object.keys(g.actions)];
  return (
    `usage: anchorage ${g.name} <${words.join('|')}> [flags]\n\n${g.summary}\n\nCommands:\n` +
    lines
      .map((a) => `  ${a.name.padEnd(width)}${a.summary.split('\n')[0]}`)
      .join('\n') +
    `\n\nRun "anchorage ${g.name} <command> --help" for a command's flags.\n`
  );
}

const HELP_FLAG: FlagSpec = { type: 'boolean', short: 'h', help: 'print this help' };

/**
 * SPIRE's flag names (spire-server entry|bundle|federation|x509|jwt|token) and
 * ours, first match among the command's flags wins: `-ttl` is `--ttl` for
 * `token create` and `--x509-ttl` for `entry create`.
 */
const SPIRE_FLAGS: Record<string, string[]> = {
  spiffeID: ['spiffe-id'],
  parentID: ['parent-id'],
  selector: ['selector'],
  entryID: ['id'],
  id: ['id', 'trust-domain'],
  ttl: ['ttl', 'x509-ttl'],
  x509SVIDTTL: ['x509-ttl'],
  jwtSVIDTTL: ['jwt-ttl'],
  dns: ['dns'],
  federatesWith: ['federates-with'],
  admin: ['admin'],
  downstream: ['downstream'],
  hint: ['hint'],
  audience: ['audience'],
  write: ['out-dir'],
  format: ['format'],
  path: ['file'],
  data: ['data'],
  trustDomain: ['trust-domain'],
  bundleEndpointURL: ['url'],
  bundleEndpointProfile: ['profile'],
  endpointSpiffeID: ['endpoint-id'],
  trustBundlePath: ['bootstrap-bundle'],
  socketPath: ['socket'],
  registrationUDSPath: ['socket'],
  config: ['config'],
  output: ['output'],
};

/** Edit distance, for "did you mean": flag names are short, the quadratic table is nothing. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

function unknownFlag(token: string, known: Flags): UsageError {
  const word = token.replace(/^-+/, '').split('=')[0]!;
  const spire = token.startsWith('--') ? undefined : SPIRE_FLAGS[word]?.find((n) => n in known);
  const near =
    spire ??
    (word.toLowerCase() in known ? word.toLowerCase() : undefined) ??
    Object.keys(known)
      .map((n) => ({ n, d: distance(word.toLowerCase(), n) }))
      .filter((x) => x.d <= 2 && x.d < word.length / 2)
      .sort((x, y) => x.d - y.d)[0]?.n;
  const shown = token.split('=')[0]!;
  return new UsageError(near ? `unknown flag ${shown}; did you mean --${near}?` : `unknown flag ${shown}`);
}

/**
 * Parses an action's flags. Refused before node:util's parser sees them: a
 * long flag the action lacks, and a single-dash word (`-spiffeID`), which
 * the parser would read as a cluster of short flags and answer
 * "Unknown option '-s'".
 */
export function parseFlags(a: Action, args: string[]): (Values<Flags> & AdminValues) | 'help' {
  if (args.includes('--help') || args.includes('-h')) return 'help';
  const known: Flags = a.admin === false ? { ...a.flags } : { ...ADMIN_FLAGS, ...a.flags };
  const shorts = new Map(Object.entries(known).flatMap(([n, f]) => (f.short ? [[f.short, n] as const] : [])));
  for (let i = 0; i < args.length; i++) {
    const t = args[i]!;
    if (t === '--') break;
    if (t.startsWith('--')) {
      const name = t.slice(2).split('=')[0]!;
      const spec = known[name];
      if (!spec) throw unknownFlag(t, known);
      if (spec.type === 'string' && !t.includes('=')) i++;
    } else if (/^-[A-Za-z]/.test(t)) {
      const name = shorts.get(t[1]!);
      // `-c FILE` and `-cFILE` are flags; a word (`-spiffeID`, `-config`) is a flag of another CLI.
      if (!name || (t.length > 2 && (/^-[A-Za-z][A-Za-z0-9]+$/.test(t) || known[name]!.type !== 'string'))) throw unknownFlag(t, known);
      if (known[name]!.type === 'string' && t.length === 2) i++;
    }
  }
  const options = Object.fromEntries(
    Object.entries(known).map(([n, f]) => [n, { type: f.type, ...(f.multiple ? { multiple: true } : {}), ...(f.short ? { short: f.short } : {}) }]),
  );
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(
      errorMessage(err)
        .replace(/^TypeError \[[A-Z_]+\]: /, '')
        .split('\n')[0]!
        .replace(/^Option '(-\S+)(?:, (--\S+))? <value>' argument missing$/, (_m, x: string, y?: string) => `${y ?? x} needs a value`)
        .replace(/^Unexpected argument '(.*)'.*$/, (_m, x: string) => `unexpected argument ${JSON.stringify(x)} (flags take --)`),
    );
  }
  const output = values.output as string | undefined;
  if (output !== undefined && output !== 'json' && output !== 'text') throw new UsageError(`--output must be text or json, not ${JSON.stringify(output)}`);
  if (output === 'json') values.json = true;
  return values as Values<Flags> & AdminValues;
}
