import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { escapeControls } from '../ca/admin/text.js';
import { HelpRequested, UsageError } from './args.js';
import { actionHelp, groupHelp, parseFlags, type Action, type CommandGroup } from './command.js';
import { ADMIN_SOCKET_ENV, DEFAULT_ADMIN_SOCKET } from '../common/admin-socket.js';

/**
 * The commands of `anchorage`, by name. Each module is imported only when its
 * command runs, so `anchorage help` loads none and `entry list` none of the
 * server, the HSM or the config schema (issue 17: start in under 100 ms).
 * Adding a command is one line here and a module under cli/commands/
 * exporting `command: CommandGroup`.
 */
const COMMANDS: Record<string, { usage: string; summary: string; load: () => Promise<{ command: CommandGroup }> }> = {
  server: { usage: 'server run -c server.yaml', summary: 'run the server', load: () => import('./commands/server.js') },
  agent: { usage: 'agent run|list|show|evict|ban|unban', summary: 'run a node agent; the agents the server attested', load: () => import('./commands/agent.js') },
  helper: { usage: 'helper -c helper.yaml', summary: "write this workload's SVID, key and bundles to files; reload a server on rotation", load: () => import('./commands/helper.js') },
  entry: { usage: 'entry create|update|show|delete|list', summary: 'registration entries', load: () => import('./commands/entry.js') },
  token: { usage: 'token create', summary: 'join tokens for agents', load: () => import('./commands/token.js') },
  bundle: { usage: 'bundle show|set|list|delete', summary: "the trust domain's bundle; static federated bundles", load: () => import('./commands/bundle.js') },
  federation: { usage: 'federation create|update|list|show|refresh|delete', summary: 'federation relationships (bundle endpoints)', load: () => import('./commands/federation.js') },
  x509: { usage: 'x509 mint', summary: 'mint an X509-SVID for the caller', load: () => import('./commands/x509.js') },
  jwt: { usage: 'jwt mint', summary: 'mint a JWT-SVID', load: () => import('./commands/jwt.js') },
  ca: { usage: 'ca show', summary: 'the CA journal (root, intermediates, JWT keys)', load: () => import('./commands/ca.js') },
  check: { usage: 'check', summary: 'the health of the trust stack (HSM, root, rotation, agents, federation)', load: () => import('./commands/check.js') },
  audit: { usage: 'audit list|verify', summary: 'the tamper-evident audit log: list (export as JSON lines), verify', load: () => import('./commands/audit.js') },
  anchors: { usage: 'anchors list', summary: 'every trust anchor the trust domain relies on', load: () => import('./commands/anchors.js') },
  authority: {
    usage: 'authority x509|jwt|root list|prepare|activate|taint|revoke',
    summary: 'rotate, taint and revoke intermediates, JWT keys and roots ahead of schedule',
    load: () => import('./commands/authority.js'),
  },
};

function overview(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length)) + 3;
  return `usage: anchorage <command> [flags]

${Object.values(COMMANDS)
  .map((c) => `  ${c.usage.padEnd(width)}${c.summary}`)
  .join('\n')}

Run "anchorage <command> --help" (or "anchorage <command> <subcommand> --help") for its flags.
Every command but "server run", "agent run" and "helper" reaches the server's admin socket: --socket PATH,
or the admin_socket of -c server.yaml, or $${ADMIN_SOCKET_ENV}, or ${DEFAULT_ADMIN_SOCKET};
and takes --json (or --output json) for machine-readable output.
Durations: whole seconds (3600) or with units: 30s, 15m, 1h30m, 7d.
`;
}

/** What `--help` a usage error points to: as much of the command as was recognized. */
let helpFor = '';

async function run(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const named = cmd === 'help' && sub !== undefined && Object.hasOwn(COMMANDS, sub) ? COMMANDS[sub] : undefined;
    const group = named && (await named.load()).command;
    process.stdout.write(group ? (group.bare ? actionHelp(group.bare) : groupHelp(group)) : overview());
    return cmd === undefined ? 2 : 0;
  }
  const entry = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!entry) throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  let group = (await entry.load()).command;
  helpFor = cmd;
  if (group.bare) return runAction(group.bare, argv.slice(1));
  let args = [sub, ...rest];
  // Nested groups (`authority x509 list`): one word each.
  while (group.groups && args[0] !== undefined && Object.hasOwn(group.groups, args[0])) {
    group = group.groups[args[0]]!;
    helpFor = group.name;
    args = args.slice(1);
  }
  const word = args[0];
  if (word === '--help' || word === '-h') {
    process.stdout.write(groupHelp(group));
    return 0;
  }
  const act = word !== undefined && Object.hasOwn(group.actions, word) ? group.actions[word] : undefined;
  if (!act) {
    const choices = [...Object.keys(group.groups ?? {}), ...Object.keys(group.actions)].join(', ');
    throw new UsageError(`${group.name}: ${word === undefined || word.startsWith('-') ? 'give a subcommand' : `unknown subcommand ${JSON.stringify(word)}`} (${choices})`);
  }
  helpFor = act.name;
  return runAction(act, args.slice(1));
}

async function runAction(act: Action, args: string[]): Promise<number> {
  const values = parseFlags(act, args);
  if (values === 'help') {
    process.stdout.write(actionHelp(act));
    return 0;
  }
  return (await act.run(values)) ?? 0;
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(overview());
      return 0;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`anchorage: ${escapeControls(err.message)}\n(run "anchorage ${helpFor ? `${helpFor} --help` : 'help'}" for usage)\n`);
      return 2;
    }
    const message = err instanceof AnchorageError ? err.message : `unexpected error: ${errorMessage(err)}`;
    // Messages can echo what a caller sent, or come from an older server: no line of them drives the terminal.
    process.stderr.write(`anchorage: ${message.split('\n').map((l) => escapeControls(l)).join('\nanchorage: ')}\n`);
    return 1;
  }
}
