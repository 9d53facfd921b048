import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError, isAnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import type { Selector } from '../../common/selector.js';
import { closePidfd, peerCredentials } from '../../workload-api/peercred.js';
import type { PeerCredentials, WorkloadAttestor } from '../../workload-api/WorkloadAttestor.js';
import { parseAgentConfig } from '../config.js';
import { createWorkloadAttestor, createWorkloadAttestors, WORKLOAD_ATTESTOR_TYPES, type WorkloadAttestorConfig } from './registry.js';
import { UnionAttestor } from './union.js';
import { UnixWorkloadAttestor } from './unix.js';

let dir: string;
let server: Server;
const waiting: ((s: Socket) => void)[] = [];
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-union-attestor-'));
  server = createServer((s) => {
    const next = waiting.shift();
    if (next === undefined) s.destroy();
    else next(s);
  });
  await new Promise<void>((resolve) => server.listen(join(dir, 'api.sock'), resolve));
});

afterAll(async () => {
  for (const c of cleanups) c();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** A real node process connected to the socket, with the credentials the server read at accept. */
async function caller(): Promise<{ child: ChildProcess; peer: PeerCredentials }> {
  const accepted = new Promise<Socket>((resolve) => waiting.push(resolve));
  const code = `require('node:net').connect(${JSON.stringify(join(dir, 'api.sock'))}).on('error', () => process.exit(2)); setInterval(() => {}, 1e6);`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'inherit'] });
  const sock = await accepted;
  const peer = peerCredentials(sock);
  cleanups.push(() => {
    sock.destroy();
    child.kill('SIGKILL');
    if (peer.pidfd !== undefined) closePidfd(peer.pidfd);
  });
  return { child, peer };
}

/** A second kind of attestor, as a k8s or docker one would sit beside unix: fixed selectors of its own type. */
function tagAttestor(values: string[], extra: Partial<WorkloadAttestor> = {}): WorkloadAttestor {
  return { name: 'tag', attest: async () => values.map((value) => ({ type: 'tag', value })), ...extra };
}

function unix(opts: { hashBinary?: boolean } = {}): UnixWorkloadAttestor {
  return new UnixWorkloadAttestor({ logger: silentLogger(), ...opts });
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const keys = (ss: Selector[]): string[] => ss.map((s) => `${s.type}:${s.value}`);

describe('UnionAttestor', () => {
  it("gives a caller every member's selectors, in member order, each once", async () => {
    const { peer } = await caller();
    const alone = await unix().attest(peer);
    const union = new UnionAttestor([unix(), tagAttestor(['team:a', 'team:b', 'team:a'])]);
    expect(union.name).toBe('unix+tag');
    expect(keys(await union.attest(peer))).toEqual([...keys(alone), 'tag:team:a', 'tag:team:b']);
    // A union of one is that attestor.
    expect(await new UnionAttestor([unix()]).attest(peer)).toEqual(alone);
  });

  it('fails as the failing member said, not with the others\' selectors alone', async () => {
    const { peer } = await caller();
    const failure = new AnchorageError('unavailable', 'tag: the pod is not known yet');
    const union = new UnionAttestor([unix(), tagAttestor([], { attest: () => Promise.reject(failure) })]);
    expect(await rejection(union.attest(peer))).toBe(failure);
    // A member that throws something other than an AnchorageError: passed on as is (the server wraps it as UNAVAILABLE).
    const odd = new Error('tag: boom');
    expect(await rejection(new UnionAttestor([tagAttestor([], { attest: () => Promise.reject(odd) }), unix()]).attest(peer))).toBe(odd);
  });

  it('answers only once every member has finished, so the server cannot close the pidfd under a member still using it', async () => {
    const { peer } = await caller();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // What the server does when attest() settles: release the connection's pidfd.
    let serverReleased = false;
    let slowFinishedFirst: boolean | undefined;
    const slow: WorkloadAttestor = {
      name: 'slow',
      attest: async () => {
        await released;
        slowFinishedFirst = !serverReleased;
        return [{ type: 'slow', value: 'done' }];
      },
    };
    const failure = new AnchorageError('unavailable', 'fast: gone');
    const union = new UnionAttestor([tagAttestor([], { name: 'fast', attest: () => Promise.reject(failure) }), slow]);
    const result = union.attest(peer).finally(() => (serverReleased = true));
    result.catch(() => {});
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(serverReleased).toBe(false); // the fast member failed long ago; the slow one still runs
    release();
    expect(await rejection(result)).toBe(failure);
    expect(slowFinishedFirst).toBe(true);
  });

  it('prefers a refusal (permission_denied) to other failures, whatever the member order', async () => {
    const { peer } = await caller();
    const refusal = new AnchorageError('permission_denied', 'a: refused');
    const transient = new AnchorageError('unavailable', 'b: try again');
    const refusing = tagAttestor([], { name: 'a', attest: () => Promise.reject(refusal), confirm: () => { throw refusal; } });
    const flaky = tagAttestor([], { name: 'b', attest: () => Promise.reject(transient), confirm: () => { throw transient; } });
    for (const members of [[refusing, flaky], [flaky, refusing]]) {
      const union = new UnionAttestor(members);
      expect(await rejection(union.attest(peer))).toBe(refusal);
      expect(() => union.confirm(peer)).toThrow(refusal);
    }
    // Two transient failures: the first member's.
    const other = new AnchorageError('unavailable', 'c: later');
    const union = new UnionAttestor([flaky, tagAttestor([], { name: 'c', attest: () => Promise.reject(other) })]);
    expect(await rejection(union.attest(peer))).toBe(transient);
  });

  it("confirm() asks every member that can confirm, and throws a member's refusal as it was thrown", async () => {
    const { child, peer } = await caller();
    const asked: string[] = [];
    const counting = (name: string): WorkloadAttestor => tagAttestor([], { name, confirm: () => void asked.push(name) });
    const union = new UnionAttestor([counting('a'), tagAttestor([], { name: 'noconfirm' }), unix(), counting('b')]);
    union.confirm(peer);
    expect(asked).toEqual(['a', 'b']);
    // The unix member's verdict on a caller that has gone, unchanged by the union.
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    let err: unknown;
    try {
      union.confirm(peer);
    } catch (e) {
      err = e;
    }
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toBe(`attestor: the calling process (pid ${peer.pid}) has exited`);
    expect(asked).toEqual(['a', 'b', 'a', 'b']); // the others were still asked
  });

  it('refuses an empty union and two members of one selector type', () => {
    expect(() => new UnionAttestor([])).toThrow(new AnchorageError('invalid_argument', 'attestor: a union needs at least one attestor'));
    expect(() => new UnionAttestor([unix(), unix()])).toThrow(new AnchorageError('invalid_argument', 'attestor: two attestors produce "unix" selectors'));
    expect(() => new UnionAttestor([tagAttestor([], { name: 'a+b' })])).toThrow(new AnchorageError('invalid_argument', 'attestor: "a+b" is not a selector type'));
  });
});

describe('workload attestor registry', () => {
  it('knows unix', () => {
    expect(WORKLOAD_ATTESTOR_TYPES).toEqual(['unix']);
  });

  it('builds the configured attestors, options applied, behind one union (as node-agent/run.ts does)', async () => {
    const { peer } = await caller();
    const base = { trust_domain: 'example.org', server_address: '127.0.0.1:8081', data_dir: 'agent', insecure_bootstrap: true };
    const hashed = createWorkloadAttestors(parseAgentConfig(base, 'agent.yaml', '/').workload_attestors, { logger: silentLogger() });
    expect(hashed.name).toBe('unix');
    expect(hashed.members.map((m) => m.constructor)).toEqual([UnixWorkloadAttestor]);
    expect(keys(await hashed.attest(peer)).some((k) => k.startsWith('unix:sha256:'))).toBe(true);
    for (const doc of [{ ...base, workload_attestors: [{ type: 'unix', hash_binary: false }] }, { ...base, attestor: { hash_binary: false } }]) {
      const config = parseAgentConfig(doc, 'agent.yaml', '/');
      const got = keys(await createWorkloadAttestors(config.workload_attestors, { logger: silentLogger() }).attest(peer));
      expect(got).toEqual(keys(await unix({ hashBinary: false }).attest(peer)));
      expect(got.some((k) => k.startsWith('unix:sha256:'))).toBe(false);
    }
  });

  it('refuses a type it does not know, naming the known ones', () => {
    expect(() => createWorkloadAttestor({ type: 'k8s' } as unknown as WorkloadAttestorConfig, { logger: silentLogger() })).toThrow(
      new AnchorageError('invalid_argument', 'attestor: unknown workload attestor type "k8s"; known types: unix'),
    );
  });
});
