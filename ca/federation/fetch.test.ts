import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '@anchorage/client/pem';
import { X509Bundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { startTestCa, type TestCa } from '../../test/helpers/test-ca.js';
import { BundleFetchError, fetchBundle, parseEndpointUrl, type FetchFailure } from './fetch.js';

const PEER = TrustDomain.parse('peer.test');
const ENDPOINT_ID = SpiffeId.parse('spiffe://peer.test/bundle-endpoint');
let dir: string;
let peer: TestCa;
let other: TestCa;
let spiffeServer: Server;
let webServer: Server;
let webCa: string;
let spiffeBase: string;
let webBase: string;

/** One handler for both servers: each path serves one good or bad case. */
function handler(path: string | undefined, res: import('node:http').ServerResponse): void {
  const doc = JSON.parse(peer.ca.bundle().marshal());
  switch (path) {
    case '/':
      res.setHeader('content-type', 'application/json');
      return void res.end(JSON.stringify(doc));
    case '/500':
      res.statusCode = 500;
      return void res.end('oops');
    case '/junk':
      return void res.end('{"keys": [ not json');
    case '/other':
      return void res.end(other.ca.bundle().marshal());
    case '/old':
      return void res.end(JSON.stringify({ ...doc, spiffe_sequence: 1 }));
    case '/empty':
      return void res.end('{"keys": []}');
    case '/big':
      return void res.end(' '.repeat(2 * 1024 * 1024));
    case '/big-chunked':
      // No content-length: the limit must hold while reading.
      for (let i = 0; i < 32; i++) res.write(' '.repeat(64 * 1024));
      return void res.end();
    default:
      res.statusCode = 404;
      res.end();
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function failure(p: Promise<unknown>): Promise<{ reason: FetchFailure; message: string }> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BundleFetchError);
    return { reason: (err as BundleFetchError).reason, message: (err as BundleFetchError).message };
  }
  throw new Error('expected the fetch to fail');
}

const spiffe = (authorities = new X509Bundle(PEER, peer.ca.bundle().x509.authorities()), endpointId = ENDPOINT_ID) =>
  ({ kind: 'https_spiffe', endpointId, authorities }) as const;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-fed-fetch-'));
  peer = await startTestCa('peer.test', dir);
  other = await startTestCa('other.test', dir);
  // https_spiffe: the endpoint serves with an X509-SVID of its SPIFFE ID from the peer's CA.
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const svid = await peer.minter.mintX509({ spiffeId: ENDPOINT_ID, spki: publicKey.export({ type: 'spki', format: 'der' }) });
  spiffeServer = createServer(
    { key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: svid.chain.map((d) => toPem('CERTIFICATE', d)).join('') },
    (req, res) => handler(req.url, res),
  );
  spiffeBase = `https://127.0.0.1:${await listen(spiffeServer)}`;
  // https_web: a private web CA and a server certificate for 127.0.0.1.
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Web CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  o(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'web.key', '-out', 'web.csr', '-subj', '/CN=127.0.0.1']);
  // Add the SAN through a file (openssl x509 -req takes extensions from -extfile).
  const ext = join(dir, 'web.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  o(['x509', '-req', '-in', 'web.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'web.pem', '-days', '2', '-extfile', ext]);
  webCa = readFileSync(join(dir, 'ca.pem'), 'utf8');
  webServer = createServer({ key: readFileSync(join(dir, 'web.key')), cert: readFileSync(join(dir, 'web.pem')) }, (req, res) => handler(req.url, res));
  webBase = `https://127.0.0.1:${await listen(webServer)}`;
});

afterAll(async () => {
  spiffeServer?.close();
  webServer?.close();
  await peer?.close();
  await other?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('fetching a federated bundle', () => {
  it('https_spiffe: verifies the endpoint SVID against the peer bundle and returns the peer bundle', async () => {
    const b = await fetchBundle({ url: `${spiffeBase}/`, trustDomain: PEER, profile: spiffe() });
    expect(b.trustDomain.name).toBe('peer.test');
    expect(b.x509.equals(peer.ca.bundle().x509)).toBe(true);
    expect(b.jwt.equals(peer.ca.bundle().jwt)).toBe(true);
    expect(b.sequence).toBe(peer.ca.bundle().sequence);
  });

  it('https_spiffe: refuses another SPIFFE ID and authorities that did not issue the endpoint SVID', async () => {
    const wrongId = await failure(fetchBundle({ url: `${spiffeBase}/`, trustDomain: PEER, profile: spiffe(undefined, SpiffeId.parse('spiffe://peer.test/other')) }));
    expect(wrongId.reason).toBe('tls');
    expect(wrongId.message).toContain('the endpoint presented spiffe://peer.test/bundle-endpoint, expected spiffe://peer.test/other');
    const wrongCa = await failure(fetchBundle({ url: `${spiffeBase}/`, trustDomain: PEER, profile: spiffe(new X509Bundle(PEER, other.ca.bundle().x509.authorities())) }));
    expect(wrongCa.reason).toBe('tls');
  });

  it('https_web: trusts the given CA (or the system roots), checking the host name', async () => {
    const b = await fetchBundle({ url: `${webBase}/`, trustDomain: PEER, profile: { kind: 'https_web', ca: webCa } });
    expect(b.x509.equals(peer.ca.bundle().x509)).toBe(true);
    expect((await failure(fetchBundle({ url: `${webBase}/`, trustDomain: PEER, profile: { kind: 'https_web' } }))).reason).toBe('tls');
    // A chain the CA vouches for but that does not name the host: the SVID endpoint under https_web.
    const peerRoots = peer.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join('');
    const noHost = await failure(fetchBundle({ url: `${spiffeBase}/`, trustDomain: PEER, profile: { kind: 'https_web', ca: peerRoots } }));
    expect(noHost.reason).toBe('tls');
    expect(noHost.message).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list|does not match certificate's altnames/);
  });

  it.each<[string, FetchFailure, RegExp, number?]>([
    ['/500', 'http', /answered HTTP 500$/],
    ['/junk', 'malformed', /: bundle: /],
    ['/empty', 'malformed', /the bundle holds no keys$/],
    ['/other', 'wrong_trust_domain', /an authority names spiffe:\/\/other\.test, which is not in peer\.test$/],
    ['/old', 'sequence_backwards', /spiffe_sequence 1 is lower than the 10 we hold; keeping ours$/, 10],
    ['/big', 'too_large', /sent 2097152 bytes, more than the limit of 1048576$/],
    ['/big-chunked', 'too_large', /sent more than the limit of 1048576 bytes$/],
  ])('refuses %s as %s', async (path, reason, message, previousSequence) => {
    for (const [base, profile] of [
      [spiffeBase, spiffe()],
      [webBase, { kind: 'https_web', ca: webCa }],
    ] as const) {
      const f = await failure(fetchBundle({ url: `${base}${path}`, trustDomain: PEER, profile, previousSequence }));
      expect(f.reason).toBe(reason);
      expect(f.message).toMatch(message);
    }
  });

  it('reports an endpoint nobody listens on as unreachable', async () => {
    const closed = createServer();
    const port = await listen(closed);
    closed.close();
    const f = await failure(fetchBundle({ url: `https://127.0.0.1:${port}/`, trustDomain: PEER, profile: spiffe() }));
    expect(f.reason).toBe('unreachable');
    expect(f.message).toContain('ECONNREFUSED');
  });

  it.each([
    ['not a url', 'federation: "not a url" is not a URL'],
    ['http://peer.test/bundle', 'federation: bundle endpoint URL must be https, not http'],
    ['https://user:pw@peer.test/', 'federation: bundle endpoint URL must not carry user info'],
    ['https://peer.test/#x', 'federation: bundle endpoint URL must not have a fragment'],
  ])('refuses the endpoint URL %s', (url, message) => {
    expect(() => parseEndpointUrl(url)).toThrow(message);
  });
});
