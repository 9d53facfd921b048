import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from '@anchorage/client/errors';
import { closePidfd, executableIdentity, peerCredentials, pidfdAlive, pidfdPid } from './peercred.js';
import { parseStartTime } from '../node-agent/attestor/proc.js';
import { lacks } from '../test/helpers/needs.js';

const isRoot = process.getuid?.() === 0;

let dir: string;
let sockPath: string;
let server: Server;
const waiting: ((s: Socket) => void)[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-peercred-'));
  chmodSync(dir, 0o755); // let a child running as nobody reach the socket
  sockPath = join(dir, 'api.sock');
  server = createServer((s) => {
    const next = waiting.shift();
    if (next === undefined) s.destroy();
    else next(s);
  });
  await new Promise<void>((resolve) => server.listen(sockPath, resolve));
  chmodSync(sockPath, 0o777);
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** Spawns a real process that connects to the test socket and idles; resolves with the accepted side. */
async function connectChild(opts: { uid?: number; gid?: number } = {}): Promise<{ child: ChildProcess; sock: Socket }> {
  const accepted = new Promise<Socket>((resolve) => waiting.push(resolve));
  const script = `const s = require('node:net').connect(${JSON.stringify(sockPath)}); s.on('error', (e) => { console.error(e); process.exit(2); }); setInterval(() => {}, 1e6);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit'], ...opts });
  const sock = await accepted;
  return { child, sock };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('peerCredentials', () => {
  it('reports the connecting process, with a pidfd that sees it exit', async () => {
    const { child, sock } = await connectChild();
    try {
      const peer = peerCredentials(sock);
      expect(peer.pid).toBe(child.pid);
      expect(peer.uid).toBe(process.getuid?.());
      expect(peer.gid).toBe(process.getgid?.());
      expect(typeof peer.pidfd).toBe('number');
      const pidfd = peer.pidfd as number;
      expect(pidfdAlive(pidfd)).toBe(true);
      expect(pidfdPid(pidfd)).toBe(child.pid);

      await kill(child);
      expect(pidfdAlive(pidfd)).toBe(false);
      expect(pidfdPid(pidfd)).toBe(-1); // reaped by node's SIGCHLD handler
      closePidfd(pidfd);
      expect(() => pidfdAlive(pidfd)).toThrow(/not an open descriptor/);
    } finally {
      sock.destroy();
      await kill(child);
    }
  });

  it('records, at accept, the executable the peer runs and its start time', async () => {
    const { child, sock } = await connectChild();
    try {
      const peer = peerCredentials(sock);
      const st = statSync(process.execPath, { bigint: true });
      expect(peer.executable).toEqual(executableIdentity(st));
      expect(peer.executable!.contentKey).toBe(`${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`);
      expect(peer.startTime).toBe(parseStartTime(readFileSync(`/proc/${child.pid}/stat`, 'utf8')));
      if (peer.pidfd !== undefined) closePidfd(peer.pidfd);
      // Nothing to read under a procfs without this pid: recorded as unknown, not guessed.
      const blind = peerCredentials(sock, { procRoot: dir });
      expect(blind.executable).toBeNull();
      expect(blind.startTime).toBeUndefined();
      if (blind.pidfd !== undefined) closePidfd(blind.pidfd);
    } finally {
      sock.destroy();
      await kill(child);
    }
  });

  it.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('reports the uid/gid the kernel saw, for a child running as nobody', async () => {
    const { child, sock } = await connectChild({ uid: 65534, gid: 65534 });
    try {
      const peer = peerCredentials(sock);
      expect(peer).toMatchObject({ pid: child.pid, uid: 65534, gid: 65534 });
      if (peer.pidfd !== undefined) closePidfd(peer.pidfd);
    } finally {
      sock.destroy();
      await kill(child);
    }
  });

  it('rejects a TCP socket with a clear error', async () => {
    const tcp = createServer();
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const addr = tcp.address();
    if (addr === null || typeof addr === 'string') throw new Error('no tcp address');
    const accepted = new Promise<Socket>((resolve) => tcp.once('connection', resolve));
    const client = connect(addr.port, '127.0.0.1');
    const sock = await accepted;
    try {
      let err: unknown;
      try {
        peerCredentials(sock);
      } catch (e) {
        err = e;
      }
      expect(isAnchorageError(err, 'invalid_argument')).toBe(true);
      expect((err as Error).message).toMatch(/^peercred: socket is not a unix-domain socket/);
    } finally {
      sock.destroy();
      client.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    }
  });

  it('rejects a closed socket', async () => {
    const { child, sock } = await connectChild();
    try {
      sock.destroy();
      expect(() => peerCredentials(sock)).toThrow(/^peercred: socket has no file descriptor/);
    } finally {
      await kill(child);
    }
  });
});
