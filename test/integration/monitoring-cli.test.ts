// `anchorage server run` / `agent run` with the monitoring keys: a metrics
// address that cannot be used fails the start with one line and leaves
// nothing behind; a bad log_format is refused; log_format: text gives text
// lines even when stderr is not a terminal.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, assertBuilt, cli, tempDir, writeFile } from '../helpers/process.js';

let dir: { dir: string; cleanup(): void };
let occupied: Server;
let port: number;

beforeAll(async () => {
  assertBuilt();
  dir = tempDir('anchorage-moncli-');
  occupied = createServer();
  await new Promise<void>((resolve) => occupied.listen(0, '127.0.0.1', resolve));
  port = (occupied.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => occupied.close(() => resolve()));
  dir.cleanup();
});

/** A server.yaml on memory keys (fast to start), plus `extra`. */
function serverYaml(name: string, extra: string): string {
  const data = join(dir.dir, name);
  // An admin socket of its own: never the machine-wide default, which another test or a real server may use.
  return writeFile(
    join(dir.dir, `${name}.yaml`),
    `trust_domain: moncli.test\ndata_dir: ${data}\nadmin_socket: ${join(dir.dir, `${name}.sock`)}\nbind_address: 127.0.0.1:0\nkey_manager:\n  type: memory\n${extra}`,
  );
}

describe('monitoring keys on the command line', () => {
  it('an occupied metrics port fails `server run` with one line, and the admin socket is gone', () => {
    const cfg = serverYaml('busy', `metrics:\n  address: 127.0.0.1:${port}\n`);
    const r = cli(['server', 'run', '-c', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`anchorage: metrics: cannot listen on metrics.address 127.0.0.1:${port}: the port is already in use`);
    expect(existsSync(join(dir.dir, 'busy', 'admin.sock'))).toBe(false);
  });

  it('a bad log_format fails with one line naming the key', () => {
    const cfg = serverYaml('badfmt', 'log_format: yaml\n');
    const r = cli(['server', 'run', '-c', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`anchorage: config: ${cfg}: log_format: must be text or json`);
  });

  it('an agent whose metrics port is taken does not start either', () => {
    const cfg = writeFile(
      join(dir.dir, 'agent.yaml'),
      `trust_domain: moncli.test\nserver_address: 127.0.0.1:1\ndata_dir: ${join(dir.dir, 'agent')}\nsocket_path: ${join(dir.dir, 'public', 'api.sock')}\ninsecure_bootstrap: true\njoin_token: ${'a'.repeat(32)}\nmetrics:\n  address: 127.0.0.1:${port}\n`,
    );
    const r = cli(['agent', 'run', '-c', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`anchorage: metrics: cannot listen on metrics.address 127.0.0.1:${port}: the port is already in use`);
    expect(existsSync(join(dir.dir, 'public', 'api.sock'))).toBe(false);
  });

  it('log_format: text writes text lines even to a pipe', async () => {
    const cfg = serverYaml('text', 'log_format: text\n');
    const child = spawn(process.execPath, [BIN, 'server', 'run', '-c', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (d) => {
        err += d;
        if (err.includes(' server: ready')) resolve();
      });
      child.once('exit', () => reject(new Error(`server exited:\n${err}`)));
    });
    child.kill('SIGTERM');
    await exited;
    const lines = err.trim().split('\n');
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) \S/);
    expect(lines.some((l) => / INFO  server: ready trustDomain=moncli\.test keyManager=memory /.test(l))).toBe(true);
    expect(err).not.toContain('{"level"');
  });
});
