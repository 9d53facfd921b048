import { webcrypto } from 'node:crypto';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from './common/errors.js';
import { toPem } from './common/pem.js';
import { SpiffeBundle } from './spiffe/bundle.js';
import { SpiffeId, TrustDomain } from './spiffe/id.js';
import { makeLeaf, makeRoot } from '../../../test/helpers/pki.js';
import { authorizeAny, authorizeId, authorizeIf, authorizeMemberOf, authorizeOneOf } from './authorizer.js';
import { Harness, nextEvent, rejectionOf } from '../../../test/helpers/workload-api-harness.js';
import { connectMtls, createMtlsServer, guardTlsServer, peerIdentity, peerSpiffeId, tlsClientOptions, tlsServerOptions } from './tls.js';
import type { X509Context } from './types.js';
import { X509Source } from './x509source.js';

const TD = 'example.test';
const FED_TD = 'fed.test';
const ROGUE_TD = 'rogue.test';
const FRONTEND = `spiffe://${TD}/frontend`;
const BACKEND = `spiffe://${TD}/backend`;
const INTRUDER = `spiffe://${FED_TD}/intruder`;

const h = new Harness();
let frontend: X509Source;
let backend: X509Source;
let intruder: X509Source;
let rotateBackend: () => Promise<unknown>;
let rogue: { key: string; cert: string };

async function source(address: string): Promise<X509Source> {
  const s = await X509Source.create({ address });
  h.defer(() => s.close());
  return s;
}

beforeAll(async () => {
  await h.setup([TD, FED_TD]);
  // Three workloads, each behind its own Workload API (one process cannot be
  // attested as three different workloads by one agent).
  const rogueRoot = await makeRoot(ROGUE_TD);
  const fe = await h.startEnv(TD);
  await fe.addSelf(FRONTEND, { federatesWith: [FED_TD, ROGUE_TD] });
  fe.source.setFederatedBundle(h.ca(FED_TD).ca.bundle());
  fe.source.setFederatedBundle(new SpiffeBundle(TrustDomain.parse(ROGUE_TD), { x509Authorities: [rogueRoot.der] }));
  const be = await h.startEnv(TD);
  await be.addSelf(BACKEND);
  const intr = await h.startEnv(FED_TD);
  await intr.addSelf(INTRUDER, { federatesWith: [TD] });
  intr.source.setFederatedBundle(h.ca(TD).ca.bundle());
  [frontend, backend, intruder] = await Promise.all([source(fe.address), source(be.address), source(intr.address)]);
  rotateBackend = () => be.source.rotate(BACKEND);

  // A certificate that claims to be the backend, issued by a root the
  // frontend trusts — but only for rogue.test.
  const leaf = await makeLeaf(rogueRoot, BACKEND);
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', leaf.keys.privateKey));
  rogue = { key: toPem('PRIVATE KEY', pkcs8), cert: toPem('CERTIFICATE', leaf.der) };
});

afterAll(() => h.close());

async function listen(server: tls.Server): Promise<number> {
  const open = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  h.defer(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** Everything the peer sends until the connection closes. */
function readAll(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(data));
  });
}

/** A server that greets every authorized client with the SPIFFE ID it verified. */
function greeter(src: X509Source, authorizer: Parameters<typeof createMtlsServer>[1]): tls.Server {
  return createMtlsServer(src, authorizer, {}, (socket) => socket.end(`hello ${peerSpiffeId(socket)?.toString()}`));
}

describe('mutual TLS by SPIFFE ID', () => {
  it('two workloads with different SPIFFE IDs connect; each side learns the other\'s ID; host names play no part', async () => {
    const port = await listen(greeter(backend, authorizeId(FRONTEND)));
    // The server's SVID has no DNS name at all, and the client asks for an unrelated one.
    const socket = await connectMtls(frontend, authorizeId(BACKEND), { host: '127.0.0.1', port, servername: 'not-the-backend.example.com' });
    expect(peerSpiffeId(socket)?.toString()).toBe(BACKEND);
    expect(socket.authorized).toBe(true);
    expect(await readAll(socket)).toBe(`hello ${FRONTEND}`);
  });

  it('the client refuses a server with another SPIFFE ID', async () => {
    const port = await listen(greeter(backend, authorizeAny()));
    const err = await rejectionOf(connectMtls(frontend, authorizeId(`spiffe://${TD}/database`), { host: '127.0.0.1', port }));
    expect(isAnchorageError(err, 'permission_denied')).toBe(true);
    expect(err.message).toBe(`spiffetls: peer ${BACKEND} is not authorized: want spiffe://${TD}/database`);
  });

  it('the server refuses a client with another SPIFFE ID, before the application sees it', async () => {
    let served = 0;
    const server = createMtlsServer(backend, authorizeId(FRONTEND), {}, (socket) => {
      served++;
      socket.end('secret');
    });
    const port = await listen(server);
    const refused = nextEvent<[Error, tls.TLSSocket]>(server, 'tlsClientError');
    // The intruder-free case: same trust domain, valid SVID, wrong workload.
    const other = await h.startEnv(TD);
    await other.addSelf(`spiffe://${TD}/batch-job`);
    const batch = await source(other.address);
    const received = await connectMtls(batch, authorizeAny(), { host: '127.0.0.1', port }).then(readAll, () => '');
    const [err] = await refused;
    expect(isAnchorageError(err, 'permission_denied')).toBe(true);
    expect(err.message).toBe(`spiffetls: peer spiffe://${TD}/batch-job is not authorized: want ${FRONTEND}`);
    expect(received).toBe('');
    expect(served).toBe(0);
  });

  it('a certificate from a trust domain the verifier has no bundle for fails the handshake', async () => {
    // The backend knows only example.test; the intruder's chain leads to fed.test's root.
    const port = await listen(tls.createServer({ ...tlsServerOptions(intruder), requestCert: false }, (s) => s.end('x')));
    const err = await rejectionOf(connectMtls(backend, authorizeAny(), { host: '127.0.0.1', port }));
    expect((err as NodeJS.ErrnoException).code).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
  });

  it('a federated trust domain is trusted for its own IDs, and the authorizer decides', async () => {
    const port = await listen(greeter(intruder, authorizeMemberOf(TD)));
    const ok = await connectMtls(frontend, authorizeAny(), { host: '127.0.0.1', port });
    expect(peerSpiffeId(ok)?.toString()).toBe(INTRUDER);
    expect(await readAll(ok)).toBe(`hello ${FRONTEND}`);
    const err = await rejectionOf(connectMtls(frontend, authorizeMemberOf(TD), { host: '127.0.0.1', port }));
    expect(isAnchorageError(err, 'permission_denied')).toBe(true);
    expect(err.message).toBe(`spiffetls: peer ${INTRUDER} is not authorized: want a member of trust domain "${TD}"`);
  });

  it('a root trusted for one trust domain cannot vouch for another\'s IDs, although OpenSSL accepts the chain', async () => {
    const port = await listen(tls.createServer({ key: rogue.key, cert: rogue.cert }, (s) => s.end('x')));
    const err = await rejectionOf(connectMtls(frontend, authorizeId(BACKEND), { host: '127.0.0.1', port }));
    expect(isAnchorageError(err, 'unauthenticated')).toBe(true);
    expect(err.message).toBe(`spiffetls: peer certificate rejected: x509svid: intermediate 1 is not signed by an authority of trust domain "${TD}"`);
  });

  it('the guarded server follows SVID rotation for new connections', async () => {
    // Connections stay open until the client closes them, so the peer certificate can be read.
    const port = await listen(createMtlsServer(backend, authorizeAny()));
    const first = await connectMtls(frontend, authorizeId(BACKEND), { host: '127.0.0.1', port });
    const oldSerial = peerIdentity(first)!.chain[0]!.serialNumber;
    first.destroy();
    expect(oldSerial).toBe(backend.svid().chain[0]!.serialNumber);
    const updated = nextEvent<[X509Context]>(backend, 'update');
    await rotateBackend();
    const [ctx] = await updated;
    const second = await connectMtls(frontend, authorizeId(BACKEND), { host: '127.0.0.1', port });
    const newSerial = peerIdentity(second)!.chain[0]!.serialNumber;
    second.destroy();
    expect(newSerial).toBe(ctx.svids[0]!.chain[0]!.serialNumber);
    expect(newSerial).not.toBe(oldSerial);
  });

  it('works for HTTPS: tlsServerOptions + guardTlsServer, tlsClientOptions per request', async () => {
    const server = https.createServer(tlsServerOptions(backend), (req, res) => res.end(`hello ${peerSpiffeId(req.socket as tls.TLSSocket)?.toString()}`));
    const release = guardTlsServer(server, backend, authorizeOneOf([FRONTEND, `spiffe://${TD}/admin`]));
    h.defer(release);
    const port = await listen(server);
    const get = (authorizer: Parameters<typeof tlsClientOptions>[1]) =>
      new Promise<string>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port, path: '/', agent: false, ...tlsClientOptions(frontend, authorizer) }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        req.end();
      });
    expect(await get(authorizeIf((id) => id.path.startsWith('/back'), 'a backend'))).toBe(`hello ${FRONTEND}`);
    const err = await rejectionOf(get(authorizeIf((id) => id.path === '/db', 'the database')));
    expect(err.message).toBe(`spiffetls: peer ${BACKEND} is not authorized: want the database`);
  });
});

describe('authorizers', () => {
  it('say who was refused and what was wanted', () => {
    const peer = SpiffeId.parse(`spiffe://${TD}/x`);
    expect(() => authorizeAny()(peer, [])).not.toThrow();
    expect(() => authorizeId(`spiffe://${TD}/x`)(peer, [])).not.toThrow();
    expect(() => authorizeId(`spiffe://${TD}/y`)(peer, [])).toThrow(`spiffetls: peer spiffe://${TD}/x is not authorized: want spiffe://${TD}/y`);
    expect(() => authorizeOneOf([`spiffe://${TD}/y`, `spiffe://${TD}/x`])(peer, [])).not.toThrow();
    expect(() => authorizeOneOf([`spiffe://${TD}/y`, `spiffe://${TD}/z`])(peer, [])).toThrow(
      `spiffetls: peer spiffe://${TD}/x is not authorized: want one of spiffe://${TD}/y, spiffe://${TD}/z`,
    );
    expect(() => authorizeMemberOf(`spiffe://${TD}`)(peer, [])).not.toThrow();
    expect(() => authorizeMemberOf(FED_TD)(peer, [])).toThrow(`spiffetls: peer spiffe://${TD}/x is not authorized: want a member of trust domain "${FED_TD}"`);
    expect(() => authorizeId('not an id')).toThrow('spiffeid: scheme must be "spiffe://" in lower case');
  });
});
