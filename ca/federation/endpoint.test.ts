import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/log.js';
import { toPem } from '@anchorage/client/pem';
import { SpiffeBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { captureLogger } from '../../test/helpers/log.js';
import { parseServerConfig } from '../config.js';
import { startServer, type RunningServer } from '../server.js';

const TD = 'federation.test';
const td = TrustDomain.parse(TD);
const SERVER_ID = `spiffe://${TD}/anchorage/server`;

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The presented chain, leaf first, as DER. */
  chain: Uint8Array[];
}

/** One HTTPS request on a fresh connection (no keep-alive agent, so every call sees the current certificate). */
function fetchBundle(port: number, opts: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', method: 'GET', agent: false, ...opts }, (res) => {
      const chain: Uint8Array[] = [];
      let cert = (res.socket as TLSSocket).getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
      const seen = new Set<string>();
      while (cert?.raw && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        chain.push(new Uint8Array(cert.raw));
        cert = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate as typeof cert;
      }
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts).toString('utf8'), chain }));
    });
    req.on('error', reject);
    req.end();
  });
}

function pemOf(ders: Uint8Array[]): string {
  return ders.map((d) => toPem('CERTIFICATE', d)).join('');
}

/** A client of the https_spiffe profile: our bundle as the only trust, and the endpoint's SPIFFE ID. */
function spiffeClient(server: RunningServer, expectedId = SERVER_ID): RequestOptions {
  return {
    ca: pemOf(server.ca.bundle().x509.authorities()),
    checkServerIdentity: (_host, cert) =>
      cert.subjectaltname === `URI:${expectedId}` ? undefined : new Error(`endpoint presented ${cert.subjectaltname}, not ${expectedId}`),
  };
}

describe('bundle endpoint, https_spiffe', () => {
  let dir: string;
  let server: RunningServer;
  let clock = Date.now();
  const logs = captureLogger();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'anchorage-federation-'));
    const cfg = parseServerConfig(
      {
        trust_domain: TD,
        data_dir: dir,
        admin_socket: 'admin.sock',
        bind_address: '127.0.0.1:0',
        key_manager: { type: 'memory' },
        ca: { ttl: '2h' },
        federation: { bundle_endpoint: { address: '127.0.0.1:0', profile: 'https_spiffe', refresh_hint: '90s' } },
      },
      'test',
      dir,
    );
    server = await startServer(cfg, { logger: logs.logger, now: () => clock });
  });

  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs where it listens and exposes the bound port', () => {
    expect(server.bundleEndpointPort).toBeGreaterThan(0);
    const rec = logs.records.find((r) => r.msg === 'federation: bundle endpoint listening');
    expect(rec).toMatchObject({ address: `127.0.0.1:${server.bundleEndpointPort}`, profile: 'https_spiffe', refreshHint: 90, spiffeId: SERVER_ID });
  });

  it('serves the bundle document at GET / with the endpoint refresh hint', async () => {
    const res = await fetchBundle(server.bundleEndpointPort!, spiffeClient(server));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));

    const own = server.ca.bundle();
    const doc = JSON.parse(res.body) as { keys: Array<Record<string, unknown>>; spiffe_sequence: number; spiffe_refresh_hint: number };
    expect(Object.keys(doc).sort()).toEqual(['keys', 'spiffe_refresh_hint', 'spiffe_sequence']);
    expect(doc.spiffe_sequence).toBe(own.sequence);
    expect(doc.spiffe_refresh_hint).toBe(90);
    // The stored bundle keeps bundle_refresh_hint (5m); only the served copy says 90 s.
    expect(own.refreshHint).toBe(300);

    const root = Buffer.from(server.ca.rootOfTrust().anchors[0]!).toString('base64');
    const x509Keys = doc.keys.filter((k) => k.use === 'x509-svid');
    const jwtKeys = doc.keys.filter((k) => k.use === 'jwt-svid');
    expect(x509Keys).toHaveLength(1);
    expect(x509Keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', x5c: [root] });
    expect(x509Keys[0]).not.toHaveProperty('kid');
    expect(jwtKeys.map((k) => k.kid)).toEqual([server.ca.activeJwt().kid]);
    expect(jwtKeys[0]).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(doc.keys).toHaveLength(2);

    // A consumer parses it back to our bundle, apart from the refresh hint.
    const parsed = SpiffeBundle.parse(td, res.body);
    expect(parsed.x509.equals(own.x509) && parsed.jwt.equals(own.jwt)).toBe(true);
    expect(parsed.sequence).toBe(own.sequence);
  });

  it('presents the server SVID, which verifies against our bundle', async () => {
    const res = await fetchBundle(server.bundleEndpointPort!, spiffeClient(server));
    const leaf = new X509Certificate(res.chain[0]!);
    expect(leaf.subjectAltName).toBe(`URI:${SERVER_ID}`);
    expect(leaf.serialNumber).toBe(server.tlsIdentity.currentCertificate().serialNumber);
    // Leaf + intermediate were sent; the root comes from our bundle.
    const presented = res.chain.filter((d) => !server.ca.bundle().x509.has(d));
    expect(presented).toHaveLength(2);
    const verified = verifyX509Svid(presented, () => new X509Bundle(td, server.ca.bundle().x509.authorities()));
    expect(verified.spiffeId.toString()).toBe(SERVER_ID);
  });

  it('is refused by a client without our bundle, or expecting another SPIFFE ID', async () => {
    await expect(fetchBundle(server.bundleEndpointPort!)).rejects.toMatchObject({ code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' });
    await expect(fetchBundle(server.bundleEndpointPort!, spiffeClient(server, `spiffe://${TD}/someone-else`))).rejects.toThrow(
      `endpoint presented URI:${SERVER_ID}, not spiffe://${TD}/someone-else`,
    );
  });

  it('does not ask for a client certificate and refuses TLS below 1.2', async () => {
    const res = await fetchBundle(server.bundleEndpointPort!, { ...spiffeClient(server), maxVersion: 'TLSv1.2' });
    expect(res.status).toBe(200);
    await expect(
      fetchBundle(server.bundleEndpointPort!, { ...spiffeClient(server), minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }),
    ).rejects.toThrow(/tlsv1 alert protocol version/);
  });

  it('answers HEAD with the headers only', async () => {
    const get = await fetchBundle(server.bundleEndpointPort!, spiffeClient(server));
    const head = await fetchBundle(server.bundleEndpointPort!, { ...spiffeClient(server), method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-type']).toBe('application/json');
    expect(head.headers['content-length']).toBe(get.headers['content-length']);
  });

  it.each([
    ['GET', '/bundle', 404],
    ['GET', '/?x=1', 200],
    ['GET', '//', 404],
    ['POST', '/bundle', 404],
    ['POST', '/', 405],
    ['PUT', '/', 405],
    ['DELETE', '/', 405],
    ['OPTIONS', '/', 405],
  ])('%s %s → %i', async (method, path, status) => {
    const res = await fetchBundle(server.bundleEndpointPort!, { ...spiffeClient(server), method, path });
    expect(res.status).toBe(status);
    if (status === 405) {
      expect(res.headers.allow).toBe('GET, HEAD');
      expect(res.body).toBe('method not allowed\n');
    }
    if (status === 404) expect(res.body).toBe('not found: the bundle is served at /\n');
  });

  it('serves the renewed server SVID after a renewal', async () => {
    const before = (await fetchBundle(server.bundleEndpointPort!, spiffeClient(server))).chain[0]!;
    // ServerTlsIdentity renews on a half-life timer; run that renewal now.
    await (server.tlsIdentity as unknown as { renew(): Promise<void> }).renew();
    const current = server.tlsIdentity.currentCertificate();
    expect(current.serialNumber).not.toBe(new X509Certificate(before).serialNumber);
    const after = await fetchBundle(server.bundleEndpointPort!, spiffeClient(server));
    expect(new X509Certificate(after.chain[0]!).serialNumber).toBe(current.serialNumber);
  });

  it('serves the new bundle once the CA publishes one (JWT key prepared: sequence + 1)', async () => {
    const before = JSON.parse((await fetchBundle(server.bundleEndpointPort!, spiffeClient(server))).body) as {
      keys: Array<{ use: string; kid?: string }>;
      spiffe_sequence: number;
    };
    let published: SpiffeBundle | undefined;
    server.ca.once('bundle', (b: SpiffeBundle) => (published = b));
    // 70 minutes on: past the prepare time of a 2 h CA (half its lifetime).
    clock += 70 * 60 * 1000;
    await server.ca.tick();
    expect(published).toBeDefined();

    const res = await fetchBundle(server.bundleEndpointPort!, spiffeClient(server));
    const doc = JSON.parse(res.body) as typeof before & { spiffe_refresh_hint: number };
    expect(doc.spiffe_sequence).toBe(before.spiffe_sequence + 1);
    expect(doc.spiffe_sequence).toBe(server.ca.bundle().sequence);
    expect(doc.spiffe_refresh_hint).toBe(90);
    const kids = doc.keys.filter((k) => k.use === 'jwt-svid').map((k) => k.kid);
    expect(kids).toHaveLength(2);
    expect(kids).toEqual(expect.arrayContaining(before.keys.filter((k) => k.use === 'jwt-svid').map((k) => k.kid)));
    expect(kids).toEqual([...server.ca.bundle().jwt.keys().keys()]);
  });
});

/** A throwaway PKI made with openssl: root → intermediate → leaf (localhost, 127.0.0.1). */
function makeWebPki(dir: string): Record<'root' | 'int' | 'leaf' | 'rootKey' | 'intKey' | 'leafKey', string> {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = (name: string) => join(dir, name);
  for (const k of ['root', 'int', 'leaf']) run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p(`${k}.key`));
  run('req', '-x509', '-new', '-key', p('root.key'), '-subj', '/CN=Federation Test Root', '-days', '2', '-out', p('root.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  writeFileSync(p('int.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  writeFileSync(p('leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
  const sign = (name: string, issuer: string, subject: string, serial: string) => {
    run('req', '-new', '-key', p(`${name}.key`), '-subj', subject, '-out', p(`${name}.csr`));
    run('x509', '-req', '-in', p(`${name}.csr`), '-CA', p(`${issuer}.pem`), '-CAkey', p(`${issuer}.key`), '-set_serial', serial,
      '-days', '1', '-extfile', p(`${name}.ext`), '-out', p(`${name}.pem`));
  };
  sign('int', 'root', '/CN=Federation Test Intermediate', '0x1001');
  sign('leaf', 'int', '/CN=localhost', '0x1002');
  return { root: p('root.pem'), int: p('int.pem'), leaf: p('leaf.pem'), rootKey: p('root.key'), intKey: p('int.key'), leafKey: p('leaf.key') };
}

describe('bundle endpoint, https_web', () => {
  let dir: string;
  let pki: ReturnType<typeof makeWebPki>;
  let chainFile: string;
  let server: RunningServer;
  const logs = captureLogger();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'anchorage-federation-web-'));
    mkdirSync(join(dir, 'pki'));
    pki = makeWebPki(join(dir, 'pki'));
    chainFile = join(dir, 'pki', 'chain.pem');
    writeFileSync(chainFile, readFileSync(pki.leaf, 'utf8') + readFileSync(pki.int, 'utf8'));
    chmodSync(pki.leafKey, 0o644);
    const cfg = parseServerConfig(
      {
        trust_domain: TD,
        data_dir: join(dir, 'data'),
        admin_socket: 'admin.sock',
        bind_address: '127.0.0.1:0',
        key_manager: { type: 'memory' },
        bundle_refresh_hint: '10m',
        federation: { bundle_endpoint: { address: '127.0.0.1:0', profile: 'https_web', cert_file: 'pki/chain.pem', key_file: 'pki/leaf.key' } },
      },
      'test',
      dir,
    );
    server = await startServer(cfg, { logger: logs.logger });
  });

  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the configured chain, verified by Web PKI rules against its root', async () => {
    const ca = readFileSync(pki.root, 'utf8');
    // The default check: the IP SAN must match the host connected to.
    const res = await fetchBundle(server.bundleEndpointPort!, { ca });
    expect(res.status).toBe(200);
    expect(res.chain.map((d) => new X509Certificate(d).fingerprint256)).toEqual(
      [pki.leaf, pki.int, pki.root].map((f) => new X509Certificate(readFileSync(f)).fingerprint256),
    );
    // And by DNS name.
    expect((await fetchBundle(server.bundleEndpointPort!, { ca, servername: 'localhost' })).status).toBe(200);
    // A client trusting only our SPIFFE bundle does not accept it.
    await expect(fetchBundle(server.bundleEndpointPort!, spiffeClient(server))).rejects.toThrow();
  });

  it('serves the document with bundle_refresh_hint when no refresh_hint is given', async () => {
    const res = await fetchBundle(server.bundleEndpointPort!, { ca: readFileSync(pki.root, 'utf8') });
    expect(res.headers['content-type']).toBe('application/json');
    const doc = JSON.parse(res.body) as { spiffe_sequence: number; spiffe_refresh_hint: number; keys: unknown[] };
    expect(doc.spiffe_refresh_hint).toBe(600);
    expect(doc.spiffe_sequence).toBe(server.ca.bundle().sequence);
    expect(res.body).toBe(server.ca.bundle().marshal());
  });

  it('warns that the key file is readable by group or others, and logs the profile', () => {
    expect(logs.records.find((r) => r.msg === 'federation: the bundle endpoint key file is readable by group or others; chmod 600 it')).toMatchObject({
      level: 40,
      keyFile: pki.leafKey,
      mode: '644',
    });
    expect(logs.records.find((r) => r.msg === 'federation: bundle endpoint listening')).toMatchObject({ profile: 'https_web', certFile: chainFile, refreshHint: 600 });
  });

  describe('refuses to start, before touching the data dir', () => {
    const start = async (endpoint: Record<string, unknown>) => {
      const id = Math.random().toString(36).slice(2);
      const data = join(dir, `data-${id}`);
      // An admin socket of its own: the server of this suite holds admin.sock.
      const cfg = parseServerConfig(
        { trust_domain: TD, data_dir: data, admin_socket: `admin-${id}.sock`, bind_address: '127.0.0.1:0', key_manager: { type: 'memory' }, federation: { bundle_endpoint: endpoint } },
        'test',
        dir,
      );
      let message = '';
      try {
        const s = await startServer(cfg, { logger: silentLogger() });
        await s.close();
      } catch (err) {
        message = (err as Error).message;
      }
      return { message, touched: existsSync(data) };
    };
    const web = (cert: string, key: string) => ({ address: '127.0.0.1:0', profile: 'https_web', cert_file: cert, key_file: key });

    it('an unreadable certificate file', async () => {
      expect(await start(web('pki/missing.pem', 'pki/leaf.key'))).toEqual({
        message: `config: federation.bundle_endpoint.cert_file: cannot read ${join(dir, 'pki/missing.pem')}: ENOENT`,
        touched: false,
      });
    });

    it('an unreadable key file', async () => {
      expect((await start(web('pki/chain.pem', 'pki'))).message).toBe(`config: federation.bundle_endpoint.key_file: cannot read ${join(dir, 'pki')}: EISDIR`);
    });

    it('a certificate file without certificates', async () => {
      writeFileSync(join(dir, 'pki/junk.pem'), 'not a certificate\n');
      expect((await start(web('pki/junk.pem', 'pki/leaf.key'))).message).toBe(
        `config: federation.bundle_endpoint.cert_file: ${join(dir, 'pki/junk.pem')}: no PEM CERTIFICATE block found`,
      );
    });

    it('a malformed certificate', async () => {
      writeFileSync(join(dir, 'pki/bad.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      expect((await start(web('pki/bad.pem', 'pki/leaf.key'))).message).toBe(
        `config: federation.bundle_endpoint.cert_file: ${join(dir, 'pki/bad.pem')}: certificate 1 is not a valid X.509 certificate`,
      );
    });

    it('a chain that is not leaf first', async () => {
      writeFileSync(join(dir, 'pki/reversed.pem'), readFileSync(pki.int, 'utf8') + readFileSync(pki.leaf, 'utf8'));
      expect((await start(web('pki/reversed.pem', 'pki/leaf.key'))).message).toBe(
        `config: federation.bundle_endpoint.cert_file: ${join(dir, 'pki/reversed.pem')}: certificate 2 did not issue certificate 1; the chain must be leaf first`,
      );
    });

    it('a key file that holds no key', async () => {
      expect((await start(web('pki/chain.pem', 'pki/chain.pem'))).message).toBe(
        `config: federation.bundle_endpoint.key_file: ${join(dir, 'pki/chain.pem')}: not a PEM private key (or it is encrypted)`,
      );
    });

    it("a key that is not the certificate's", async () => {
      expect(await start(web('pki/chain.pem', 'pki/int.key'))).toEqual({
        message: `config: federation.bundle_endpoint.key_file: ${join(dir, 'pki/int.key')} does not match the certificate in ${chainFile}`,
        touched: false,
      });
    });

    it('an address already in use (and releases what it opened)', async () => {
      const taken = `127.0.0.1:${server.bundleEndpointPort}`;
      const r = await start({ address: taken, profile: 'https_spiffe' });
      expect(r.message).toBe(`federation: cannot listen on ${taken}: listen EADDRINUSE: address already in use ${taken}`);
    });
  });
});
