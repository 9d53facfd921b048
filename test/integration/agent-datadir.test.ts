import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cli, startAgentProcess, writeFile, type AnchorageProcess } from '../helpers/process.js';
import { startServerFixture, type ServerFixture } from '../helpers/server-fixture.js';
import { lacks } from '../helpers/needs.js';

/**
 * Issue 10, item 10: a data_dir another uid controls. Its owner could plant a
 * link where the agent writes its state and so receive the agent's keys; the
 * agent (and the server) must refuse such a directory, write through
 * unpredictable temp names that never follow links, and clear the temp files
 * a killed writer left behind.
 */

const TD = 'agent-datadir.test';
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

let f: ServerFixture;
const running: AnchorageProcess[] = [];
let n = 0;

/** A fresh agent data dir path and socket; the directory itself is made by the caller (or the agent). */
function paths(): { dataDir: string; socket: string; name: string } {
  n++;
  return { dataDir: join(f.dir, `agent-${n}`), socket: join(f.dir, `sock-${n}`, 'api.sock'), name: `agent-${n}` };
}

/** A file the attacker (uid 65534) owns and wants the agent's keys written into. */
function victimFile(name: string): string {
  const path = join(f.dir, name);
  writeFileSync(path, 'attacker file\n', { mode: 0o666 });
  chownSync(path, NOBODY, NOBODY);
  return path;
}

beforeAll(async () => {
  f = await startServerFixture(TD, 'anchorage-agent-datadir-');
}, 120_000);

afterAll(async () => {
  for (const p of running) await p.kill('SIGTERM');
  await f?.close();
});

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('a data_dir another uid controls', () => {
  it('agent run refuses a data_dir owned by uid 65534 with one line, and leaves it as it was', () => {
    const { dataDir, socket, name } = paths();
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    chownSync(dataDir, NOBODY, NOBODY);
    const cfg = f.agentConfig(name, { dataDir, socket, token: 'ab'.repeat(16) });
    const r = cli(['agent', 'run', '-c', cfg], f.env);
    expect(r.stderr).toBe(
      `anchorage: agent: data_dir ${dataDir} is owned by uid ${NOBODY}, not by uid 0 that runs the agent; chown it or choose another data_dir\n`,
    );
    expect(r.code).toBe(1);
    // Not "fixed" behind the owner's back, and nothing written into it.
    const st = statSync(dataDir);
    expect([st.uid, st.mode & 0o777]).toEqual([NOBODY, 0o755]);
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it('agent run refuses a group-writable data_dir and a data_dir that is a symbolic link', () => {
    const a = paths();
    mkdirSync(a.dataDir);
    chmodSync(a.dataDir, 0o770);
    const r1 = cli(['agent', 'run', '-c', f.agentConfig(a.name, { dataDir: a.dataDir, socket: a.socket, token: 'ab'.repeat(16) })], f.env);
    expect(r1.stderr).toBe(`anchorage: agent: data_dir ${a.dataDir} is writable by group or others (mode 770); chmod 700 it\n`);
    expect(r1.code).toBe(1);

    const b = paths();
    const real = join(f.dir, `${b.name}-real`);
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, b.dataDir);
    const r2 = cli(['agent', 'run', '-c', f.agentConfig(b.name, { dataDir: b.dataDir, socket: b.socket, token: 'ab'.repeat(16) })], f.env);
    expect(r2.stderr).toBe(`anchorage: agent: data_dir ${b.dataDir} is a symbolic link; give the real directory\n`);
    expect(r2.code).toBe(1);
    expect(readdirSync(real)).toEqual([]);
  });

  it('agent run refuses a data_dir below a directory uid 65534 owns (it could swap the whole directory)', () => {
    const parent = join(f.dir, 'nobody-parent');
    mkdirSync(parent, { mode: 0o755 });
    chownSync(parent, NOBODY, NOBODY);
    const dataDir = join(parent, 'agent');
    const r = cli(['agent', 'run', '-c', f.agentConfig('nobody-parent', { dataDir, socket: join(f.dir, 'sock-np', 'api.sock'), token: 'ab'.repeat(16) })], f.env);
    expect(r.stderr).toBe(
      `anchorage: agent: ${parent}, above data_dir ${dataDir}, belongs to uid ${NOBODY}; only root or uid 0 (which runs the agent) may own it; choose another data_dir\n`,
    );
    expect(r.code).toBe(1);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('server run refuses a data_dir owned by uid 65534 with one line', () => {
    const dataDir = join(f.dir, 'server-nobody');
    mkdirSync(dataDir, { mode: 0o700 });
    chownSync(dataDir, NOBODY, NOBODY);
    const cfg = writeFile(
      join(f.dir, 'server-nobody.yaml'),
      `trust_domain: ${TD}\ndata_dir: ${dataDir}\nadmin_socket: ${join(f.dir, 'server-nobody.sock')}\nbind_address: 127.0.0.1:0\nkey_manager:\n  type: memory\n`,
    );
    const r = cli(['server', 'run', '-c', cfg], f.env);
    expect(r.stderr).toBe(
      `anchorage: server: data_dir ${dataDir} is owned by uid ${NOBODY}, not by uid 0 that runs the server; chown it or choose another data_dir\n`,
    );
    expect(r.code).toBe(1);
    expect(readdirSync(dataDir)).toEqual([]);
  });
});

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('state writes', () => {
  it('does not follow a link planted at the old predictable temp name (<state>.<pid>.tmp)', async () => {
    const { dataDir, socket, name } = paths();
    mkdirSync(dataDir, { mode: 0o700 });
    const victim = victimFile(`${name}-victim`);
    const cfg = f.agentConfig(name, { dataDir, socket, token: await f.newToken() });
    const child = spawn(process.execPath, [BIN, 'agent', 'run', '-c', cfg], { env: f.env, stdio: ['ignore', 'pipe', 'pipe'] });
    // Planted before the agent's first state write (it attests first): the
    // name a writer using `${path}.${pid}.tmp` would open.
    symlinkSync(victim, join(dataDir, `agent-state.json.${child.pid}.tmp`));
    let log = '';
    child.stderr.on('data', (d) => (log += d));
    child.stdout.on('data', (d) => (log += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    try {
      const deadline = Date.now() + 30_000;
      while (!(log.includes('"agent: workload api listening"') && existsSync(join(dataDir, 'agent-state.json')))) {
        if (child.exitCode !== null) throw new Error(`agent exited: ${log}`);
        if (Date.now() > deadline) throw new Error(`agent not ready: ${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(readFileSync(victim, 'utf8')).toBe('attacker file\n');
      const st = lstatSync(join(dataDir, 'agent-state.json'));
      expect(st.isFile()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(join(dataDir, 'agent-state.json'), 'utf8')).agent.spiffeId).toMatch(/\/anchorage\/agent\/join_token\//);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    // Nor at shutdown, the last write.
    expect(readFileSync(victim, 'utf8')).toBe('attacker file\n');
  });

  it('removes temp files an interrupted write left (a 1 MB one, a link) at start, and nothing else', async () => {
    const { dataDir, socket, name } = paths();
    mkdirSync(dataDir, { mode: 0o700 });
    const victim = victimFile(`${name}-victim`);
    writeFileSync(join(dataDir, 'agent-state.json.4242.tmp'), Buffer.alloc(1 << 20, 0x7b), { mode: 0o600 });
    writeFileSync(join(dataDir, '.agent-state.json.0123456789abcdef.tmp'), '{"version":1,', { mode: 0o600 });
    symlinkSync(victim, join(dataDir, '.agent-state.json.fedcba9876543210.tmp'));
    writeFileSync(join(dataDir, 'notes.tmp'), 'not ours to remove\n', { mode: 0o600 });
    const agent = await startAgentProcess(f.agentConfig(name, { dataDir, socket, token: await f.newToken() }), socket, f.env);
    running.push(agent);
    expect(readdirSync(dataDir).filter((e) => e.includes('agent-state.json') && e.endsWith('.tmp'))).toEqual([]);
    expect(readFileSync(join(dataDir, 'notes.tmp'), 'utf8')).toBe('not ours to remove\n');
    expect(readFileSync(victim, 'utf8')).toBe('attacker file\n');
    expect(agent.log()).toContain('"msg":"agent: removed temp files of an interrupted state write"');
    await agent.kill('SIGTERM');
  });
});
