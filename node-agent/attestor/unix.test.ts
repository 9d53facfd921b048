import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, rename, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import type { Selector } from '../../common/selector.js';
import { closePidfd, executableIdentity, peerCredentials } from '../../workload-api/peercred.js';
import { UnixWorkloadAttestor } from './unix.js';
import type { PeerCredentials } from '../../workload-api/WorkloadAttestor.js';
import { lacks } from '../../test/helpers/needs.js';

const isRoot = process.getuid?.() === 0;
const hasSetpriv = (() => {
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const BIG = 512 * 1024 * 1024; // above the size of any node binary

let dir: string;
let sockPath: string;
let server: Server;
let nodePath: string;
let nodeSha256: string;
const waiting: ((s: Socket) => void)[] = [];
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-unix-attestor-'));
  chmodSync(dir, 0o755);
  sockPath = join(dir, 'api.sock');
  server = createServer((s) => {
    const next = waiting.shift();
    if (next === undefined) s.destroy();
    else next(s);
  });
  await new Promise<void>((resolve) => server.listen(sockPath, resolve));
  chmodSync(sockPath, 0o777);
  nodePath = realpathSync(process.execPath);
  nodeSha256 = createHash('sha256').update(readFileSync(nodePath)).digest('hex');
});

afterAll(async () => {
  for (const c of cleanups) c();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const CLIENT = () =>
  `const s = require('node:net').connect(${JSON.stringify(sockPath)}); s.on('error', (e) => { console.error(e); process.exit(2); }); setInterval(() => {}, 1e6);`;

/**
 * A real process connected to the test socket, and its kernel credentials.
 * `wrap` runs node under another program that execs it (setpriv), so the pid
 * stays the same.
 */
async function connectChild(opts: { uid?: number; gid?: number; wrap?: string[] } = {}): Promise<{ child: ChildProcess; peer: PeerCredentials }> {
  const accepted = new Promise<Socket>((resolve) => waiting.push(resolve));
  const [cmd, ...args] = opts.wrap === undefined ? [process.execPath, '-e', CLIENT()] : [...opts.wrap, process.execPath, '-e', CLIENT()];
  const spawnOpts: { stdio: ['ignore', 'ignore', 'inherit']; uid?: number; gid?: number } = { stdio: ['ignore', 'ignore', 'inherit'] };
  if (opts.uid !== undefined) spawnOpts.uid = opts.uid;
  if (opts.gid !== undefined) spawnOpts.gid = opts.gid;
  const child = spawn(cmd as string, args, spawnOpts);
  const sock = await accepted;
  const peer = peerCredentials(sock);
  cleanups.push(() => {
    sock.destroy();
    child.kill('SIGKILL');
  });
  return { child, peer };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

function getent(db: 'passwd' | 'group', id: number): string {
  return execFileSync('getent', [db, String(id)], { encoding: 'utf8' }).split(':')[0] as string;
}

function values(selectors: Selector[]): string[] {
  for (const s of selectors) expect(s.type).toBe('unix');
  return selectors.map((s) => s.value);
}

async function attestError(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected attest() to fail');
}

function attestor(opts: Partial<ConstructorParameters<typeof UnixWorkloadAttestor>[0]> = {}): UnixWorkloadAttestor {
  return new UnixWorkloadAttestor({ logger: silentLogger(), maxHashBytes: BIG, ...opts });
}

describe('UnixWorkloadAttestor on real processes', () => {
  it('produces the exact selector set for a child', async () => {
    const { peer } = await connectChild();
    expect(peer.pidfd).toBeTypeOf('number');
    const uid = process.getuid?.() as number;
    const gid = process.getgid?.() as number;
    // The child inherits our supplementary groups (kernel list, not process.getgroups(), which adds the egid).
    const line = /^Groups:(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
    const supp = [...new Set(line.trim().split(/\s+/).filter((t) => t !== '').map(Number))];
    const a = attestor();
    const got = values(await a.attest(peer));
    const expected = [
      `uid:${uid}`,
      `user:${getent('passwd', uid)}`,
      `gid:${gid}`,
      `group:${getent('group', gid)}`,
      ...supp.flatMap((g) => [`supplementary_gid:${g}`, `supplementary_group:${getent('group', g)}`]),
      `path:${nodePath}`,
      `sha256:${nodeSha256}`,
    ];
    expect([...got].sort()).toEqual([...expected].sort());
    // Again, now from the hash cache: same answer.
    expect(values(await a.attest(peer))).toEqual(got);
  });

  it.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('uses the kernel credentials of a child running as nobody', async () => {
    const { peer } = await connectChild({ uid: 65534, gid: 65534 });
    expect(peer.uid).toBe(65534);
    const got = values(await attestor().attest(peer));
    // libuv drops supplementary groups when it switches uid.
    expect(got).toEqual([
      'uid:65534',
      'user:nobody',
      'gid:65534',
      `group:${getent('group', 65534)}`,
      `path:${nodePath}`,
      `sha256:${nodeSha256}`,
    ]);
  });

  it.skipIf(lacks(!isRoot || !hasSetpriv, 'root and setpriv'))('reports supplementary groups (child under setpriv --groups)', async () => {
    const { peer } = await connectChild({ wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--groups=4,24', '--'] });
    expect(peer).toMatchObject({ uid: 65534, gid: 65534 });
    const got = values(await attestor({ hashBinary: false }).attest(peer));
    expect(got).toEqual([
      'uid:65534',
      'user:nobody',
      'gid:65534',
      `group:${getent('group', 65534)}`,
      'supplementary_gid:4',
      `supplementary_group:${getent('group', 4)}`,
      'supplementary_gid:24',
      `supplementary_group:${getent('group', 24)}`,
      `path:${nodePath}`,
    ]);
  });

  it('omits sha256 when the binary is larger than maxHashBytes, and warns once', async () => {
    const { peer } = await connectChild();
    const warnings: string[] = [];
    const logger = silentLogger();
    logger.warn = ((_obj: unknown, msg?: string) => {
      warnings.push(String(msg));
    }) as typeof logger.warn;
    const a = attestor({ maxHashBytes: 1024 * 1024, logger });
    for (let i = 0; i < 2; i++) {
      const got = values(await a.attest(peer));
      expect(got.some((v) => v.startsWith('sha256:'))).toBe(false);
      expect(got).toContain(`path:${nodePath}`);
    }
    expect(warnings).toEqual(['attestor: executable is larger than maxHashBytes; no unix:sha256 selector']);
  });

  it('fails with unavailable for a process that already exited', async () => {
    const { child, peer } = await connectChild();
    await kill(child);
    const err = await attestError(attestor().attest(peer));
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
    expect(err.message).toMatch(/^attestor: the calling process \(pid \d+\) has exited/);
    // Same without the pidfd: /proc/<pid> is gone.
    const { pidfd, ...noPidfd } = peer;
    expect(pidfd).toBeTypeOf('number');
    const err2 = await attestError(attestor().attest(noPidfd));
    expect(isAnchorageError(err2, 'unavailable')).toBe(true);
    expect(err2.message).toMatch(/has exited/);
  });

  it('fails with unavailable when the pid now names another process (pid reuse)', async () => {
    const { child, peer } = await connectChild();
    await kill(child);
    // The pidfd pins the dead caller; the pid now names a live process (us).
    const reused: PeerCredentials = { ...peer, pid: process.pid };
    const err = await attestError(attestor().attest(reused));
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
  });

  it('fails with unavailable when the caller exits mid-attestation', async () => {
    const { child, peer } = await connectChild();
    // Cold hash cache: hashing the node binary keeps attest() busy long after the kill.
    const p = attestor().attest(peer);
    child.kill('SIGKILL');
    const err = await attestError(p);
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
  });

  it('rejects a pidfd that does not belong to the pid', async () => {
    const { peer } = await connectChild();
    const other = await connectChild();
    const err = await attestError(attestor().attest({ ...peer, pidfd: other.peer.pidfd as number }));
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
    expect(err.message).toMatch(/^attestor: pidfd refers to pid/);
    if (peer.pidfd !== undefined) closePidfd(peer.pidfd);
  });

  it('rejects malformed credentials', async () => {
    const err = await attestError(attestor().attest({ pid: 0, uid: 0, gid: 0 }));
    expect(isAnchorageError(err, 'invalid_argument')).toBe(true);
  });
});

const PERL = '/usr/bin/perl';
const hasPerl = existsSync(PERL);
/**
 * Connects to argv[0] (a plain socket, not close-on-exec), waits for a line
 * on stdin, then executes argv[1..]: the same process, pid and connection,
 * another binary.
 */
const CONNECT_THEN_EXEC = `use Socket; $^F = 1000;
socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
connect($s, pack_sockaddr_un(shift @ARGV)) or die "connect: $!";
my $line = <STDIN>;
exec { $ARGV[0] } @ARGV or die "exec: $!";`;

describe.skipIf(lacks(!hasPerl, 'perl'))('UnixWorkloadAttestor: exec after connect (real processes)', () => {
  async function connectThenExec(program: string[]): Promise<{ child: ChildProcess; peer: PeerCredentials; exec: () => Promise<void> }> {
    const accepted = new Promise<Socket>((resolve) => waiting.push(resolve));
    const child = spawn(PERL, ['-e', CONNECT_THEN_EXEC, sockPath, ...program], { stdio: ['pipe', 'ignore', 'inherit'] });
    const sock = await accepted;
    const peer = peerCredentials(sock);
    cleanups.push(() => {
      sock.destroy();
      child.kill('SIGKILL');
    });
    const before = readlinkSync(`/proc/${child.pid}/exe`);
    const exec = async (): Promise<void> => {
      child.stdin!.write('go\n');
      if (program[0] === PERL) return; // same binary: the link will not change (the caller polls cmdline)
      // Bounded wait for the kernel to switch the image.
      for (let i = 0; i < 500 && readlinkSync(`/proc/${child.pid}/exe`) === before; i++) await new Promise((r) => setTimeout(r, 10));
      if (readlinkSync(`/proc/${child.pid}/exe`) === before) throw new Error('the child did not exec in 5 s');
    };
    return { child, peer, exec };
  }

  it('refuses with permission_denied once the caller runs another binary, which it used to attest as that binary', async () => {
    const sleep = realpathSync('/bin/sleep');
    const { peer, exec } = await connectThenExec([sleep, '1000']);
    const a = attestor();
    expect(values(await a.attest(peer))).toContain(`path:${realpathSync(PERL)}`);
    await exec();
    const err = await attestError(a.attest(peer));
    expect(isAnchorageError(err, 'permission_denied')).toBe(true);
    expect(err.message).toBe(`attestor: the calling process (pid ${peer.pid}) executed another binary after connecting; reconnect`);
    // Without what was recorded at accept (the old behaviour), the connection
    // would have been attested as the new binary.
    const { executable: _e, startTime: _s, ...unrecorded } = peer;
    const old = values(await a.attest(unrecorded));
    expect(old).toContain(`path:${sleep}`);
    expect(old).toContain(`sha256:${createHash('sha256').update(readFileSync(sleep)).digest('hex')}`);
  });

  it('confirm() passes while the caller runs what it connected with, and refuses once it runs another binary', async () => {
    const { peer, exec } = await connectThenExec([realpathSync('/bin/sleep'), '1000']);
    const a = attestor();
    expect(() => a.confirm(peer)).not.toThrow();
    await exec();
    let err: unknown;
    try {
      a.confirm(peer);
    } catch (e) {
      err = e;
    }
    expect(isAnchorageError(err, 'permission_denied')).toBe(true);
    expect((err as Error).message).toBe(`attestor: the calling process (pid ${peer.pid}) executed another binary after connecting; reconnect`);
  });

  it('keeps the identity of a caller that executes the same binary again', async () => {
    const { peer, exec } = await connectThenExec([PERL, '-e', 'sleep 1000']);
    await exec();
    // Poll until the new image is in place (same file, so the link text does not change): its cmdline does.
    for (let i = 0; i < 500 && !readFileSync(`/proc/${peer.pid}/cmdline`, 'utf8').includes('sleep 1000'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(readFileSync(`/proc/${peer.pid}/cmdline`, 'utf8')).toContain('sleep 1000');
    const got = values(await attestor().attest(peer));
    expect(got).toContain(`path:${realpathSync(PERL)}`);
    expect(got).toContain(`sha256:${createHash('sha256').update(readFileSync(realpathSync(PERL))).digest('hex')}`);
  });
});

describe('UnixWorkloadAttestor: the executable recorded at accept (fake procRoot)', () => {
  const STATUS = 'Name:\tfake\nGroups:\t\n';
  const STAT = '4242 (fake) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1000 0 0\n';

  function fake(name: string): { root: string; bin: string; link: string } {
    const root = join(dir, name);
    mkdirSync(join(root, '4242'), { recursive: true });
    const bin = join(dir, `${name}-bin`);
    writeFileSync(bin, `#!/bin/sh\necho ${name}\n`);
    const link = join(root, '4242', 'exe');
    symlinkSync(bin, link);
    writeFileSync(join(root, '4242', 'status'), STATUS);
    writeFileSync(join(root, '4242', 'stat'), STAT);
    return { root, bin, link };
  }
  const peerOf = (link: string, extra: Partial<PeerCredentials> = {}): PeerCredentials => ({
    pid: 4242,
    uid: 0,
    gid: 0,
    executable: executableIdentity(statSync(link, { bigint: true })),
    startTime: 1000n,
    ...extra,
  });
  const pathAndHash = (v: string[]) => v.filter((x) => x.startsWith('path:') || x.startsWith('sha256:'));

  it('refuses when the link names another file than at accept', async () => {
    const { root, link } = fake('swapped');
    const peer = peerOf(link);
    const other = join(dir, 'swapped-other');
    writeFileSync(other, '#!/bin/sh\necho other\n');
    unlinkSync(link);
    symlinkSync(other, link);
    const err = await attestError(attestor({ procRoot: root }).attest(peer));
    expect(isAnchorageError(err, 'permission_denied')).toBe(true);
    expect(err.message).toBe('attestor: the calling process (pid 4242) executed another binary after connecting; reconnect');
  });

  it('keeps the path but drops sha256 when the same file was modified since accept', async () => {
    const { root, bin, link } = fake('edited');
    const peer = peerOf(link);
    appendFileSync(bin, '# appended after connect\n');
    const got = values(await attestor({ procRoot: root }).attest(peer));
    expect(pathAndHash(got)).toEqual([`path:${bin}`]);
  });

  it('serves the hash of the file as it was at accept when nothing changed, also from the cache', async () => {
    const { root, bin, link } = fake('same');
    const peer = peerOf(link);
    const a = attestor({ procRoot: root });
    const sha = createHash('sha256').update(readFileSync(bin)).digest('hex');
    expect(pathAndHash(values(await a.attest(peer)))).toEqual([`path:${bin}`, `sha256:${sha}`]);
    expect(pathAndHash(values(await a.attest(peer)))).toEqual([`path:${bin}`, `sha256:${sha}`]);
  });

  it('vouches for no executable when none could be read at accept', async () => {
    const { root, link } = fake('unreadable');
    const got = values(await attestor({ procRoot: root }).attest({ ...peerOf(link), executable: null }));
    expect(pathAndHash(got)).toEqual([]);
    expect(got).toContain('uid:0');
  });

  it('confirm() refuses a swapped executable and a reused pid, and vouches for nothing it did not record', () => {
    const { root, link } = fake('confirmed');
    const a = attestor({ procRoot: root });
    const peer = peerOf(link);
    expect(() => a.confirm(peer)).not.toThrow();
    expect(() => a.confirm(peerOf(link, { startTime: 999n }))).toThrow('attestor: the calling process (pid 4242) has exited');
    expect(() => a.confirm({ ...peer, executable: null })).not.toThrow();
    const other = join(dir, 'confirmed-other');
    writeFileSync(other, '#!/bin/sh\necho other\n');
    unlinkSync(link);
    symlinkSync(other, link);
    expect(() => a.confirm(peer)).toThrow('attestor: the calling process (pid 4242) executed another binary after connecting; reconnect');
    unlinkSync(join(root, '4242', 'stat'));
    expect(() => a.confirm(peer)).toThrow('attestor: the calling process (pid 4242) has exited');
  });

  it('refuses a pid whose start time is not the one seen at accept (pid reused since)', async () => {
    const { root, link } = fake('reborn');
    const err = await attestError(attestor({ procRoot: root }).attest(peerOf(link, { startTime: 999n })));
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
    expect(err.message).toBe('attestor: the calling process (pid 4242) has exited');
  });
});

describe('UnixWorkloadAttestor on a fake procRoot (start-time fallback)', () => {
  const STATUS = 'Name:\tfake\nUid:\t1\t1\t1\t1\nGroups:\t4 24 \n';
  const stat = (start: number) => `4242 (fa) ke) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 ${start} 0 0\n`;

  function fakeProc(name: string, opts: { binName?: string; statFile?: boolean } = {}): { root: string; bin: string; binSha: string } {
    const root = join(dir, name);
    mkdirSync(join(root, '4242'), { recursive: true });
    const bin = join(dir, `${name}-${opts.binName ?? 'bin'}`);
    const content = `#!/bin/sh\necho ${name}\n`;
    writeFileSync(bin, content);
    symlinkSync(bin, join(root, '4242', 'exe'));
    writeFileSync(join(root, '4242', 'status'), STATUS);
    if (opts.statFile !== false) writeFileSync(join(root, '4242', 'stat'), stat(1000));
    return { root, bin, binSha: createHash('sha256').update(content).digest('hex') };
  }

  it('attests from /proc files when the start time holds', async () => {
    const { root, bin, binSha } = fakeProc('steady');
    const got = values(await attestor({ procRoot: root }).attest({ pid: 4242, uid: 65534, gid: 0 }));
    expect(got).toEqual([
      'uid:65534',
      'user:nobody',
      'gid:0',
      `group:${getent('group', 0)}`,
      'supplementary_gid:4',
      `supplementary_group:${getent('group', 4)}`,
      'supplementary_gid:24',
      `supplementary_group:${getent('group', 24)}`,
      `path:${bin}`,
      `sha256:${binSha}`,
    ]);
  });

  it('omits names it cannot resolve and strips " (deleted)"', async () => {
    const { root, bin, binSha } = fakeProc('deleted', { binName: 'bin (deleted)' });
    const got = values(await attestor({ procRoot: root }).attest({ pid: 4242, uid: 4_000_000, gid: 4_000_000 }));
    expect(got).toEqual([
      'uid:4000000',
      'gid:4000000',
      'supplementary_gid:4',
      `supplementary_group:${getent('group', 4)}`,
      'supplementary_gid:24',
      `supplementary_group:${getent('group', 24)}`,
      `path:${bin.slice(0, -' (deleted)'.length)}`,
      `sha256:${binSha}`,
    ]);
  });

  it('fails when the start time changes during attestation', async () => {
    const { root } = fakeProc('reused');
    // The user database is a FIFO: attest() waits reading it (procfs files
    // are read synchronously, /etc/passwd asynchronously) until we write. In
    // between, "the process exits and its pid is reused": the start time changes.
    const passwd = join(dir, 'reused-passwd');
    execFileSync('mkfifo', [passwd]);
    const p = attestor({ procRoot: root, passwdPath: passwd, hashBinary: false }).attest({ pid: 4242, uid: 0, gid: 0 });
    const fifo = await open(passwd, 'w'); // resolves once attest() has opened it
    const tmp = join(root, '4242', 'stat.tmp');
    await writeFile(tmp, stat(2000));
    await rename(tmp, join(root, '4242', 'stat'));
    await fifo.write('root:x:0:0:root:/root:/bin/sh\n');
    await fifo.close();
    const err = await attestError(p);
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
    expect(err.message).toMatch(/^attestor: the calling process exited during attestation/);
  });

  it('fails with unavailable when the process is gone, or procfs is missing', async () => {
    const { root } = fakeProc('gone', { statFile: false });
    const err = await attestError(attestor({ procRoot: root }).attest({ pid: 4242, uid: 0, gid: 0 }));
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
    expect(err.message).toMatch(/has exited/);

    const err2 = await attestError(attestor({ procRoot: join(dir, 'no-such-proc') }).attest({ pid: 4242, uid: 0, gid: 0 }));
    expect(isAnchorageError(err2, 'unavailable')).toBe(true);
    expect(err2.message).toMatch(/is not readable .*is procfs mounted/);
  });

  it('respects hashBinary: false and a binary that grows past the limit', async () => {
    const { root, bin } = fakeProc('nohash');
    const got = values(await attestor({ procRoot: root, hashBinary: false }).attest({ pid: 4242, uid: 0, gid: 0 }));
    expect(got.filter((v) => v.startsWith('path:') || v.startsWith('sha256:'))).toEqual([`path:${bin}`]);
    const tiny = values(await attestor({ procRoot: root, maxHashBytes: 4 }).attest({ pid: 4242, uid: 0, gid: 0 }));
    expect(tiny.some((v) => v.startsWith('sha256:'))).toBe(false);
  });
});
