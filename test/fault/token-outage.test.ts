// Issue 10, item 9 and the fault suite's "the token disappearing and coming
// back", against a real `anchorage server run` on SoftHSM2: minting works,
// the token goes away (its directory renamed, which a running SoftHSM2
// process sees as CKR_OBJECT_HANDLE_INVALID / CKR_GENERAL_ERROR until it is
// re-initialized), minting fails with UNAVAILABLE and a clear message, the
// token comes back, and minting works again within seconds: same process, no
// restart.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdminProto } from '../../proto/load.js';
import { keyAndCsr } from '../helpers/csr.js';
import { cliAsync, startServerProcess, tempDir, type ServerProcess } from '../helpers/process.js';
import { createSoftHsmToken, type SoftHsmToken, writePkcs11ServerConfig } from '../helpers/softhsm.js';

const TD = 'outage.test';
let token: SoftHsmToken;
let tmp: { dir: string; cleanup: () => void };
let server: ServerProcess;
let socket: string;
let env: NodeJS.ProcessEnv;
let restore: (() => void) | undefined;

beforeAll(async () => {
  token = createSoftHsmToken('anchorage', '4321');
  tmp = tempDir('anchorage-outage-');
  env = { ...token.env };
  socket = join(tmp.dir, 'admin.sock');
  const config = writePkcs11ServerConfig(token, { dir: tmp.dir, trustDomain: TD, socket });
  server = await startServerProcess(config, socket, env);
});

afterAll(async () => {
  restore?.();
  await server?.kill('SIGTERM');
  tmp?.cleanup();
  token?.cleanup();
});

let n = 0;
function mint() {
  const out = join(tmp.dir, `svid-${++n}`);
  return cliAsync(['x509', 'mint', '--spiffe-id', `spiffe://${TD}/web`, '--ttl', '10m', '--out-dir', out, '--socket', socket], env).then((r) => ({ ...r, out }));
}

/** MintX509SVID straight through the admin API, for the exact gRPC status. */
function mintGrpc(): Promise<{ code: number; details: string }> {
  const c = new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${socket}`, grpc.credentials.createInsecure());
  return new Promise((resolve) =>
    c.MintX509SVID({ csr: keyAndCsr().csr, spiffe_id: `spiffe://${TD}/db`, ttl: 600 }, { deadline: Date.now() + 20_000 }, (err) => {
      c.close();
      resolve({ code: err ? err.code : grpc.status.OK, details: err ? err.details : '' });
    }),
  );
}

function logLines(): Array<Record<string, unknown>> {
  return server
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('token outage (issue 10, item 9)', () => {
  it('mint fails with UNAVAILABLE while the token is away and works again once it is back, without a restart', async () => {
    const pid = server.child.pid;
    const before = await mint();
    expect(before.code, before.stderr).toBe(0);

    restore = token.takeAway();
    // Every mint during the outage: exit 1, one line, the token named, no stack.
    const unavailable = /pkcs11: token "anchorage" is unavailable: .+; retrying$/;
    for (let i = 0; i < 5; i++) {
      const r = await mint();
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      // The server answered: the CLI must not word it as "cannot reach the server".
      expect(lines[0]).toMatch(new RegExp(`^anchorage: ${unavailable.source}`));
    }
    const direct = await mintGrpc();
    expect(direct.code).toBe(grpc.status.UNAVAILABLE);
    expect(direct.details).toMatch(new RegExp(`^${unavailable.source}`));
    const first = logLines().filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('pkcs11: token "anchorage" is unavailable: '));
    expect(first, server.log()).toHaveLength(1);
    expect(first[0]!.msg).toBe(
      'pkcs11: token "anchorage" is unavailable: key "anchorage-outage.test-' +
        String(first[0]!.msg).match(/key "anchorage-outage\.test-(x509-[0-9a-f-]+)"/)?.[1] +
        '" cannot be found (CKR_OBJECT_HANDLE_INVALID) and the token answers CKR_GENERAL_ERROR; retrying',
    );

    restore();
    const deadline = Date.now() + 20_000;
    let after = await mint();
    while (after.code !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      after = await mint();
    }
    expect(after.code, after.stderr).toBe(0);
    const cert = new X509Certificate(readFileSync(join(after.out, 'svid.pem')));
    expect(cert.subjectAltName).toBe(`URI:spiffe://${TD}/web`);
    expect(await mintGrpc()).toEqual({ code: grpc.status.OK, details: '' });

    // the same process throughout; one log line per state change
    expect(server.child.exitCode).toBeNull();
    expect(server.child.pid).toBe(pid);
    const lines = logLines();
    expect(lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('pkcs11: token "anchorage" is unavailable: '))).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'pkcs11: token "anchorage" is available again')).toHaveLength(1);
  });
});
