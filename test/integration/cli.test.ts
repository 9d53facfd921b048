import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertBuilt, cli, cliAsync } from '../helpers/process.js';

describe('anchorage command line', () => {
  assertBuilt();

  it('prints the overview for help, exit 0; for no command, exit 2', () => {
    for (const args of [['help'], ['--help'], ['-h']]) {
      const r = cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^usage: anchorage <command> \[flags\]\n\n  server run -c server\.yaml +run the server\n/);
      expect(r.stdout).toContain('$ANCHORAGE_ADMIN_SOCKET, or /run/anchorage-server/private/admin.sock;');
    }
    const none = cli([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toMatch(/^usage: anchorage <command>/);
  });

  it("prints a command's own flags for <command> <subcommand> --help, exit 0", () => {
    const r = cli(['entry', 'create', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').slice(0, 4)).toEqual([
      'usage: anchorage entry create --spiffe-id ID --parent-id ID --selector TYPE:VALUE... [flags] | --data FILE|-',
      '',
      'Registers a workload, or many from a file (one result each).',
      '',
    ]);
    const flags = r.stdout.split('\n').filter((l) => /^ {2}-/.test(l)).map((l) => l.trim().split(/ {2,}/)[0]);
    expect(flags).toEqual([
      '--spiffe-id ID',
      '--parent-id ID',
      '--selector TYPE:VALUE',
      '--x509-ttl DURATION',
      '--jwt-ttl DURATION',
      '--dns NAME',
      '--federates-with TD',
      '--hint H',
      '--admin',
      '--downstream',
      '--data FILE|-',
      '--socket PATH',
      '-c, --config FILE',
      '--json',
      '--output FORMAT',
      '-h, --help',
    ]);
    expect(r.stdout).toContain('Durations: whole seconds (3600) or with units: 30s, 15m, 1h30m, 7d.');
    // -h works too, and help for a command that takes no admin flags lists none.
    const run = cli(['server', 'run', '-h']);
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n').filter((l) => /^ {2}-/.test(l)).map((l) => l.trim().split(/ {2,}/)[0])).toEqual(['-c, --config FILE', '-h, --help']);
    expect(cli(['x509', 'mint', '-h']).stdout).toMatch(/^usage: anchorage x509 mint --spiffe-id ID \[--ttl DURATION\] \[--dns NAME\]\.\.\. --out-dir DIR\n/);
  });

  it('prints the flags of check and anchors list', () => {
    for (const args of [['check', '--help'], ['help', 'check']]) {
      const r = cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^usage: anchorage check \[--output json\]\n\nOne line per check, ✔ \(ok\), ‼ \(warning\) or ✗ \(failed\), with a hint; exit 1 on any ✗\.\n/);
    }
    const anchors = cli(['anchors', 'list', '-h']);
    expect(anchors.code).toBe(0);
    expect(anchors.stdout).toMatch(/^usage: anchorage anchors list \[--json\]\n/);
  });

  it("prints a group's subcommands for <command> --help and help <command>, exit 0", () => {
    for (const args of [['entry', '--help'], ['help', 'entry']]) {
      const r = cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^usage: anchorage entry <create\|update\|show\|delete\|list> \[flags\]\n/);
      expect(r.stdout.split('\n').filter((l) => l.startsWith('  entry ')).map((l) => l.trim().split(/ {2,}/)[0])).toEqual([
        'entry create',
        'entry update',
        'entry show',
        'entry delete',
        'entry list',
      ]);
    }
  });

  it.each<[string[], string]>([
    [['frobnicate'], 'anchorage: unknown command "frobnicate"'],
    [['toString'], 'anchorage: unknown command "toString"'],
    [['entry', 'explode'], 'anchorage: entry: unknown subcommand "explode" (create, update, show, delete, list)'],
    [['server'], 'anchorage: server: give a subcommand (run)'],
    [['server', 'run'], 'anchorage: --config is required'],
    [['server', 'run', '--socket', '/x'], 'anchorage: unknown flag --socket'],
    [['entry', 'list', '--socket'], 'anchorage: --socket needs a value'],
    [['entry', 'list', '-c'], 'anchorage: --config needs a value'],
    [['entry', 'list', 'extra'], 'anchorage: unexpected argument "extra" (flags take --)'],
    [['entry', 'list', '--socket', '/a', '-c', '/b'], 'anchorage: give either --socket or -c, not both'],
    [['entry', 'list', '--output', 'yaml', '--socket', '/a'], 'anchorage: --output must be text or json, not "yaml"'],
    [['entry', 'update', '--id', 'x', '--socket', '/nonexistent'], 'anchorage: entry update: give at least one field to change'],
    [['entry', 'update', '--id', 'x', '--hint', 'h', '--revision', 'two', '--socket', '/nonexistent'], 'anchorage: --revision must be a whole number'],
    [['token', 'create', '--ttl', 'soon', '--socket', '/nonexistent'], 'anchorage: --ttl: "soon" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    [['token', 'create', '--ttl', '0', '--socket', '/nonexistent'], 'anchorage: --ttl: "0" must be greater than zero'],
    [['token', 'create', '--ttl=-60', '--socket', '/nonexistent'], 'anchorage: --ttl: "-60" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    [['token', 'create', '--ttl', '99999999999999999999', '--socket', '/nonexistent'], 'anchorage: --ttl: "99999999999999999999" is too large'],
    [['entry', 'create', '--x509-ttl', '1.5', '--socket', '/n'], 'anchorage: --spiffe-id is required'],
    [['entry', 'create', '--spiffe-id', 's', '--parent-id', 'p', '--selector', 'unix:uid:1', '--x509-ttl', '1.5', '--socket', '/n'], 'anchorage: --x509-ttl: "1.5" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    [['entry', 'list', '--spife-id', 'x'], 'anchorage: unknown flag --spife-id; did you mean --spiffe-id?'],
    [['entry', 'list', '--colour', 'blue'], 'anchorage: unknown flag --colour'],
    [['entry', 'list', '-z'], 'anchorage: unknown flag -z'],
    [['check', '--bogus'], 'anchorage: unknown flag --bogus'],
    [['check', 'now'], 'anchorage: unexpected argument "now" (flags take --)'],
    [['check', '--output', 'xml', '--socket', '/n'], 'anchorage: --output must be text or json, not "xml"'],
    [['check', '-output', 'json'], 'anchorage: unknown flag -output; did you mean --output?'],
    [['anchors'], 'anchorage: anchors: give a subcommand (list)'],
    [['anchors', 'show'], 'anchorage: anchors: unknown subcommand "show" (list)'],
    [['anchors', 'list', '--trust-domain', 'x'], 'anchorage: unknown flag --trust-domain'],
  ])('answers %j with exit 2 and one line', (args, line) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(line);
  });

  it('points a usage error at the help of as much of the command as it recognized', () => {
    const second = (args: string[]) => cli(args).stderr.split('\n')[1];
    expect(second(['frobnicate'])).toBe('(run "anchorage help" for usage)');
    expect(second(['entry', 'explode'])).toBe('(run "anchorage entry --help" for usage)');
    expect(second(['entry', 'list', '--colour'])).toBe('(run "anchorage entry list --help" for usage)');
    expect(second(['check', '--bogus'])).toBe('(run "anchorage check --help" for usage)');
  });

  // Flags of spire-server's CLI, as an operator used to it types them.
  it.each<[string[], string]>([
    [['entry', 'create', '-spiffeID', 'spiffe://td/w'], '-spiffeID; did you mean --spiffe-id?'],
    [['entry', 'create', '-parentID', 'spiffe://td/a'], '-parentID; did you mean --parent-id?'],
    [['entry', 'create', '-selector', 'unix:uid:1'], '-selector; did you mean --selector?'],
    [['entry', 'create', '-x509SVIDTTL', '60'], '-x509SVIDTTL; did you mean --x509-ttl?'],
    [['entry', 'create', '-jwtSVIDTTL', '60'], '-jwtSVIDTTL; did you mean --jwt-ttl?'],
    [['entry', 'create', '-ttl', '60'], '-ttl; did you mean --x509-ttl?'],
    [['entry', 'create', '-dns', 'a.example'], '-dns; did you mean --dns?'],
    [['entry', 'create', '-federatesWith', 'spiffe://peer'], '-federatesWith; did you mean --federates-with?'],
    [['entry', 'show', '-entryID', 'x'], '-entryID; did you mean --id?'],
    [['entry', 'list', '-socketPath', '/s'], '-socketPath; did you mean --socket?'],
    [['entry', 'list', '-registrationUDSPath', '/s'], '-registrationUDSPath; did you mean --socket?'],
    [['entry', 'list', '-output', 'json'], '-output; did you mean --output?'],
    [['entry', 'list', '-config', 'server.yaml'], '-config; did you mean --config?'],
    [['token', 'create', '-ttl', '60'], '-ttl; did you mean --ttl?'],
    [['x509', 'mint', '-write', 'dir'], '-write; did you mean --out-dir?'],
    [['bundle', 'set', '-id', 'spiffe://peer', '-path', 'b.json'], '-id; did you mean --trust-domain?'],
    [['federation', 'create', '-bundleEndpointURL', 'https://x'], '-bundleEndpointURL; did you mean --url?'],
    [['jwt', 'mint', '-audience', 'a'], '-audience; did you mean --audience?'],
  ])('answers SPIRE\'s %j with a hint naming our flag, exit 2', (args, hint) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`anchorage: unknown flag ${hint}\n(run "anchorage ${args[0]} ${args[1]} --help" for usage)\n`);
  });

  it('says so when SPIRE has a flag we lack, and never reads a single-dash word as short flags', () => {
    const r = cli(['entry', 'list', '-node']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('anchorage: unknown flag -node');
    const c = cli(['entry', 'list', '-cserver']);
    expect(c.code).toBe(2);
    expect(c.stderr.split('\n')[0]).toBe('anchorage: unknown flag -cserver');
  });

  it('finds the admin socket through --socket, then -c, then $ANCHORAGE_ADMIN_SOCKET, then the default', () => {
    const env = { ...process.env, ANCHORAGE_ADMIN_SOCKET: '/nonexistent/env.sock' };
    const viaEnv = cli(['entry', 'list'], env);
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toBe('anchorage: cli: no admin socket at /nonexistent/env.sock ($ANCHORAGE_ADMIN_SOCKET); is "anchorage server run" running?\n');
    const viaFlag = cli(['entry', 'list', '--socket', '/nonexistent/flag.sock'], env);
    expect(viaFlag.stderr).toBe('anchorage: cli: no admin socket at /nonexistent/flag.sock (--socket); is "anchorage server run" running?\n');
    const unset = { ...process.env };
    delete unset.ANCHORAGE_ADMIN_SOCKET;
    for (const e of [unset, { ...unset, ANCHORAGE_ADMIN_SOCKET: '' }]) {
      const viaDefault = cli(['entry', 'list'], e);
      expect(viaDefault.code).toBe(1);
      expect(viaDefault.stderr).toBe(
        'anchorage: cli: no admin socket at /run/anchorage-server/private/admin.sock (the default; give --socket, -c server.yaml or $ANCHORAGE_ADMIN_SOCKET); is "anchorage server run" running?\n',
      );
    }
    const relative = cli(['entry', 'list'], { ...process.env, ANCHORAGE_ADMIN_SOCKET: 'admin.sock' });
    expect(relative.code).toBe(2);
    expect(relative.stderr.split('\n')[0]).toBe('anchorage: ANCHORAGE_ADMIN_SOCKET must be an absolute path, not "admin.sock"');
  });

  it('names an unreadable config given with -c', () => {
    const r = cli(['entry', 'list', '-c', '/nonexistent/server.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('anchorage: config: cannot read /nonexistent/server.yaml: ENOENT');
  });

  it('says "cannot reach the server" only when no server answered', async () => {
    // A socket whose listener speaks no gRPC: the transport fails, grpc-js makes UNAVAILABLE itself.
    const dir = mkdtempSync(join(tmpdir(), 'anchorage-cli-'));
    const socket = join(dir, 'admin.sock');
    const mute = createServer((c) => c.destroy());
    await new Promise<void>((r) => mute.listen(socket, r));
    try {
      const r = await cliAsync(['entry', 'list', '--socket', socket]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^anchorage: cannot reach the server at ${socket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    } finally {
      mute.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
