// Fault: the datastore's filesystem fills up and drains, under a real
// `anchorage server run` driven by the real `anchorage` CLI (issue 10, item 2).
//
// Before the fix, `entry create` printed IDs for entries that were never
// saved and `entry delete` said "Deleted" while the entry stayed. The promise
// checked here: every command either confirms a change that is there after
// the server is killed and started again, or exits 1 with the datastore's
// UNAVAILABLE message; once the space is back, writes work again.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODE_TRAILER } from '../../common/grpc.js';
import { loadAdminProto } from '../../proto/load.js';
import { cliAsync, startServerProcess, tempDir, type CliResult, type ServerProcess } from '../helpers/process.js';
import { createSoftHsmToken, type SoftHsmToken, writePkcs11ServerConfig } from '../helpers/softhsm.js';
import { canMount, mountSmallFs, type SmallFs } from '../helpers/tmpfs.js';
import { lacks } from '../helpers/needs.js';

const TD = 'full.example';
const PARENT = `spiffe://${TD}/anchorage/agent/join_token/parent`;
const FULL = 'datastore: create entry: write failed, nothing was saved: database or disk is full';
const DELETE_FULL = 'datastore: delete entry: write failed, nothing was saved: database or disk is full';

describe.skipIf(lacks(!canMount, 'root, to mount a tmpfs'))('fault: the datastore filesystem fills up and drains (real server, real CLI)', () => {
  let token: SoftHsmToken;
  let tmp: { dir: string; cleanup: () => void };
  let fs: SmallFs;
  let server: ServerProcess | undefined;
  let config: string;
  let socket: string;
  let env: NodeJS.ProcessEnv;

  const start = async (): Promise<ServerProcess> => (server = await startServerProcess(config, socket, env));
  const run = (args: string[]): Promise<CliResult> => cliAsync([...args, '--socket', socket], env);
  const create = (i: number): Promise<CliResult> =>
    run(['entry', 'create', '--json', '--spiffe-id', `spiffe://${TD}/w${i}`, '--parent-id', PARENT, '--selector', `unix:uid:${1000 + i}`, '--hint', 'h'.repeat(200)]);
  const listIds = async (): Promise<string[]> => {
    const r = await run(['entry', 'list', '--json']);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { id: string }[]).map((e) => e.id).sort();
  };

  beforeAll(async () => {
    token = createSoftHsmToken('anchorage-full', '2468');
    tmp = tempDir('anchorage-fault-full-');
    fs = mountSmallFs(4 * 1024 * 1024);
    env = { ...token.env };
    socket = join(tmp.dir, 'admin.sock');
    config = writePkcs11ServerConfig(token, { dir: tmp.dir, trustDomain: TD, socket, dataDir: join(fs.dir, 'data') });
    await start();
  });

  afterAll(async () => {
    await server?.kill('SIGKILL');
    fs?.unmount();
    tmp?.cleanup();
    token?.cleanup();
  });

  it('confirms only what it saved, refuses the rest with UNAVAILABLE, and writes again once drained', async () => {
    // Before the disk fills: a few entries, one of which will be deleted while full.
    const seeded: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await create(i);
      expect(r.code, r.stderr).toBe(0);
      seeded.push((JSON.parse(r.stdout) as { id: string }).id);
    }
    const victim = seeded[0]!;

    fs.fill();
    const confirmed: string[] = [];
    let refused = 0;
    for (let i = 100; i < 112; i++) {
      const r = await create(i);
      if (r.code === 0) {
        confirmed.push((JSON.parse(r.stdout) as { id: string }).id);
      } else {
        expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 1, stdout: '', stderr: expect.stringContaining(FULL) as unknown });
        refused++;
      }
    }
    // At the admin API's edge: UNAVAILABLE with the datastore's message, and
    // the trailer that tells it from a server that could not be reached.
    const raw = new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${socket}`, grpc.credentials.createInsecure());
    const status = await new Promise<{ code: number; details: string; trailer: unknown[] }>((resolve) =>
      raw.CreateEntry(
        { entry: { spiffe_id: `spiffe://${TD}/raw`, parent_id: PARENT, selectors: [{ type: 'unix', value: 'uid:7' }] } },
        (err) => resolve({ code: err?.code ?? 0, details: err?.details ?? '', trailer: err?.metadata.get(ERROR_CODE_TRAILER) ?? [] }),
      ),
    );
    raw.close();
    expect(status).toEqual({ code: grpc.status.UNAVAILABLE, details: FULL, trailer: ['unavailable'] });

    // A join token that was not saved would be handed out and then fail the agent.
    const tok = await run(['token', 'create', '--ttl', '10m']);
    expect({ code: tok.code, stdout: tok.stdout, stderr: tok.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr: expect.stringContaining('datastore: create join token: write failed, nothing was saved: database or disk is full') as unknown,
    });
    const del = await run(['entry', 'delete', '--id', victim]);
    const deleted = del.code === 0;
    if (deleted) expect(del.stdout).toBe(`Deleted entry ${victim} (spiffe://${TD}/w0)\n`);
    else expect({ code: del.code, stderr: del.stderr }).toEqual({ code: 1, stderr: expect.stringContaining(DELETE_FULL) as unknown });

    // The process dies while the disk is still full; what it confirmed must
    // already be on disk. Then the space comes back and the server restarts.
    await server!.kill('SIGKILL');
    fs.drain();
    await start();
    const expected = [...seeded.filter((id) => !(deleted && id === victim)), ...confirmed].sort();
    expect(await listIds()).toEqual(expected);
    // The full disk was real: at least the first writes after filling it failed
    // (an old build "confirmed" all of them and lost them).
    expect(refused).toBeGreaterThan(0);
    expect(deleted).toBe(false);

    // Drained: the same commands succeed and persist.
    const again = await create(200);
    expect(again.code, again.stderr).toBe(0);
    const againId = (JSON.parse(again.stdout) as { id: string }).id;
    const del2 = await run(['entry', 'delete', '--id', victim]);
    expect(del2.code, del2.stderr).toBe(0);
    await server!.kill('SIGTERM');
    await start();
    expect(await listIds()).toEqual([...expected.filter((id) => id !== victim), againId].sort());
  });
});
