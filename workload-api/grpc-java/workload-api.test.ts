// End to end: the real Workload API server (startWorkloadApi) and clients
// that send the socket path as `:authority`, as grpc-java does — a raw HTTP/2
// client (node:http2) and grpc-js with grpc.default_authority — next to a
// plain grpc-js client, which must keep the fast path. Without this folder,
// nghttp2 resets every stream of the first two (workaround.test.ts shows that
// on a bare Node HTTP/2 server).
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnixWorkloadAttestor } from '../../node-agent/attestor/unix.js';
import { loadWorkloadProto, WORKLOAD_PROTO_PATH } from '@anchorage/client/proto';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import { captureLogger } from '../../test/helpers/log.js';
import { runNodeAs } from '../../test/helpers/workload.js';
import { startWorkloadApi, type WorkloadApi } from '../server.js';
import { splitDer, startTestCa, TestIdentitySource, type TestCa } from '../../test/helpers/test-ca.js';
import { PEEK_TIMEOUT_MS } from './route.js';
import { lacks } from '../../test/helpers/needs.js';

const TD = 'authority.test';
const UID = process.getuid?.() ?? 0;
const OWN_ID = `spiffe://${TD}/uid-${UID}`;
const NOBODY_UID = 65534;
const NOBODY_ID = `spiffe://${TD}/nobody`;
const isRoot = UID === 0;
const SLOW_PATH_MSG = 'workloadapi: connection served through the :authority rewriter';

let dir: string;
let ca: TestCa;
let api: WorkloadApi;
let socketPath: string;
let logs: Array<Record<string, unknown>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-authority-'));
  chmodSync(dir, 0o755); // child processes run as nobody
  ca = await startTestCa(TD, join(dir, 'ca'));
  const source = new TestIdentitySource(ca);
  await source.addIdentity({ spiffeId: OWN_ID, selectors: [`unix:uid:${UID}`] });
  await source.addIdentity({ spiffeId: NOBODY_ID, selectors: [`unix:uid:${NOBODY_UID}`] });
  const captured = captureLogger();
  logs = captured.records;
  socketPath = join(dir, 'public', 'api.sock');
  api = await startWorkloadApi({ socketPath, source, attestor: new UnixWorkloadAttestor({ logger: captured.logger }), logger: captured.logger });
});

afterAll(async () => {
  await api?.close();
  await ca?.close();
  rmSync(dir, { recursive: true, force: true });
});

const slowPathCount = () => logs.filter((r) => r['msg'] === SLOW_PATH_MSG).length;

function openSession(): http2.ClientHttp2Session {
  const session = http2.connect('http://localhost', { createConnection: () => connect(socketPath) });
  session.on('error', () => {});
  return session;
}

interface RawResult {
  status: number | undefined;
  grpcStatus: number | undefined;
  grpcMessage: string | undefined;
  first: X509SVIDResponse__Output | undefined;
}

/**
 * FetchX509SVID over a plain HTTP/2 stream with the given `:authority`: the
 * first message (then the stream is cancelled), or the status of a
 * trailers-only answer. Rejects if the stream is reset.
 */
function rawFetchX509Svid(session: http2.ClientHttp2Session, authority: string, withHeader = true): Promise<RawResult> {
  const deserialize = loadWorkloadProto().SpiffeWorkloadAPI.service.FetchX509SVID.responseDeserialize;
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
    ':authority': authority,
    'content-type': 'application/grpc',
    te: 'trailers',
  };
  if (withHeader) headers['workload.spiffe.io'] = 'true';
  const req = session.request(headers);
  req.end(Buffer.alloc(5)); // one empty X509SVIDRequest: flag 0, length 0
  return new Promise((resolve, reject) => {
    const result: RawResult = { status: undefined, grpcStatus: undefined, grpcMessage: undefined, first: undefined };
    const status = (h: http2.IncomingHttpHeaders) => {
      if (h[':status'] !== undefined) result.status = Number(h[':status']);
      if (h['grpc-status'] !== undefined) result.grpcStatus = Number(h['grpc-status']);
      if (h['grpc-message'] !== undefined) result.grpcMessage = decodeURIComponent(String(h['grpc-message']));
    };
    const timer = setTimeout(() => reject(new Error('no answer in 10 s')), 10_000);
    let buf = Buffer.alloc(0);
    req.on('response', status);
    req.on('trailers', status);
    req.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (result.first === undefined && buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        result.first = deserialize(buf.subarray(5, 5 + buf.readUInt32BE(1)));
        clearTimeout(timer);
        req.close(http2.constants.NGHTTP2_CANCEL);
        resolve(result);
      }
    });
    req.on('close', () => {
      clearTimeout(timer);
      if (result.first !== undefined) return;
      if (result.status === undefined) reject(new Error(`stream closed without a response (RST_STREAM code ${req.rstCode})`));
      else resolve(result);
    });
    req.on('error', () => {});
  });
}

/** The SPIFFE ID in the leaf of an X509SVID message, checked against its `spiffe_id`. */
function leafId(svid: { spiffe_id: string; x509_svid: Buffer }): string {
  const leaf = new X509Certificate(splitDer(svid.x509_svid)[0]!);
  expect(leaf.subjectAltName).toBe(`URI:${svid.spiffe_id}`);
  return svid.spiffe_id;
}

describe('clients that send the socket path as :authority', () => {
  it('a raw HTTP/2 client gets its own X509-SVID, on several streams of one connection', async () => {
    const before = slowPathCount();
    const session = openSession();
    try {
      // The client's HPACK encoder indexes :authority after the first
      // request; the later ones refer to its dynamic table.
      const results = [await rawFetchX509Svid(session, socketPath)];
      results.push(...(await Promise.all([rawFetchX509Svid(session, socketPath), rawFetchX509Svid(session, socketPath)])));
      for (const r of results) {
        expect(r.status).toBe(200);
        expect(r.first, `grpc-status ${r.grpcStatus} ${r.grpcMessage}`).toBeDefined();
        expect(r.first!.svids.map(leafId)).toEqual([OWN_ID]);
        expect(r.first!.svids[0]!.x509_svid_key.length).toBeGreaterThan(0);
        expect(splitDer(r.first!.svids[0]!.bundle).length).toBeGreaterThan(0);
      }
    } finally {
      session.close();
    }
    expect(slowPathCount()).toBe(before + 1);
  });

  it('without the security header it gets INVALID_ARGUMENT (grpc-status 3)', async () => {
    const session = openSession();
    try {
      const r = await rawFetchX509Svid(session, socketPath, false);
      expect(r.status).toBe(200);
      expect(r.first).toBeUndefined();
      expect(r.grpcStatus).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      session.close();
    }
  });

  it('a connection that says nothing for a while takes the slow path and still works', async () => {
    const before = slowPathCount();
    const socket = connect(socketPath);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    await new Promise((r) => setTimeout(r, PEEK_TIMEOUT_MS + 200));
    expect(slowPathCount()).toBe(before + 1);
    const session = http2.connect('http://localhost', { createConnection: () => socket });
    session.on('error', () => {});
    try {
      const ok = await rawFetchX509Svid(session, 'localhost');
      expect(ok.first!.svids.map(leafId)).toEqual([OWN_ID]);
      const viaPath = await rawFetchX509Svid(session, socketPath);
      expect(viaPath.first!.svids.map(leafId)).toEqual([OWN_ID]);
    } finally {
      session.close();
    }
  });
});

describe('clients that send an acceptable :authority', () => {
  it('a grpc-js client keeps the fast path and gets its SVID', async () => {
    const before = slowPathCount();
    const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socketPath}`, grpc.credentials.createInsecure());
    try {
      const md = new grpc.Metadata();
      md.set('workload.spiffe.io', 'true');
      const first = await new Promise<X509SVIDResponse__Output>((resolve, reject) => {
        const stream = client.FetchX509SVID({}, md);
        stream.once('data', (m: X509SVIDResponse__Output) => {
          stream.removeAllListeners('error');
          stream.on('error', () => {});
          stream.cancel();
          resolve(m);
        });
        stream.once('error', reject);
      });
      expect(first.svids.map(leafId)).toEqual([OWN_ID]);
      // and a second call on the same (fast) connection
      const noHeader = await new Promise<grpc.ServiceError>((resolve) => {
        client.FetchX509SVID({}).once('error', resolve);
      });
      expect(noHeader.code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      client.close();
    }
    expect(slowPathCount()).toBe(before);
  });

  it('a raw client sending localhost or a percent-encoded path keeps the fast path', async () => {
    const before = slowPathCount();
    for (const authority of ['localhost', encodeURIComponent(socketPath)]) {
      const session = openSession();
      try {
        const r = await rawFetchX509Svid(session, authority);
        expect(r.first!.svids.map(leafId)).toEqual([OWN_ID]);
      } finally {
        session.close();
      }
    }
    expect(slowPathCount()).toBe(before);
  });

  it('close() ends a connection still being looked at', async () => {
    const dir2 = mkdtempSync(join(tmpdir(), 'anchorage-authority-close-'));
    const captured = captureLogger();
    const source = new TestIdentitySource(ca);
    const path = join(dir2, 'api.sock');
    const api2 = await startWorkloadApi({ socketPath: path, source, attestor: new UnixWorkloadAttestor({ logger: captured.logger }), logger: captured.logger });
    const socket = connect(path);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.resume(); // read, to see the end
    socket.write('PRI * HTTP/2.0\r\n'); // half a preface, then nothing
    await new Promise((r) => setTimeout(r, 50));
    expect(api2.openConnections).toBe(1);
    const t0 = Date.now();
    await api2.close();
    await closed;
    expect(Date.now() - t0).toBeLessThan(PEEK_TIMEOUT_MS);
    for (let i = 0; i < 100 && api2.openConnections > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(api2.openConnections).toBe(0);
    rmSync(dir2, { recursive: true, force: true });
  });
});

// A grpc-js client made to behave like grpc-java: `grpc.default_authority`
// set to the socket path. CommonJS, so it can require grpc-js by absolute
// path as another user from any directory.
const CHILD = `
const [grpcPath, loaderPath, protoPath, socket, authority] = process.argv.slice(2);
const grpc = require(grpcPath);
const protoLoader = require(loaderPath);
const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const { SpiffeWorkloadAPI } = grpc.loadPackageDefinition(def);
const client = new SpiffeWorkloadAPI('unix://' + socket, grpc.credentials.createInsecure(), authority ? { 'grpc.default_authority': authority } : {});
const md = new grpc.Metadata();
md.set('workload.spiffe.io', 'true');
const out = (o) => { process.stdout.write(JSON.stringify(o) + '\\n'); process.exit(0); };
const stream = client.FetchX509SVID({}, md, { deadline: Date.now() + 10000 });
stream.once('data', (res) => out({ ok: true, ids: res.svids.map((s) => s.spiffe_id), leaf: res.svids.map((s) => s.x509_svid.toString('base64')) }));
stream.once('error', (err) => out({ ok: false, code: err.code, details: err.details }));
`;

interface ChildResult {
  ok: boolean;
  ids?: string[];
  leaf?: string[];
  code?: number;
  details?: string;
}

function runChild(uid: number, authority: string | undefined): Promise<ChildResult> {
  const require = createRequire(import.meta.url);
  const script = join(dir, 'child.cjs');
  writeFileSync(script, CHILD, { mode: 0o644 });
  const args = [script, require.resolve('@grpc/grpc-js'), require.resolve('@grpc/proto-loader'), WORKLOAD_PROTO_PATH, socketPath, authority ?? ''];
  return runNodeAs<ChildResult>(uid, args);
}

describe.skipIf(lacks(!isRoot, 'root, to run children under other uids'))('peer credentials on both paths (child processes under different uids)', () => {
  it('each caller gets the identity of its own uid, rewritten or not, all at once', async () => {
    const before = slowPathCount();
    const [rootSlow, nobodySlow, rootFast, nobodyFast] = await Promise.all([
      runChild(0, socketPath),
      runChild(NOBODY_UID, socketPath),
      runChild(0, undefined),
      runChild(NOBODY_UID, undefined),
    ]);
    for (const r of [rootSlow, nobodySlow, rootFast, nobodyFast]) expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(rootSlow.ids).toEqual([OWN_ID]);
    expect(rootFast.ids).toEqual([OWN_ID]);
    expect(nobodySlow.ids).toEqual([NOBODY_ID]);
    expect(nobodyFast.ids).toEqual([NOBODY_ID]);
    for (const [r, id] of [
      [rootSlow, OWN_ID],
      [nobodySlow, NOBODY_ID],
    ] as const) {
      expect(new X509Certificate(Buffer.from(r.leaf![0]!, 'base64')).subjectAltName).toBe(`URI:${id}`);
    }
    // exactly the two grpc.default_authority clients took the slow path
    expect(slowPathCount()).toBe(before + 2);
  });
});
