import { createHash, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin } from '../../cli/client.js';
import type { Check } from '../../cli/commands/check.js';
import { lacks } from '../helpers/needs.js';
import { makeRoot } from '../helpers/pki.js';
import { cli, cliAsync, freePort, startAgentProcess, startServerProcess, tempDir, writeFile, type AnchorageProcess } from '../helpers/process.js';
import { createSoftHsmToken, softHsmAvailable, writePkcs11ServerConfig, type SoftHsmToken } from '../helpers/softhsm.js';

/**
 * Issue 15: `anchorage check` and `anchorage anchors list` against real
 * servers on SoftHSM2 with a real agent, each check in its ✔ state and in a
 * ✗ or ‼ state provoked through config (short TTLs, a root key made
 * extractable on the token before the server's first start) or by stopping
 * the agent.
 */

const TD = 'check.test';
const iso = (t: number) => new Date(t * 1000).toISOString();

interface Report {
  checks: Check[];
  summary: { ok: number; warn: number; fail: number };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function check(socket: string, env: NodeJS.ProcessEnv, flag: string[] = ['--json']): Promise<{ code: number; report: Report }> {
  const r = await cliAsync(['check', '--socket', socket, ...flag], env);
  return { code: r.code, report: JSON.parse(r.stdout) as Report };
}

const byName = (report: Report, name: string) => report.checks.find((c) => c.name === name);

describe.skipIf(lacks(!softHsmAvailable(), 'SoftHSM2'))('anchorage check and anchors list on a healthy trust domain', () => {
  let hsm: SoftHsmToken;
  let tmp: { dir: string; cleanup: () => void };
  let server: AnchorageProcess | undefined;
  let agent: AnchorageProcess | undefined;
  let socket: string;
  let env: NodeJS.ProcessEnv;
  let admin: Admin;
  let agentId: string;
  let config: string;

  beforeAll(async () => {
    hsm = createSoftHsmToken('anchorage-check', '1357');
    tmp = tempDir('anchorage-check-');
    chmodSync(tmp.dir, 0o755);
    env = { ...hsm.env };
    socket = join(tmp.dir, 'admin.sock');
    const port = await freePort();
    // Agent SVIDs of 20 s: stopping the agent lets its SVID expire within the test.
    config = writePkcs11ServerConfig(hsm, { dir: tmp.dir, trustDomain: TD, socket, dataDir: join(tmp.dir, 'server'), port, extra: 'ca:\n  ttl: 24h\nagent_svid_ttl: 20s\n' });
    server = await startServerProcess(config, socket, env);
    admin = new Admin(socket);
    const token = (await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 })).token;
    agentId = `spiffe://${TD}/anchorage/agent/join_token/${token}`;
    writeFile(join(tmp.dir, 'bundle.pem'), cli(['bundle', 'show', '--socket', socket], env).stdout);
    const publicDir = join(tmp.dir, 'public');
    mkdirSync(publicDir, { mode: 0o755 });
    const workloadSocket = join(publicDir, 'api.sock');
    const agentConfig = writeFile(
      join(tmp.dir, 'agent.yaml'),
      `trust_domain: ${TD}\nserver_address: 127.0.0.1:${port}\ndata_dir: ${join(tmp.dir, 'agent')}\nsocket_path: ${workloadSocket}\njoin_token: ${token}\ntrust_bundle_file: ${join(tmp.dir, 'bundle.pem')}\n`,
    );
    agent = await startAgentProcess(agentConfig, workloadSocket, env);
    // The agent reports once it has synced.
    await until('the agent to report', async () => ((await admin.call('GetAgent', { spiffe_id: agentId })).last_seen_at > 0 ? true : undefined));
  }, 120_000);

  afterAll(async () => {
    admin?.close();
    await agent?.kill('SIGTERM');
    await server?.kill('SIGTERM');
    tmp?.cleanup();
    hsm?.cleanup();
  });

  it('takes TTLs in plain seconds, and finds the socket through $ANCHORAGE_ADMIN_SOCKET unless -c or --socket says otherwise', async () => {
    const viaEnv = { ...env, ANCHORAGE_ADMIN_SOCKET: socket };
    const r = await cliAsync(['entry', 'create', '--spiffe-id', `spiffe://${TD}/seconds`, '--parent-id', agentId, '--selector', 'unix:uid:4242', '--x509-ttl', '3600', '--jwt-ttl', '90', '--json'], viaEnv);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ spiffe_id: `spiffe://${TD}/seconds`, x509_svid_ttl: 3600, jwt_svid_ttl: 90 });
    const wrongEnv = { ...env, ANCHORAGE_ADMIN_SOCKET: '/nonexistent/admin.sock' };
    const viaConfig = await cliAsync(['entry', 'list', '--spiffe-id', `spiffe://${TD}/seconds`, '-c', config, '--json'], wrongEnv);
    expect(viaConfig.code, viaConfig.stderr).toBe(0);
    expect(JSON.parse(viaConfig.stdout)).toHaveLength(1);
    const viaFlag = await cliAsync(['entry', 'delete', '--id', JSON.parse(r.stdout).id, '--socket', socket], wrongEnv);
    expect(viaFlag.code, viaFlag.stderr).toBe(0);
  });

  it('shows what the agent reported in agent show', async () => {
    const bundle = await admin.call('GetBundle', {});
    const a = await admin.call('GetAgent', { spiffe_id: agentId });
    expect(a.bundle_sequence).toBe(bundle.sequence);
    const r = cli(['agent', 'show', '--spiffe-id', agentId, '--socket', socket], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Last seen  : ${iso(a.last_seen_at)}\nBundle held: sequence ${bundle.sequence}\nClock skew : ${a.clock_skew_ms} ms (agent − server)\n`);
  });

  it('passes every check on a healthy trust domain, exit 0, in text and JSON', async () => {
    const ca = await admin.call('GetCAStatus', {});
    const { code, report } = await check(socket, env);
    expect(code).toBe(0);
    const keys = ca.keys.filter((k) => k.status !== 'preparing');
    const root = ca.keys.find((k) => k.kind === 'root')!;
    const x509 = ca.keys.find((k) => k.kind === 'x509' && k.status === 'active')!;
    const jwt = ca.keys.find((k) => k.kind === 'jwt' && k.status === 'active')!;
    const a = await admin.call('GetAgent', { spiffe_id: agentId });
    expect(report.checks.map((c) => [c.category, c.name, c.status])).toEqual([
      ['hsm', 'HSM reachable', 'ok'],
      ['hsm', 'CA keys', 'ok'],
      ['ca', 'root', 'ok'],
      ['ca', 'intermediate rotation', 'ok'],
      ['ca', 'JWT key rotation', 'ok'],
      ['agents', `agent ${agentId}`, 'ok'],
      ['agents', 'clock skew', 'ok'],
    ]);
    expect(byName(report, 'HSM reachable')!.message).toBe(`the token answered for ${keys.length} CA keys`);
    expect(byName(report, 'CA keys')!.message).toBe(`all ${keys.length} are sensitive and never extractable`);
    expect(byName(report, 'root')!.message).toBe(`expires in 3650 days (${iso(root.not_after)})`);
    expect(byName(report, 'intermediate rotation')!.message).toBe(`next key due at ${iso(x509.prepare_at)}`);
    expect(byName(report, 'JWT key rotation')!.message).toBe(`next key due at ${iso(jwt.prepare_at)}`);
    expect(byName(report, `agent ${agentId}`)!.message).toMatch(new RegExp(`^seen \\d+s ago, bundle ${a.bundle_sequence}/${a.bundle_sequence}, SVID until \\S+$`));
    expect(byName(report, 'clock skew')!.message).toMatch(new RegExp(`^at most -?\\d+ ms \\(agent − server\\), ${agentId.replace(/[.]/g, '\\.')}$`));
    expect(report.summary).toEqual({ ok: 7, warn: 0, fail: 0 });
    expect((await check(socket, env, ['--output', 'json'])).report.checks.map((c) => c.name)).toEqual(report.checks.map((c) => c.name));

    const text = await cliAsync(['check', '--socket', socket], env);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines.slice(0, 3)).toEqual([
      `✔ HSM reachable: the token answered for ${keys.length} CA keys`,
      `✔ CA keys: all ${keys.length} are sensitive and never extractable`,
      `✔ root: expires in 3650 days (${iso(root.not_after)})`,
    ]);
    expect(lines.at(-1)).toBe('Status check results: 7 passed, 0 warnings, 0 failed');
    expect(text.stdout).not.toContain('hint:');
  });

  it('lists every trust anchor: own root, intermediate and JWT key, then a federated authority, with how many agents hold each', async () => {
    const ca = await admin.call('GetCAStatus', {});
    const root = ca.keys.find((k) => k.kind === 'root')!;
    const x509 = ca.keys.find((k) => k.kind === 'x509' && k.status === 'active')!;
    const jwt = ca.keys.find((k) => k.kind === 'jwt' && k.status === 'active')!;
    const fp = (der: Uint8Array) => createHash('sha256').update(der).digest('hex');
    const subject = (der: Uint8Array) => new X509Certificate(der).subject.replace(/\n/g, ', ');

    const first = JSON.parse((await cliAsync(['anchors', 'list', '--json', '--socket', socket], env)).stdout);
    expect(first.agents).toBe(1);
    const own = first.anchors as Array<Record<string, unknown>>;
    const shape = (rows: unknown[][]) => rows.map((r) => JSON.stringify(r)).sort();
    expect(shape(own.map((a) => [a.kind, a.status, a.agents_holding, a.source]))).toEqual(
      shape([
        ['root', 'active', 1, `pkcs11 label ${root.key_id}`],
        ['intermediate', 'active', -1, `pkcs11 label ${x509.key_id}`],
        ['jwt', 'active', 1, `pkcs11 label ${jwt.key_id}`],
      ]),
    );
    const rootAnchor = own.find((a) => a.kind === 'root')!;
    expect(rootAnchor).toMatchObject({ trust_domain: TD, federated: false, fingerprint: fp(root.cert), subject: subject(root.cert), not_before: root.not_before, not_after: root.not_after, kid: '' });
    expect(rootAnchor.first_seen_at).toBeGreaterThan(0);
    expect(own.find((a) => a.kind === 'intermediate')).toMatchObject({ fingerprint: fp(x509.cert), subject: subject(x509.cert), not_after: x509.not_after });
    expect(own.find((a) => a.kind === 'jwt')).toMatchObject({ kid: jwt.kid, fingerprint: '', not_after: jwt.not_after });

    // A federated trust domain's bundle set by hand: the agent receives it, reports, and then holds it.
    const peer = await makeRoot('peer.test');
    const doc = JSON.stringify({ keys: [{ use: 'x509-svid', kty: 'EC', crv: 'P-256', x5c: [Buffer.from(peer.der).toString('base64')], ...ecXY(peer.der) }], spiffe_sequence: 1 });
    const set = cli(['bundle', 'set', '--trust-domain', 'peer.test', '--file', writeFile(join(tmp.dir, 'peer.json'), doc), '--socket', socket], env);
    expect(set.code, set.stderr).toBe(0);
    const peerFp = fp(peer.der);
    const federated = await until('the agent to hold the federated authority', async () => {
      const list = JSON.parse((await cliAsync(['anchors', 'list', '--json', '--socket', socket], env)).stdout);
      const f = (list.anchors as Array<Record<string, unknown>>).find((a) => a.federated);
      return f && f.agents_holding === 1 ? f : undefined;
    });
    const cert = new X509Certificate(peer.der);
    expect(federated).toEqual({
      trust_domain: 'peer.test',
      kind: 'x509-authority',
      federated: true,
      fingerprint: peerFp,
      kid: '',
      subject: subject(peer.der),
      not_before: Math.floor(Date.parse(cert.validFrom) / 1000),
      not_after: Math.floor(Date.parse(cert.validTo) / 1000),
      status: '',
      source: 'static',
      first_seen_at: federated.first_seen_at,
      agents_holding: 1,
    });
    expect(federated.first_seen_at).toBeGreaterThan(0);

    const text = cli(['anchors', 'list', '--socket', socket], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      `Federated x509-authority of peer.test\n  SHA-256     : ${peerFp}\n  Subject     : ${subject(peer.der)}\n  Valid       : ${iso(federated.not_before as number)} → ${iso(federated.not_after as number)}\n  Source      : static\n  First seen  : ${iso(federated.first_seen_at as number)}\n  Held by     : 1 of 1 agents\n`,
    );
  });

  it('passes a federation relationship whose peer endpoint answers, and lists the peer\'s authority with its endpoint as source', async () => {
    // The peer: another real server (memory keys will do) serving its bundle over https_spiffe.
    const peerPort = await freePort();
    const peerSocket = join(tmp.dir, 'peer.sock');
    const peerConfig = writeFile(
      join(tmp.dir, 'peer.yaml'),
      `trust_domain: peerfed.test\ndata_dir: ${join(tmp.dir, 'peer')}\nadmin_socket: ${peerSocket}\nbind_address: 127.0.0.1:0\nkey_manager:\n  type: memory\n` +
        `federation:\n  bundle_endpoint:\n    address: 127.0.0.1:${peerPort}\n    profile: https_spiffe\n`,
    );
    const peer = await startServerProcess(peerConfig, peerSocket, { ...process.env });
    try {
      const bootstrap = writeFile(join(tmp.dir, 'peer-bundle.json'), cli(['bundle', 'show', '--format', 'spiffe', '--socket', peerSocket]).stdout);
      const url = `https://127.0.0.1:${peerPort}/`;
      const created = cli(['federation', 'create', '--trust-domain', 'peerfed.test', '--url', url, '--profile', 'https_spiffe', '--endpoint-id', 'spiffe://peerfed.test/anchorage/server', '--bootstrap-bundle', bootstrap, '--socket', socket], env);
      expect(created.code, created.stderr).toBe(0);
      const { report } = await check(socket, env);
      const fed = byName(report, 'federation peerfed.test')!;
      expect(fed.status, JSON.stringify(fed)).toBe('ok');
      expect(fed.message).toMatch(/^fetched \d+s ago \(refresh hint 300s\), soonest authority expires \S+$/);
      expect(fed.hint).toBe('');
      const peerRoot = cli(['bundle', 'show', '--socket', peerSocket]).stdout;
      const der = Buffer.from(peerRoot.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
      const anchors = JSON.parse((await cliAsync(['anchors', 'list', '--json', '--socket', socket], env)).stdout).anchors as Array<Record<string, unknown>>;
      const peerKid = (JSON.parse(cli(['ca', 'show', '--json', '--socket', peerSocket]).stdout).keys as Array<{ kind: string; status: string; kid: string }>).find((k) => k.kind === 'jwt' && k.status === 'active')!.kid;
      expect(anchors.filter((a) => a.trust_domain === 'peerfed.test').map((a) => [a.kind, a.fingerprint || a.kid, a.source])).toEqual([
        ['x509-authority', createHash('sha256').update(der).digest('hex'), `endpoint ${url}`],
        ['jwt', peerKid, `endpoint ${url}`],
      ]);
      expect(cli(['federation', 'delete', '--trust-domain', 'peerfed.test', '--socket', socket], env).code).toBe(0);
    } finally {
      await peer.kill('SIGTERM');
    }
  });

  it('fails a federation relationship whose endpoint never answered, exit 1', async () => {
    const url = `https://127.0.0.1:${await freePort()}/`;
    expect(cli(['federation', 'create', '--trust-domain', 'gone.test', '--url', url, '--profile', 'https_web', '--socket', socket], env).code).toBe(0);
    cli(['federation', 'refresh', '--trust-domain', 'gone.test', '--socket', socket], env);
    const { code, report } = await check(socket, env);
    expect(code).toBe(1);
    const fed = byName(report, 'federation gone.test')!;
    expect(fed.status).toBe('fail');
    expect(fed.message).toMatch(/^never fetched, last error \S+: .+, no bundle held$/);
    expect(fed.hint).toContain(`the endpoint ${url} has not answered yet: run "anchorage federation refresh --trust-domain gone.test"`);
    expect(cli(['federation', 'delete', '--trust-domain', 'gone.test', '--socket', socket], env).code).toBe(0);
  });

  it('fails an agent whose SVID expired after it stopped, exit 1', async () => {
    await agent!.kill('SIGTERM');
    agent = undefined;
    const a = await admin.call('GetAgent', { spiffe_id: agentId });
    const { code, report } = await until('the stopped agent to fail', async () => {
      const r = await check(socket, env);
      return byName(r.report, `agent ${agentId}`)?.status === 'fail' ? r : undefined;
    });
    expect(code).toBe(1);
    const c = byName(report, `agent ${agentId}`)!;
    expect(c.message).toMatch(new RegExp(`^seen \\d+s ago, bundle \\d+/\\d+, SVID expired at ${iso(a.cert_not_after).replace(/[.]/g, '\\.')}$`));
    expect(c.hint).toBe('the agent could not renew its SVID: it must attest again');
    const text = await cliAsync(['check', '--socket', socket], env);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(`✗ agent ${agentId}: `);
    expect(text.stdout).toContain('    hint: the agent could not renew its SVID: it must attest again\n');
  }, 90_000);
});

describe.skipIf(lacks(!softHsmAvailable(), 'SoftHSM2'))('anchorage check on a root near expiry whose key can leave the token', () => {
  it('fails the root expiry horizon and the root key, and the HSM once the token is gone, exit 1', async () => {
    const hsm = createSoftHsmToken('anchorage-badroot', '1357');
    const tmp = tempDir('anchorage-check-root-');
    let server: AnchorageProcess | undefined;
    try {
      // A key made on the token by hand, extractable (pkcs11-tool makes it sensitive), under
      // the label the server looks for: it takes it for the root at first start.
      execFileSync('pkcs11-tool', ['--module', hsm.module, '--token-label', hsm.label, '--login', '--pin', hsm.pin, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'anchorage-root-badroot.test', '--extractable'], { env: hsm.env, stdio: 'pipe' });
      const socket = join(tmp.dir, 'admin.sock');
      const env = { ...hsm.env };
      const config = writePkcs11ServerConfig(hsm, { dir: tmp.dir, trustDomain: 'badroot.test', socket, extra: 'ca:\n  ttl: 24h\n  root:\n    type: self-signed\n    ttl: 20d\n' });
      server = await startServerProcess(config, socket, env);
      const { code, report } = await check(socket, env);
      expect(code).toBe(1);
      const root = byName(report, 'root')!;
      expect(root.status).toBe('fail');
      expect(root.message).toMatch(/^expires in 20 days \(\S+\)$/);
      expect(root.hint).toBe('replace the root before it expires, and give every party that trusts it the new one (under 30 days fails, under 90 warns)');
      const key = byName(report, 'CA key anchorage-root-badroot.test')!;
      expect(key).toEqual({
        category: 'hsm',
        name: 'CA key anchorage-root-badroot.test',
        status: 'fail',
        message: 'can leave the token: CKA_SENSITIVE=true, CKA_EXTRACTABLE=true, CKA_ALWAYS_SENSITIVE=true, CKA_NEVER_EXTRACTABLE=false',
        hint: 'a key that was ever extractable may have been copied: replace it with one the token generates (anchorage makes keys sensitive and never extractable)',
      });
      // The keys the server made itself pass; the summary line says CA keys failed by omission.
      expect(byName(report, 'CA keys')).toBeUndefined();
      expect(byName(report, 'HSM reachable')!.status).toBe('ok');
      expect(report.summary.fail).toBe(2);

      // The token taken away under the running server: the HSM check fails, with the server's reason.
      const restore = hsm.takeAway();
      try {
        const down = await check(socket, env);
        expect(down.code).toBe(1);
        expect(byName(down.report, 'HSM reachable')).toEqual({
          category: 'hsm',
          name: 'HSM reachable',
          status: 'fail',
          message: 'the token holds none of the 3 CA keys',
          hint: "is the token there? check the module, token_label and PIN in server.yaml's key_manager, and the server's log",
        });
        expect(down.report.checks.filter((c) => c.message === 'has no private key on the token').map((c) => c.status)).toEqual(['fail', 'fail', 'fail']);
      } finally {
        restore();
      }
    } finally {
      await server?.kill('SIGTERM');
      tmp.cleanup();
      hsm.cleanup();
    }
  }, 90_000);
});

/** The x and y of an EC P-256 certificate's key, as a JWK carries them. */
function ecXY(der: Uint8Array): { x: string; y: string } {
  const jwk = new X509Certificate(der).publicKey.export({ format: 'jwk' });
  return { x: jwk.x!, y: jwk.y! };
}

describe('anchorage check on a development server (memory keys, a root of 60 days)', () => {
  it('warns on every CA key outside an HSM and on the root horizon, exit 0', async () => {
    const tmp = tempDir('anchorage-check-dev-');
    let server: AnchorageProcess | undefined;
    try {
      const socket = join(tmp.dir, 'admin.sock');
      const config = writeFile(
        join(tmp.dir, 'server.yaml'),
        `trust_domain: dev.test\ndata_dir: ${join(tmp.dir, 'data')}\nadmin_socket: ${socket}\nbind_address: 127.0.0.1:0\nkey_manager:\n  type: memory\nca:\n  ttl: 24h\n  root:\n    type: self-signed\n    ttl: 60d\n`,
      );
      server = await startServerProcess(config, socket, { ...process.env });
      const { code, report } = await check(socket, process.env);
      expect(code).toBe(0);
      const ca = await cliAsync(['ca', 'show', '--json', '--socket', socket]);
      const keys = (JSON.parse(ca.stdout).keys as Array<{ key_id: string; status: string }>).filter((k) => k.status !== 'preparing');
      expect(report.checks.filter((c) => c.category === 'hsm')).toEqual(
        keys.map((k) => ({ category: 'hsm', name: `CA key ${k.key_id}`, status: 'warn', message: 'held by the memory key manager, not an HSM', hint: 'keep CA keys in an HSM in production (key_manager: type: pkcs11)' })),
      );
      const root = byName(report, 'root')!;
      expect(root.status).toBe('warn');
      expect(root.message).toMatch(/^expires in 60 days \(\S+\)$/);
      expect(report.summary).toEqual({ ok: 3, warn: keys.length + 1, fail: 0 });
      const text = await cliAsync(['check', '--socket', socket]);
      expect(text.stdout).toContain(`‼ root: ${root.message}\n    hint: ${root.hint}\n`);
    } finally {
      await server?.kill('SIGTERM');
      tmp.cleanup();
    }
  }, 60_000);
});
