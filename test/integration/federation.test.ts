// Federation between two real trust domains on loopback: for each, `anchorage
// server run` on its own SoftHSM2 token with a bundle endpoint (https_spiffe)
// and `anchorage agent run`, all separate processes. A workload of A
// (spiffe://a.test/client) and one of B (spiffe://b.test/server) use our
// client library against their own agents, and talk mutual TLS to each other.
//
// The tests run in order, each building on the state the previous one left:
// no federation → relationships created with the CLI → B's CA rotating under
// load → every fetch failure against a real HTTPS endpoint → relationship
// deleted.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeId, connectMtls, createMtlsServer, JWTSource, peerSpiffeId, WorkloadApiClient, WorkloadApiError, X509Source } from '@anchorage/client';
import type { FederatedBundle__Output } from '../../proto/gen/anchorage/admin/v1/FederatedBundle.js';
import type { FederationRelationship__Output } from '../../proto/gen/anchorage/admin/v1/FederationRelationship.js';
import { cliAsync, freePort, tempDir } from '../helpers/process.js';
import { softHsmAvailable } from '../helpers/softhsm.js';
import { cliJson, startTrustDomain, until, type RealTrustDomain } from '../helpers/trust-domain.js';
import { lacks } from '../helpers/needs.js';

const A_CLIENT = 'spiffe://a.test/client';
const B_SERVER = 'spiffe://b.test/server';
/** B's bundle endpoint announces this refresh hint; A's federation client polls at it (min_interval 1s). */
const B_REFRESH_HINT = 2;

const uid = process.getuid!();
let dir: { dir: string; cleanup(): void };
let A: RealTrustDomain;
let B: RealTrustDomain;
let portA: number;
let portB: number;
let srcA: X509Source;
let srcB: X509Source;
let jwtA: JWTSource;
let jwtB: JWTSource;
let clientA: WorkloadApiClient;
let serverB: tls.Server;
let serverBPort: number;

function federationYaml(port: number, hint: string): string {
  return `federation:
  bundle_endpoint:
    address: 127.0.0.1:${port}
    profile: https_spiffe
    refresh_hint: ${hint}
  refresh:
    min_interval: 1s
    default_interval: 5s
`;
}



/** A's workload dials B's; both authorize the other by SPIFFE ID. Resolves with what each side saw. */
async function handshake(): Promise<{ serverSaw: string; clientSaw: string; serverIssuer: X509Certificate }> {
  const socket = await connectMtls(srcA, authorizeId(B_SERVER), { host: '127.0.0.1', port: serverBPort });
  try {
    const chain = socket.getPeerCertificate(true);
    const serverIssuer = new X509Certificate(chain.issuerCertificate.raw);
    const clientSaw = peerSpiffeId(socket)!.toString();
    const serverSaw = await new Promise<string>((resolve, reject) => {
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString()));
      socket.once('end', () => resolve(data));
      socket.once('error', reject);
      socket.once('close', () => resolve(data));
    });
    return { serverSaw, clientSaw, serverIssuer };
  } finally {
    socket.destroy();
  }
}

async function handshakeError(): Promise<Error> {
  try {
    const r = await handshake();
    // With TLS 1.3 a refused client may complete its side and see the connection closed without data.
    if (r.serverSaw === '') return new Error('the server closed the connection without answering');
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the cross-domain handshake to fail');
}

/** B's bundle as A holds it (the admin API behind `bundle list`; fast enough to poll). */
async function federatedAtA(): Promise<FederatedBundle__Output | undefined> {
  const { bundles } = await A.admin.call('ListFederatedBundles', {});
  return bundles.find((b) => b.trust_domain === 'b.test');
}

/** A bundle document without its refresh hint (the bundle endpoint serves its own; the rest is the same). */
function authorities(document: string): unknown {
  const { spiffe_refresh_hint: _hint, ...rest } = JSON.parse(document) as Record<string, unknown>;
  return rest;
}

async function ownSequence(td: RealTrustDomain): Promise<{ sequence: number; document: string }> {
  const b = await td.admin.call('GetBundle', {});
  return { sequence: b.sequence, document: b.document };
}

describe.skipIf(lacks(!softHsmAvailable(), 'SoftHSM2'))('federation between two trust domains (real servers, agents and workloads)', () => {
  beforeAll(async () => {
    dir = tempDir('anchorage-federation-');
    portA = await freePort();
    portB = await freePort();
    const mk = (name: string) => {
      const d = join(dir.dir, name);
      execFileSync('mkdir', ['-m', '0755', d]);
      return d;
    };
    [A, B] = await Promise.all([
      startTrustDomain(mk('a'), {
        trustDomain: 'a.test',
        entries: [{ spiffeId: A_CLIENT, selectors: [`unix:uid:${uid}`] }],
        serverYaml: federationYaml(portA, '5s'),
      }),
      // B's CA lives 60 s: a new intermediate (and JWT key) every ~50 s, prepared ~30 s in.
      startTrustDomain(mk('b'), {
        trustDomain: 'b.test',
        entries: [{ spiffeId: B_SERVER, selectors: [`unix:uid:${uid}`] }],
        caTtl: '60s',
        x509SvidTtl: '20s',
        jwtSvidTtl: '10s',
        serverYaml: `agent_svid_ttl: 30s\n${federationYaml(portB, `${B_REFRESH_HINT}s`)}`,
      }),
    ]);
    srcA = await X509Source.create({ address: A.endpoint });
    srcB = await X509Source.create({ address: B.endpoint });
    jwtA = await JWTSource.create({ address: A.endpoint });
    jwtB = await JWTSource.create({ address: B.endpoint });
    clientA = new WorkloadApiClient({ address: A.endpoint });
    serverB = createMtlsServer(srcB, authorizeId(A_CLIENT), {}, (socket) => socket.end(`hello ${peerSpiffeId(socket)?.toString()}`));
    serverB.on('tlsClientError', () => {});
    serverBPort = await new Promise<number>((resolve) => serverB.listen(0, '127.0.0.1', () => resolve((serverB.address() as AddressInfo).port)));
  }, 120_000);

  afterAll(async () => {
    serverB?.close();
    clientA?.close();
    await Promise.all([srcA?.close(), srcB?.close(), jwtA?.close(), jwtB?.close()]);
    await Promise.all([A?.close(), B?.close()]);
    dir?.cleanup();
  }, 60_000);

  it('before federation: the handshake fails and A refuses a JWT-SVID of B', async () => {
    expect(srcA.bundles().has('b.test')).toBe(false);
    const err = await handshakeError();
    expect(err.message).toMatch(/b\.test|certificate|unable|closed/i);

    const token = (await jwtB.fetchJWTSVID(A_CLIENT)).token;
    const refused = await clientA.validateJWTSVID(token, A_CLIENT).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(WorkloadApiError);
    expect((refused as WorkloadApiError).status).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('relationships created with the CLI: each side fetches the other over https_spiffe, mTLS works, A accepts B\'s JWT-SVID', async () => {
    const bundleOf = async (td: RealTrustDomain, file: string) => {
      const r = await cliAsync(['bundle', 'show', '--format', 'spiffe', '--socket', td.adminSocket], td.env);
      expect(r.code).toBe(0);
      writeFileSync(file, r.stdout);
      return file;
    };
    const bFile = await bundleOf(B, join(dir.dir, 'b-bundle.json'));
    const aFile = await bundleOf(A, join(dir.dir, 'a-bundle.json'));
    const relAB = await cliJson<FederationRelationship__Output>(A, [
      'federation', 'create', '--trust-domain', 'b.test', '--url', `https://127.0.0.1:${portB}`, '--profile', 'https_spiffe',
      '--endpoint-id', 'spiffe://b.test/anchorage/server', '--bootstrap-bundle', bFile,
    ]);
    expect(relAB).toMatchObject({ trust_domain: 'b.test', bundle_endpoint_url: `https://127.0.0.1:${portB}/`, profile: 'https_spiffe', last_error: '' });
    expect(relAB.last_success_at).toBeGreaterThan(0);
    expect(relAB.bundle?.source).toBe('endpoint');
    const relBA = await cliJson<FederationRelationship__Output>(B, [
      'federation', 'create', '--trust-domain', 'a.test', '--url', `https://127.0.0.1:${portA}`, '--profile', 'https_spiffe',
      '--endpoint-id', 'spiffe://a.test/anchorage/server', '--bootstrap-bundle', aFile,
    ]);
    expect(relBA).toMatchObject({ trust_domain: 'a.test', last_error: '' });
    // The fetched bundle is the one each server publishes (B may have moved on since; its sequence only grows).
    expect(authorities(relBA.bundle!.document)).toEqual(authorities((await ownSequence(A)).document));
    expect(relAB.bundle!.sequence).toBeGreaterThanOrEqual(JSON.parse(readFileSync(bFile, 'utf8')).spiffe_sequence);

    // An entry may federate only with a trust domain the server holds a bundle of or a relationship with: now each can.
    await A.admin.call('UpdateEntry', { id: A.entryIds[0]!, patch: { federates_with: { items: ['b.test'] } } });
    await B.admin.call('UpdateEntry', { id: B.entryIds[0]!, patch: { federates_with: { items: ['a.test'] } } });

    // Pushed to the agents, and by them to the workloads that federate.
    await until('A\'s workload to get b.test\'s bundle', () => srcA.bundles().has('b.test'));
    await until('B\'s workload to get a.test\'s bundle', () => srcB.bundles().has('a.test'));
    // FetchX509Bundles and FetchJWTBundles name both trust domains, with B's authorities as A holds them.
    const heldB = (await federatedAtA())!.document;
    const x509Bundles = await clientA.fetchX509Bundles();
    expect(x509Bundles.get('b.test')?.authorities().map((d) => Buffer.from(d).toString('base64'))).toEqual(
      (JSON.parse(heldB).keys as { use: string; x5c?: string[] }[]).filter((k) => k.use === 'x509-svid').map((k) => k.x5c![0]),
    );
    expect(x509Bundles.has('a.test')).toBe(true);
    const jwtBundles = await clientA.fetchJWTBundles();
    expect([...jwtBundles.get('b.test')!.keys().keys()].sort()).toEqual(
      (JSON.parse(heldB).keys as { use: string; kid?: string }[]).filter((k) => k.use === 'jwt-svid').map((k) => k.kid!).sort(),
    );
    const { serverSaw, clientSaw } = await handshake();
    expect(clientSaw).toBe(B_SERVER);
    expect(serverSaw).toBe(`hello ${A_CLIENT}`);

    // A workload that authorizes another SPIFFE ID refuses B's.
    const wrong = await connectMtls(srcA, authorizeId('spiffe://b.test/someone-else'), { host: '127.0.0.1', port: serverBPort }).then(
      (s) => (s.destroy(), undefined),
      (e: unknown) => e as Error,
    );
    expect(wrong?.message).toContain('is not authorized');

    // B's JWT-SVID now validates through A's Workload API, and A's JWT bundles include b.test.
    await until('A\'s JWT bundles to include b.test', () => jwtA.bundles().has('b.test'));
    const token = (await jwtB.fetchJWTSVID(A_CLIENT)).token;
    const validated = await clientA.validateJWTSVID(token, A_CLIENT);
    expect(validated.spiffeId.toString()).toBe(B_SERVER);
    // ... for its audience only.
    const wrongAud = await clientA.validateJWTSVID(token, 'spiffe://a.test/other').then(
      () => undefined,
      (e: unknown) => e as WorkloadApiError,
    );
    expect(wrongAud?.status).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('B rotates its CA: A gets each new bundle within one refresh interval, and the handshake keeps working', async () => {
    const activeX509 = async () => (await B.admin.call('GetCAStatus', {})).keys.find((k) => k.kind === 'x509' && k.status === 'active')!;
    const firstIntermediate = await activeX509();
    let held = (await federatedAtA())!.sequence;
    let published = await ownSequence(B);
    let publishedAt = Date.now();
    let lastReadAt = publishedAt;
    const lags: { sequence: number; adminMs: number; workloadMs?: number }[] = [];
    const failures: string[] = [];
    let handshakes = 0;
    let rotatedIssuerSeen = false;
    const deadline = Date.now() + 100_000;
    while (Date.now() < deadline) {
      try {
        const r = await handshake();
        expect(r.serverSaw).toBe(`hello ${A_CLIENT}`);
        handshakes++;
        if (r.serverIssuer.serialNumber.toLowerCase() !== new X509Certificate(firstIntermediate.cert).serialNumber.toLowerCase()) rotatedIssuerSeen = true;
      } catch (err) {
        failures.push(`${new Date().toISOString()}: ${(err as Error).message}`);
      }
      // B changed its bundle after the last read that still showed the old one:
      // the lag is measured from that read, an upper bound.
      const readAt = Date.now();
      const now = await ownSequence(B);
      if (now.sequence !== published.sequence) {
        published = now;
        publishedAt = lastReadAt;
      }
      lastReadAt = readAt;
      const atA = (await federatedAtA())!;
      if (atA.sequence !== held) {
        if (atA.sequence > published.sequence) {
          // B changed between our read of B and our read of A.
          published = await ownSequence(B);
          publishedAt = readAt;
        }
        expect(atA.sequence).toBe(published.sequence);
        held = atA.sequence;
        expect(authorities(atA.document)).toEqual(authorities(published.document));
        const lag = { sequence: held, adminMs: Date.now() - publishedAt } as (typeof lags)[number];
        lags.push(lag);
        // ... and A's workloads get it: the JWT bundle with B's newest key.
        const kids = Object.keys(Object.fromEntries((JSON.parse(published.document).keys as { kid?: string; use: string }[]).filter((k) => k.use === 'jwt-svid').map((k) => [k.kid!, 1])));
        await until('A\'s workload JWT bundle of b.test to hold B\'s keys', () => kids.every((kid) => jwtA.bundles().get('b.test')?.keys().has(kid)), 5_000);
        lag.workloadMs = Date.now() - publishedAt;
      }
      if (rotatedIssuerSeen && lags.length >= 1 && (await activeX509()).id !== firstIntermediate.id) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    console.info(`federation: B rotated; ${handshakes} handshakes, lags ${JSON.stringify(lags)}`);
    expect(failures).toEqual([]);
    expect((await activeX509()).id).not.toBe(firstIntermediate.id);
    expect(rotatedIssuerSeen).toBe(true);
    expect(lags.length).toBeGreaterThanOrEqual(1);
    // One refresh interval (the hint), plus the fetch and this loop's period (a handshake, two admin calls, 250 ms).
    for (const l of lags) expect(l.adminMs, JSON.stringify(l)).toBeLessThanOrEqual(B_REFRESH_HINT * 1000 + 2500);
  }, 150_000);

  describe('every fetch failure, served by a real HTTPS endpoint standing in for B: A keeps the last good bundle', () => {
    let proxy: Server;
    let proxyPort: number;
    let mode = 'good';
    let caFile: string;
    let goodContext: tls.SecureContextOptions;
    let strangerContext: tls.SecureContextOptions;

    beforeAll(async () => {
      // A private web CA and a certificate for 127.0.0.1; and a second CA that A does not trust.
      const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir.dir, stdio: 'pipe' });
      const issue = (name: string) => {
        o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '1',
          '-subj', `/CN=${name} CA`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
        o(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1']);
        writeFileSync(join(dir.dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
        o(['x509', '-req', '-in', `${name}.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
        return { key: readFileSync(join(dir.dir, `${name}.key`)), cert: readFileSync(join(dir.dir, `${name}.pem`)) };
      };
      goodContext = issue('web');
      strangerContext = issue('stranger');
      caFile = join(dir.dir, 'web-ca.pem');
      proxy = createServer(goodContext, (_req, res) => {
        void (async () => {
          const b = await ownSequence(B);
          const doc = JSON.parse(b.document) as Record<string, unknown>;
          switch (mode) {
            case 'http':
              res.statusCode = 503;
              return res.end('maintenance');
            case 'malformed':
              return res.end('{"keys": [ {"kty": "EC", ');
            case 'wrong_trust_domain':
              return res.end((await ownSequence(A)).document);
            case 'sequence_backwards':
              return res.end(JSON.stringify({ ...doc, spiffe_sequence: (await federatedAtA())!.sequence - 1 }));
            case 'too_large':
              return res.end(JSON.stringify({ ...doc, padding: 'x'.repeat(2 * 1024 * 1024) }));
            default:
              res.setHeader('content-type', 'application/json');
              return res.end(b.document);
          }
        })();
      });
      proxyPort = await new Promise<number>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve((proxy.address() as AddressInfo).port)));
    });

    afterAll(() => {
      proxy?.close();
    });

    it('switches A to the stand-in (https_web, given CA) and fetches from it', async () => {
      const rel = await cliJson<FederationRelationship__Output>(A, [
        'federation', 'update', '--trust-domain', 'b.test', '--url', `https://127.0.0.1:${proxyPort}/bundle`, '--profile', 'https_web', '--ca-file', caFile,
      ]);
      expect(rel).toMatchObject({ profile: 'https_web', endpoint_spiffe_id: '', last_error: '', bundle_endpoint_url: `https://127.0.0.1:${proxyPort}/bundle` });
      expect(rel.web_ca_pem).toContain('BEGIN CERTIFICATE');
      expect(authorities(rel.bundle!.document)).toEqual(authorities((await ownSequence(B)).document));
    });

    it.each(['tls', 'http', 'malformed', 'wrong_trust_domain', 'sequence_backwards', 'too_large'])('%s', async (reason) => {
      const before = (await federatedAtA())!;
      mode = reason;
      if (reason === 'tls') proxy.setSecureContext(strangerContext);
      try {
        const rel = await cliJson<FederationRelationship__Output>(A, ['federation', 'refresh', '--trust-domain', 'b.test']);
        expect(rel.last_error_reason).toBe(reason);
        expect(rel.last_error).not.toBe('');
        expect(rel.consecutive_failures).toBeGreaterThanOrEqual(1);
        // The last good bundle is kept, byte for byte, and reported with the error.
        const after = (await federatedAtA())!;
        expect(after.document).toBe(before.document);
        expect(after.sequence).toBe(before.sequence);
        expect(after.last_error).toBe(rel.last_error);
        expect(after.last_refresh).toBe(before.last_refresh === 0 ? 0 : after.last_refresh);
        // A's workloads still have it, and the handshake still works.
        expect(srcA.bundles().has('b.test')).toBe(true);
        expect((await handshake()).serverSaw).toBe(`hello ${A_CLIENT}`);
        const show = await cliAsync(['federation', 'show', '--trust-domain', 'b.test', '--socket', A.adminSocket], A.env);
        expect(show.stdout).toMatch(new RegExp(`^Last error   : ${reason}: `, 'm'));
        const list = await cliAsync(['bundle', 'list', '--socket', A.adminSocket], A.env);
        expect(list.stdout).toContain(`Trust domain: b.test (endpoint)\nSequence    : ${before.sequence}\n`);
        expect(list.stdout).toContain(`Last error  : ${rel.last_error} (`);
      } finally {
        mode = 'good';
        if (reason === 'tls') proxy.setSecureContext(goodContext);
      }
    });

    it('recovers when the endpoint is good again, and goes back to B\'s real endpoint', async () => {
      const ok = await cliJson<FederationRelationship__Output>(A, ['federation', 'refresh', '--trust-domain', 'b.test']);
      expect(ok).toMatchObject({ last_error: '', last_error_reason: '', consecutive_failures: 0 });
      const back = await cliJson<FederationRelationship__Output>(A, [
        'federation', 'update', '--trust-domain', 'b.test', '--url', `https://127.0.0.1:${portB}`, '--profile', 'https_spiffe', '--endpoint-id', 'spiffe://b.test/anchorage/server',
      ]);
      expect(back).toMatchObject({ profile: 'https_spiffe', web_ca_pem: '', last_error: '' });
    });
  });

  it('relationship deleted: A drops B\'s bundle, the handshake fails and B\'s JWT-SVIDs are refused again', async () => {
    const r = await cliAsync(['federation', 'delete', '--trust-domain', 'b.test', '--socket', A.adminSocket], A.env);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('Deleted the federation relationship with b.test and its bundle\n');
    expect(await federatedAtA()).toBeUndefined();
    await until('A\'s workload to lose b.test\'s bundle', () => !srcA.bundles().has('b.test'));
    await handshakeError();
    await until('A\'s JWT bundles to lose b.test', () => !jwtA.bundles().has('b.test'));
    const token = (await jwtB.fetchJWTSVID(A_CLIENT)).token;
    const refused = await clientA.validateJWTSVID(token, A_CLIENT).then(
      () => undefined,
      (e: unknown) => e as WorkloadApiError,
    );
    expect(refused?.status).toBe(grpc.status.INVALID_ARGUMENT);
  });
});
