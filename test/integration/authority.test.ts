// The authority lifecycle against real processes: two trust domains (A and
// B, each `anchorage server run` on its own SoftHSM2 token with
// `anchorage agent run`), federated over https_spiffe. A's workload dials
// B's over mutual TLS in a loop for the whole file, and no handshake may fail.
//
// In order, each test building on the last:
//  - x509 taint: three uid-separated workloads of A, each holding a
//    FetchX509SVID stream, get an SVID of the successor on that stream; the
//    agent renews its own SVID;
//  - JWT taint and revoke: the agent drops the cached JWT-SVID, and after the
//    revocation ValidateJWTSVID refuses the old token;
//  - root rotation across the running agent and the federated peer, then the
//    revocation of the first intermediate (with the old root): an SVID it
//    signed fails `openssl verify` and go-spiffe's validation against the new
//    bundle, while a current one passes both;
//  - bad input for every new command.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeId, connectMtls, createMtlsServer, peerSpiffeId, WorkloadApiClient, WorkloadApiError, X509Source } from '@anchorage/client';
import { parseDerCertificates } from '@anchorage/client/parse';
import { toPem } from '@anchorage/client/pem';
import type { AuthorityChange__Output } from '../../proto/gen/anchorage/admin/v1/AuthorityChange.js';
import type { ListAuthoritiesResponse__Output } from '../../proto/gen/anchorage/admin/v1/ListAuthoritiesResponse.js';
import { cliAsync, freePort, tempDir } from '../helpers/process.js';
import { softHsmAvailable } from '../helpers/softhsm.js';
import { cliJson, startTrustDomain, until, type RealTrustDomain } from '../helpers/trust-domain.js';
import { WORKLOAD_CLIENT } from '../helpers/workload.js';
import { lacks } from '../helpers/needs.js';
import { cachedBinary, goToolchain } from '../interop/go-program.js';
import { IN_CI } from '../interop/harness.js';

const A_CLIENT = 'spiffe://a.test/client';
const B_SERVER = 'spiffe://b.test/server';
/** Workloads of A, each its own uid, each holding an open FetchX509SVID stream. */
const WORKLOAD_UIDS = [10001, 10002, 10003];
const workloadId = (uid: number) => `spiffe://a.test/workload-${uid}`;

const uid = process.getuid!();
let dir: { dir: string; cleanup(): void };
let A: RealTrustDomain;
let B: RealTrustDomain;
let srcA: X509Source;
let srcB: X509Source;
let clientA: WorkloadApiClient;
let serverB: tls.Server;
let serverBPort: number;

const sha256 = (der: Uint8Array) => createHash('sha256').update(der).digest('hex');

function federationYaml(port: number): string {
  return `federation:
  bundle_endpoint:
    address: 127.0.0.1:${port}
    profile: https_spiffe
    refresh_hint: 2s
  refresh:
    min_interval: 1s
    default_interval: 2s
`;
}



/** The mutual TLS loop: A's workload dials B's, both authorize the other's exact ID. */
const loop = { running: false, handshakes: 0, failures: [] as string[], done: Promise.resolve() };

async function handshake(): Promise<void> {
  const socket = await connectMtls(srcA, authorizeId(B_SERVER), { host: '127.0.0.1', port: serverBPort });
  try {
    const said = await new Promise<string>((resolve, reject) => {
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString()));
      socket.once('end', () => resolve(data));
      socket.once('error', reject);
      socket.once('close', () => resolve(data));
    });
    if (said !== `hello ${A_CLIENT}`) throw new Error(`B answered ${JSON.stringify(said)}`);
  } finally {
    socket.destroy();
  }
}

function startLoop(): void {
  loop.running = true;
  loop.done = (async () => {
    while (loop.running) {
      try {
        await handshake();
        loop.handshakes++;
      } catch (err) {
        loop.failures.push(`${new Date().toISOString()}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
}

/** A FetchX509SVID stream held open by another process running as `uid`; the last message it got. */
interface Watcher {
  uid: number;
  child: ChildProcess;
  messages: { spiffeId: string; chain: Uint8Array[] }[];
  errors: string[];
}

function watch(socket: string, watcherUid: number): Watcher {
  const child = spawn(process.execPath, [WORKLOAD_CLIENT, JSON.stringify({ socket, method: 'FetchX509SVID', watch: true, hold: true })], {
    uid: watcherUid,
    gid: watcherUid,
    cwd: '/',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w: Watcher = { uid: watcherUid, child, messages: [], errors: [] };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = JSON.parse(buf.slice(0, nl)) as { ok: boolean; details?: string; response?: { svids: { spiffe_id: string; x509_svid: string }[] } };
      buf = buf.slice(nl + 1);
      if (!line.ok) w.errors.push(line.details ?? 'stream failed');
      for (const s of line.response?.svids ?? []) {
        w.messages.push({ spiffeId: s.spiffe_id, chain: parseDerCertificates(Buffer.from(s.x509_svid, 'base64'), 'x509_svid').map((c) => new Uint8Array(c.raw)) });
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => w.errors.push(d.toString()));
  return w;
}

const issuerOf = (chain: readonly Uint8Array[]) => sha256(chain[1]!);
const srcIssuer = () => sha256(srcA.svid().chain[1]!.raw);

async function authorities(td: RealTrustDomain, kind: string): Promise<ListAuthoritiesResponse__Output> {
  return cliJson<ListAuthoritiesResponse__Output>(td, ['authority', kind, 'list']);
}

const watchers: Watcher[] = [];

describe.skipIf(lacks(!softHsmAvailable(), 'SoftHSM2'))('authority lifecycle across real servers, agents and workloads', () => {
  beforeAll(async () => {
    dir = tempDir('anchorage-authority-');
    // The workloads of other uids must reach the agent's socket below it.
    chmodSync(dir.dir, 0o755);
    const [portA, portB] = [await freePort(), await freePort()];
    const mk = (name: string) => {
      const d = join(dir.dir, name);
      execFileSync('mkdir', ['-m', '0755', d]);
      return d;
    };
    [A, B] = await Promise.all([
      startTrustDomain(mk('a'), {
        trustDomain: 'a.test',
        entries: [
          { spiffeId: A_CLIENT, selectors: [`unix:uid:${uid}`] },
          ...WORKLOAD_UIDS.map((u) => ({ spiffeId: workloadId(u), selectors: [`unix:uid:${u}`] })),
        ],
        serverYaml: federationYaml(portA),
      }),
      startTrustDomain(mk('b'), { trustDomain: 'b.test', entries: [{ spiffeId: B_SERVER, selectors: [`unix:uid:${uid}`] }], serverYaml: federationYaml(portB) }),
    ]);
    const bundleFile = async (td: RealTrustDomain, file: string) => {
      const r = await cliAsync(['bundle', 'show', '--format', 'spiffe', '--socket', td.adminSocket], td.env);
      writeFileSync(file, r.stdout);
      return file;
    };
    const [aFile, bFile] = [await bundleFile(A, join(dir.dir, 'a.json')), await bundleFile(B, join(dir.dir, 'b.json'))];
    await cliJson(A, ['federation', 'create', '--trust-domain', 'b.test', '--url', `https://127.0.0.1:${portB}`, '--profile', 'https_spiffe', '--endpoint-id', 'spiffe://b.test/anchorage/server', '--bootstrap-bundle', bFile]);
    await cliJson(B, ['federation', 'create', '--trust-domain', 'a.test', '--url', `https://127.0.0.1:${portA}`, '--profile', 'https_spiffe', '--endpoint-id', 'spiffe://a.test/anchorage/server', '--bootstrap-bundle', aFile]);
    await A.admin.call('UpdateEntry', { id: A.entryIds[0]!, patch: { federates_with: { items: ['b.test'] } } });
    await B.admin.call('UpdateEntry', { id: B.entryIds[0]!, patch: { federates_with: { items: ['a.test'] } } });
    srcA = await X509Source.create({ address: A.endpoint });
    srcB = await X509Source.create({ address: B.endpoint });
    clientA = new WorkloadApiClient({ address: A.endpoint });
    await until("A's workload to hold b.test's bundle", () => srcA.bundles().has('b.test'));
    await until("B's workload to hold a.test's bundle", () => srcB.bundles().has('a.test'));
    serverB = createMtlsServer(srcB, authorizeId(A_CLIENT), {}, (socket) => socket.end(`hello ${peerSpiffeId(socket)?.toString()}`));
    serverB.on('tlsClientError', () => {});
    serverBPort = await new Promise<number>((resolve) => serverB.listen(0, '127.0.0.1', () => resolve((serverB.address() as AddressInfo).port)));
    await handshake();
    startLoop();
  }, 120_000);

  afterAll(async () => {
    loop.running = false;
    await loop.done;
    for (const w of watchers) w.child.kill('SIGKILL');
    serverB?.close();
    clientA?.close();
    await Promise.all([srcA?.close(), srcB?.close()]);
    await Promise.all([A?.close(), B?.close()]);
    dir?.cleanup();
  }, 60_000);

  let first: string; // A's intermediate at start, under the first root
  let second: string; // its successor, activated by the taint
  let firstSvid: Uint8Array[]; // an SVID the first intermediate signed

  it('x509 taint: every uid-separated workload gets an SVID of the successor on its open stream; the agent renews its own', async () => {
    for (const u of WORKLOAD_UIDS) watchers.push(watch(A.workloadSocket, u));
    await until('every watcher to get its first SVID', () => watchers.every((w) => w.messages.length > 0)).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(watchers.map((w) => ({ uid: w.uid, messages: w.messages.length, errors: w.errors })))}${A.diagnostics()}`);
    });
    const list = await authorities(A, 'x509');
    const active = list.authorities.find((a) => a.status === 'active')!;
    first = active.id;
    for (const w of watchers) {
      expect(w.messages[0]!.spiffeId).toBe(workloadId(w.uid));
      expect(issuerOf(w.messages[0]!.chain)).toBe(active.fingerprint);
    }
    firstSvid = watchers[0]!.messages[0]!.chain;
    const agentSerial = (await A.admin.call('ListAgents', {})).agents[0]!.cert_serial;

    const t0 = Date.now();
    const out = await cliJson<AuthorityChange__Output>(A, ['authority', 'x509', 'taint']);
    const tCli = Date.now() - t0;
    expect(out.authority).toMatchObject({ id: first, kind: 'x509', status: 'old', tainted: true, revoked: false });
    expect(out.also).toHaveLength(1);
    expect(out.also[0]).toMatchObject({ kind: 'x509', status: 'active', tainted: false });
    second = out.also[0]!.id;
    const successor = out.also[0]!.fingerprint;
    expect(out.message).toContain(`tainted x509 authority ${first}`);

    await until('every open stream to carry an SVID of the successor', () =>
      watchers.every((w) => w.messages.length > 1 && issuerOf(w.messages.at(-1)!.chain) === successor),
    );
    console.info(`authority: x509 taint took ${tCli} ms (CLI round trip); every open stream held a successor SVID ${Date.now() - t0} ms after it began`);
    for (const w of watchers) {
      expect(w.errors).toEqual([]);
      // Each stream got its own identity, and only that.
      expect(new Set(w.messages.map((m) => m.spiffeId))).toEqual(new Set([workloadId(w.uid)]));
    }
    await until("this process's SVID to be re-minted too", () => srcIssuer() === successor);
    await until("the agent's own SVID to be renewed", async () => (await A.admin.call('ListAgents', {})).agents[0]!.cert_serial !== agentSerial);
  }, 60_000);

  it('JWT taint drops the cached JWT-SVID; after revoke the agent refuses the old token (ValidateJWTSVID)', async () => {
    const kidOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    const old = await clientA.fetchJWTSVID('spiffe://a.test/audience');
    expect((await clientA.fetchJWTSVID('spiffe://a.test/audience')).token).toBe(old.token); // cached
    const out = await cliJson<AuthorityChange__Output>(A, ['authority', 'jwt', 'taint']);
    expect(out.authority).toMatchObject({ kind: 'jwt', kid: kidOf(old.token), status: 'old', tainted: true });
    const next = await until('a JWT-SVID of the new key', async () => {
      const t = await clientA.fetchJWTSVID('spiffe://a.test/audience');
      return kidOf(t.token) !== kidOf(old.token) ? t : undefined;
    });
    expect(kidOf(next.token)).toBe(out.also[0]!.kid);
    // Tainted, not revoked: the old token still validates.
    expect((await clientA.validateJWTSVID(old.token, 'spiffe://a.test/audience')).spiffeId.toString()).toBe(A_CLIENT);

    const revoked = await cliJson<AuthorityChange__Output>(A, ['authority', 'jwt', 'revoke', '--id', out.authority!.id]);
    expect(revoked.authority).toMatchObject({ id: out.authority!.id, revoked: true, key_id: '' });
    const refusal = await until('the agent to refuse the old token', async () =>
      clientA.validateJWTSVID(old.token, 'spiffe://a.test/audience').then(
        () => undefined,
        (e: unknown) => e as WorkloadApiError,
      ),
    );
    expect(refusal).toBeInstanceOf(WorkloadApiError);
    expect(refusal.status).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await clientA.validateJWTSVID(next.token, 'spiffe://a.test/audience')).spiffeId.toString()).toBe(A_CLIENT);
  }, 60_000);

  it('root rotation across the running agent and the federated peer, then revocation of the first intermediate with its root', async () => {
    const before = loop.handshakes;
    const t0 = Date.now();
    const prepared = await cliJson<AuthorityChange__Output>(A, ['authority', 'root', 'prepare']);
    const newRoot = prepared.authority!;
    expect(newRoot).toMatchObject({ kind: 'root', status: 'prepared' });
    expect(newRoot.published_sequence).toBeGreaterThan(0);
    // The operator's wait: every agent holds the bundle with it, and so does the federated peer's workload.
    await until("A's agent to acknowledge the new root", async () => (await authorities(A, 'root')).lagging.length === 0);
    const newRootDer = (await A.admin.call('ListTrustAnchors', {})).anchors.find((x) => x.fingerprint === newRoot.fingerprint);
    expect(newRootDer?.kind).toBe('root');
    const tAck = Date.now() - t0;
    await until("B's workload to hold A's new root", () => srcB.bundles().get('a.test')?.authorities().some((d) => sha256(d) === newRoot.fingerprint));
    const tPeer = Date.now() - t0;

    const activated = await cliJson<AuthorityChange__Output>(A, ['authority', 'root', 'activate']);
    expect(activated.authority).toMatchObject({ id: newRoot.id, status: 'active' });
    const third = (await cliJson<AuthorityChange__Output>(A, ['authority', 'x509', 'prepare'])).authority!;
    expect(third.issuer_id).toBe(newRoot.id);
    await cliJson(A, ['authority', 'x509', 'activate', '--id', third.id]);
    await cliJson(A, ['authority', 'x509', 'taint', '--id', second]);
    await until('every workload to hold an SVID chaining to the new root', () =>
      srcIssuer() === third.fingerprint && watchers.every((w) => issuerOf(w.messages.at(-1)!.chain) === third.fingerprint),
    );

    // Revoking the first intermediate withdraws its root (and the second intermediate, tainted, under it).
    const refusals: string[] = [];
    const revoked = await until('the revocation to pass the agent gate', async () => {
      const r = await cliAsync(['authority', 'x509', 'revoke', '--id', first, '--socket', A.adminSocket, '--json'], A.env);
      if (r.code === 0) return JSON.parse(r.stdout) as AuthorityChange__Output;
      refusals.push(r.stderr);
      expect(r.stderr).toContain('do not yet hold');
      return undefined;
    });
    const tRevoked = Date.now() - t0;
    expect(revoked.authority).toMatchObject({ id: first, revoked: true });
    expect(revoked.also.map((a) => `${a.kind}:${a.id}:${a.revoked}`).sort()).toEqual([`root:root:true`, `x509:${second}:true`].sort());
    const bundlePem = (await cliAsync(['bundle', 'show', '--format', 'pem', '--socket', A.adminSocket], A.env)).stdout;
    expect(bundlePem.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(sha256(new X509Certificate(bundlePem).raw)).toBe(newRoot.fingerprint);

    // The old SVID no longer verifies against the bundle: openssl and go-spiffe; a current one does.
    const files = (name: string, chain: readonly Uint8Array[]) => {
      writeFileSync(join(dir.dir, `${name}-leaf.pem`), toPem('CERTIFICATE', chain[0]!));
      writeFileSync(join(dir.dir, `${name}-chain.pem`), chain.map((d) => toPem('CERTIFICATE', d)).join(''));
      writeFileSync(join(dir.dir, `${name}-inter.pem`), chain.slice(1).map((d) => toPem('CERTIFICATE', d)).join(''));
    };
    writeFileSync(join(dir.dir, 'bundle.pem'), bundlePem);
    files('old', firstSvid);
    files('new', srcA.svid().chain.map((c) => new Uint8Array(c.raw)));
    const opensslVerify = (name: string) =>
      spawnSync('openssl', ['verify', '-CAfile', 'bundle.pem', '-untrusted', `${name}-inter.pem`, `${name}-leaf.pem`], { cwd: dir.dir, encoding: 'utf8' });
    const oldOpenssl = opensslVerify('old');
    expect(oldOpenssl.status, oldOpenssl.stdout + oldOpenssl.stderr).not.toBe(0);
    expect(oldOpenssl.stdout + oldOpenssl.stderr).toMatch(/unable to get (local )?issuer certificate/);
    const newOpenssl = opensslVerify('new');
    expect(newOpenssl.status, newOpenssl.stderr).toBe(0);
    expect(newOpenssl.stdout).toContain('new-leaf.pem: OK');

    const go = goToolchain();
    if (go.unusable !== undefined && !IN_CI) console.warn(`authority: ${go.unusable}; the go-spiffe validation is skipped`);
    else {
      if (go.unusable !== undefined) throw new Error(`authority: ${go.unusable}, and CI=true: go-spiffe must validate here`);
      const { path } = await cachedBinary(go.version);
      const goVerify = (name: string) => {
        const r = spawnSync(path, ['verify-svid', '-chain', `${name}-chain.pem`, '-bundle', 'bundle.pem', '-trust-domain', 'a.test'], { cwd: dir.dir, encoding: 'utf8' });
        return JSON.parse(r.stdout.trim()) as { ok: boolean; spiffe_id?: string; error?: string };
      };
      const oldGo = goVerify('old');
      expect(oldGo.ok).toBe(false);
      expect(oldGo.error).toMatch(/x509svid: could not verify leaf certificate|certificate signed by unknown authority/);
      expect(goVerify('new')).toEqual({ ok: true, spiffe_id: A_CLIENT });
    }

    // The peer drops the old root at its next refresh; the loop never failed, before or after.
    await until("B's workload to hold A's bundle without the old root", () => srcB.bundles().get('a.test')?.authorities().length === 1);
    console.info(
      `authority: root rotation: agent acknowledged the new root after ${tAck} ms, the federated peer's workload held it after ${tPeer} ms; ` +
        `old root revoked after ${tRevoked} ms (${refusals.length} gate refusals on the way); peer dropped it after ${Date.now() - t0} ms`,
    );
    const at = loop.handshakes;
    await until('a few more handshakes', () => loop.handshakes >= at + 5);
    expect(loop.failures).toEqual([]);
    expect(loop.handshakes - before).toBeGreaterThan(10);
    // The agent still reaches the server with its renewed SVID (ReportState after the bundle push).
    const seq = (await A.admin.call('GetBundle', {})).sequence;
    await until('the agent to report the bundle without the old root', async () => (await A.admin.call('ListAgents', {})).agents[0]!.bundle_sequence === seq);
  }, 120_000);

  it('answers bad input with usage errors (exit 2) or clear refusals (exit 1)', async () => {
    const run = (args: string[]) => cliAsync([...args, '--socket', A.adminSocket], A.env);
    const cases: { args: string[]; code: number; says: string }[] = [
      { args: ['authority'], code: 2, says: 'authority: give a subcommand (x509, jwt, root)' },
      { args: ['authority', 'intermediate', 'list'], code: 2, says: 'unknown subcommand "intermediate"' },
      { args: ['authority', 'x509', 'frob'], code: 2, says: 'authority x509: unknown subcommand "frob"' },
      { args: ['authority', 'root', 'taint'], code: 2, says: 'authority root: unknown subcommand "taint"' },
      { args: ['authority', 'x509', 'prepare', '--id', 'x'], code: 2, says: 'unknown flag --id' },
      { args: ['authority', 'jwt', 'revoke', '--id', 'jwt-x', '--force'], code: 2, says: 'unknown flag --force' },
      { args: ['authority', 'x509', 'taint', '--force'], code: 2, says: 'unknown flag --force' },
      { args: ['authority', 'x509', 'revoke'], code: 1, says: '--id is required' },
      { args: ['authority', 'x509', 'revoke', '--id', 'BAD ID!'], code: 1, says: 'is not an authority id' },
      { args: ['authority', 'x509', 'revoke', '--id', 'x509-00000000-0000-0000-0000-000000000000'], code: 1, says: 'no x509 authority x509-00000000-0000-0000-0000-000000000000' },
      { args: ['authority', 'x509', 'revoke', '--id', first], code: 1, says: 'already revoked' },
      { args: ['authority', 'root', 'revoke', '--id', (await authorities(A, 'root')).authorities.find((r) => r.status === 'active')!.id], code: 1, says: 'is the active root' },
      { args: ['authority', 'x509', 'activate', '--id', second], code: 1, says: 'was revoked' },
      { args: ['authority', 'jwt', 'activate'], code: 1, says: 'no prepared jwt authority to activate' },
      { args: ['authority', 'x509', 'list', '--output', 'yaml'], code: 2, says: 'yaml' },
      { args: ['authority', 'x509', 'taint', '-authorityID', 'x'], code: 2, says: 'did you mean --id?' },
    ];
    for (const c of cases) {
      const r = await run(c.args);
      expect(r.code, `${c.args.join(' ')}: ${r.stderr}`).toBe(c.code);
      expect(r.stderr, c.args.join(' ')).toContain(c.says);
    }
    // The help names every step.
    const help = await run(['authority', 'x509', '--help']);
    expect(help.code).toBe(0);
    for (const word of ['list', 'prepare', 'activate', 'taint', 'revoke']) expect(help.stdout).toContain(`authority x509 ${word}`);
  }, 60_000);
});
