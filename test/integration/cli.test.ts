import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertBuilt, cli, cliAsync } from '../helpers/process.js';

describe('anchorage command line', () => {
  assertBuilt();

  it('prints usage for help, exit 0; for no command, exit 2', () => {
    for (const args of [['help'], ['--help'], ['entry', 'create', '--help'], ['x509', 'mint', '-h']]) {
      const r = cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^usage: anchorage <command> \[flags\]/);
    }
    const none = cli([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toMatch(/^usage: /);
  });

  it.each<[string[], string]>([
    [['frobnicate'], 'anchorage: unknown command "frobnicate"'],
    [['entry', 'explode'], 'anchorage: entry: unknown subcommand "explode" (create, update, show, delete, list)'],
    [['server'], 'anchorage: server: unknown subcommand "" (run)'],
    [['server', 'run'], 'anchorage: --config is required'],
    [['entry', 'list', '--socket'], "anchorage: Option '--socket <value>' argument missing"],
    [['entry', 'list', '--socket', '/a', '-c', '/b'], 'anchorage: give either --socket or -c, not both'],
    [['entry', 'update', '--id', 'x', '--socket', '/nonexistent'], 'anchorage: entry update: give at least one field to change'],
    [['entry', 'update', '--id', 'x', '--hint', 'h', '--revision', 'two', '--socket', '/nonexistent'], 'anchorage: --revision must be a whole number'],
    [['token', 'create', '--ttl', 'soon', '--socket', '/nonexistent'], 'anchorage: --ttl: "soon" is not a duration (use e.g. 30s, 15m, 1h30m, 7d)'],
  ])('answers %j with exit 2 and one line', (args, line) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(line);
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
