import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError, type ErrorCode } from '@anchorage/client/errors';
import type { Selector } from '../../common/selector.js';
import { closePidfd, peerCredentials, pidfdPid } from '../../workload-api/peercred.js';
import type { PeerCredentials, WorkloadAttestor } from '../../workload-api/WorkloadAttestor.js';
import { lacks } from '../helpers/needs.js';

/**
 * The promises of the `WorkloadAttestor` interface (workload-api/WorkloadAttestor.ts),
 * checked on real processes connected to a real Unix socket, their
 * credentials read by `peerCredentials()` as the Workload API server reads
 * them. Every implementation runs it from its own test file:
 *
 *     workloadAttestorContract('unix', () => new UnixWorkloadAttestor({ logger }));
 *
 * `make` is called once per test. An attestor's `name` names the selector
 * types it produces; a union's is its members' joined by `+`.
 */
export function workloadAttestorContract(name: string, make: () => WorkloadAttestor): void {
  describe(`WorkloadAttestor contract: ${name}`, () => {
    const PERL = '/usr/bin/perl';
    let dir: string;
    let sockPath: string;
    let server: Server;
    const waiting: ((s: Socket) => void)[] = [];
    const cleanups: (() => void)[] = [];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'anchorage-attestor-contract-'));
      chmodSync(dir, 0o755);
      sockPath = join(dir, 'api.sock');
      server = createServer((s) => {
        const next = waiting.shift();
        if (next === undefined) s.destroy();
        else next(s);
      });
      await new Promise<void>((resolve) => server.listen(sockPath, resolve));
    });

    afterEach(() => {
      for (const c of cleanups.splice(0)) c();
    });

    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    });

    /** A process connected to the socket, as the server saw it at accept. `argv` defaults to a node that connects and waits. */
    async function connect(argv?: string[]): Promise<{ child: ChildProcess; peer: PeerCredentials }> {
      const accepted = new Promise<Socket>((resolve) => waiting.push(resolve));
      const [cmd, ...args] = argv ?? [
        process.execPath,
        '-e',
        `require('node:net').connect(${JSON.stringify(sockPath)}).on('error', () => process.exit(2)); setInterval(() => {}, 1e6);`,
      ];
      const child = spawn(cmd!, args, { stdio: ['pipe', 'ignore', 'inherit'] });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const sock = await Promise.race([accepted, exited.then(() => Promise.reject(new Error(`contract: ${cmd} exited before connecting`)))]);
      const peer = peerCredentials(sock);
      let pidfdOpen = peer.pidfd !== undefined;
      cleanups.push(() => {
        sock.destroy();
        child.kill('SIGKILL');
        if (pidfdOpen) closePidfd(peer.pidfd!);
        pidfdOpen = false;
      });
      return { child, peer };
    }

    async function exit(child: ChildProcess): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }

    async function rejection(p: Promise<unknown>): Promise<unknown> {
      try {
        await p;
      } catch (err) {
        return err;
      }
      throw new Error('contract: expected the attestation to fail');
    }

    function thrown(f: () => void): unknown {
      try {
        f();
      } catch (err) {
        return err;
      }
      throw new Error('contract: expected confirm() to throw');
    }

    function expectCode(err: unknown, code: ErrorCode): void {
      expect(isAnchorageError(err), `not an AnchorageError: ${String(err)}`).toBe(true);
      expect((err as { code: string }).code, String(err)).toBe(code);
    }

    const key = (s: Selector): string => `${s.type}:${s.value}`;

    it('attests a live caller with selectors of its own types only, each once', async () => {
      const { peer } = await connect();
      const attestor = make();
      const types = attestor.name.split('+');
      const selectors = await attestor.attest(peer);
      expect(Array.isArray(selectors)).toBe(true);
      for (const s of selectors) {
        expect(types, `selector ${key(s)} is not of a type named by "${attestor.name}"`).toContain(s.type);
        expect(typeof s.value === 'string' && s.value.length > 0, `selector ${JSON.stringify(s)} has no value`).toBe(true);
      }
      expect(new Set(selectors.map(key)).size).toBe(selectors.length);
    });

    it('gives the same selectors, in the same order, every time for the same caller, sequentially or concurrently', async () => {
      const { peer } = await connect();
      const attestor = make();
      const first = await attestor.attest(peer);
      expect(await attestor.attest(peer)).toEqual(first);
      const concurrent = await Promise.all([attestor.attest(peer), attestor.attest(peer), attestor.attest(peer)]);
      for (const c of concurrent) expect(c).toEqual(first);
      // Another attestor of the same kind says the same: nothing depends on what one instance saw before.
      expect(await make().attest(peer)).toEqual(first);
    });

    it("leaves the caller's pidfd open: the credentials' owner closes it", async () => {
      const { peer } = await connect();
      if (peer.pidfd === undefined) return; // kernel without SO_PEERPIDFD: nothing to leave open
      const attestor = make();
      await attestor.attest(peer);
      attestor.confirm?.(peer);
      expect(pidfdPid(peer.pidfd)).toBe(peer.pid);
    });

    it("refuses a caller that has exited with AnchorageError 'unavailable'", async () => {
      const { child, peer } = await connect();
      const attestor = make();
      await exit(child);
      expectCode(await rejection(attestor.attest(peer)), 'unavailable');
    });

    it("refuses malformed credentials with AnchorageError 'invalid_argument'", async () => {
      const { peer } = await connect();
      const attestor = make();
      const malformed: [string, Partial<Record<keyof PeerCredentials, unknown>>][] = [
        ['pid 0', { pid: 0 }],
        ['a negative pid', { pid: -1 }],
        ['a fractional pid', { pid: peer.pid + 0.5 }],
        ['a NaN pid', { pid: NaN }],
        ['a pid as a string', { pid: String(peer.pid) }],
        ['a negative uid', { uid: -1 }],
        ['a fractional gid', { gid: 0.5 }],
        ['a uid beyond 32 bits', { uid: 2 ** 32 }],
        ['a negative pidfd', { pidfd: -1 }],
      ];
      for (const [what, change] of malformed) {
        const bad = { ...peer, ...change } as PeerCredentials;
        const err = await rejection(attestor.attest(bad));
        expect(isAnchorageError(err, 'invalid_argument'), `attest with ${what}: ${String(err)}`).toBe(true);
        if (attestor.confirm !== undefined) {
          const cerr = thrown(() => attestor.confirm!(bad));
          expect(isAnchorageError(cerr, 'invalid_argument'), `confirm with ${what}: ${String(cerr)}`).toBe(true);
        }
      }
    });

    it('confirm(), where implemented, passes for a live unchanged caller and refuses one that has exited', async () => {
      const attestor = make();
      if (attestor.confirm === undefined) return;
      const { child, peer } = await connect();
      await attestor.attest(peer);
      expect(() => attestor.confirm!(peer)).not.toThrow();
      expect(() => attestor.confirm!(peer)).not.toThrow();
      await exit(child);
      expectCode(thrown(() => attestor.confirm!(peer)), 'unavailable');
    });

    // PeerCredentials.executable: "every later attestation on the connection
    // must find the same file, or refuse"; confirm() throws permission_denied
    // for "a process that executed another binary since".
    it.skipIf(lacks(!existsSync(PERL), 'perl'))("refuses, with 'permission_denied', a caller that executed another binary after connecting", async () => {
      const sleep = realpathSync('/bin/sleep');
      const script = `use Socket; socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die; connect($s, pack_sockaddr_un($ARGV[0])) or die; <STDIN>; exec { $ARGV[1] } $ARGV[1], '1000' or die;`;
      const { child, peer } = await connect([PERL, '-e', script, sockPath, sleep]);
      expect(peer.executable, 'the caller\'s executable was not readable at accept').toBeTruthy();
      const attestor = make();
      await attestor.attest(peer);
      attestor.confirm?.(peer);
      child.stdin!.write('go\n');
      // Bounded wait for the kernel to switch the image.
      for (let i = 0; i < 500 && readlinkSync(`/proc/${child.pid}/exe`) !== sleep; i++) await new Promise((r) => setTimeout(r, 10));
      expect(readlinkSync(`/proc/${child.pid}/exe`)).toBe(sleep);
      expectCode(await rejection(attestor.attest(peer)), 'permission_denied');
      if (attestor.confirm !== undefined) expectCode(thrown(() => attestor.confirm!(peer)), 'permission_denied');
    });
  });
}
