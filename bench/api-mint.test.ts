// The api-mint bench's pieces against a real server in this process (memory
// keys): the Go client counts what it was answered, refuses bad input, and the
// sample check refuses a leaf that is not what was asked for. The SPIRE side's
// pure pieces (request encoding, CSRs with a URI SAN, the server's config);
// with BENCH_SPIRE_SERVER set, the Go client against a real SPIRE server too.
import { createPublicKey, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata';
import * as px509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as ProtobufLight from 'protobufjs/light.js';
import { captureLogger } from '../test/helpers/log.js';
import { keyAndCsr } from '../test/helpers/csr.js';
import { startInProcessServer, type InProcessServer } from '../test/helpers/in-process-server.js';
import { freePort, runCollect } from '../test/helpers/process.js';
import { describeWithToolchain } from '../test/interop/harness.js';
import { benchApiMint, checkSample, checkSpireSample, encodeRequests, goClient, goRound, goToolchain, mintTypes } from './api-mint.js';
import { makeP256CsrWithUri } from './csr.js';
import {
  encodeSpireMintRequest,
  frame,
  pemCertificates,
  SPIRE_MINT_METHOD,
  spireMintTypes,
  spireServerBinary,
  spireServerConfig,
  startSpireServer,
  type SpireServer,
} from './spire-server.js';

const TD = 'bench-test.example';
const go = goToolchain();

/** Runs `fn` with one environment variable set, and puts it back. */
async function withEnv(name: string, value: string, fn: () => Promise<void>): Promise<void> {
  const before = process.env[name];
  process.env[name] = value;
  try {
    await fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

it('refuses an unknown BENCH_KEY_MANAGER before starting anything', () =>
  withEnv('BENCH_KEY_MANAGER', 'hsm', () => expect(benchApiMint()).rejects.toThrow('bench api-mint: BENCH_KEY_MANAGER must be pkcs11, disk or ab, not "hsm"')));

it('refuses a BENCH_SERVER_LOG_LEVEL quieter than info (or unknown) before starting anything', async () => {
  for (const level of ['warn', 'loud']) {
    await withEnv('BENCH_SERVER_LOG_LEVEL', level, () =>
      expect(benchApiMint()).rejects.toThrow(`bench api-mint: BENCH_SERVER_LOG_LEVEL must be info, debug or trace (the bench waits for the server's info-level ready line), not "${level}"`),
    );
  }
});

it('refuses a BENCH_SPIRE_SERVER that names no spire-server binary before starting anything', () =>
  withEnv('BENCH_SPIRE_SERVER', '/nonexistent/spire-server', () =>
    expect(benchApiMint()).rejects.toThrow('bench api-mint: BENCH_SPIRE_SERVER="/nonexistent/spire-server": no such file (/nonexistent/spire-server)'),
  ));

describe('bench api-mint SPIRE pieces', () => {
  it('encodes MintX509SVIDRequest as protobufjs decodes it, ttl only when asked', () => {
    const { req } = spireMintTypes();
    // A CSR long enough for a two-byte length varint.
    const csr = makeP256CsrWithUri('spiffe://bench.test/api-mint/0').csr;
    expect(csr.length).toBeGreaterThan(127);
    const plain = encodeSpireMintRequest(csr);
    expect(plain.subarray(0, 1)).toEqual(Buffer.from([0x0a]));
    expect(req.toObject(req.decode(plain), { bytes: Buffer, defaults: true })).toEqual({ csr, ttl: 0 });
    expect(Buffer.from(req.encode(req.fromObject({ csr })).finish())).toEqual(plain);
    for (const ttl of [1, 300, 3600, 0x7fffffff]) {
      const body = encodeSpireMintRequest(csr, ttl);
      expect(req.toObject(req.decode(body), { bytes: Buffer })).toEqual({ csr, ttl });
      expect(Buffer.from(req.encode(req.fromObject({ csr, ttl })).finish())).toEqual(body);
    }
    expect(() => encodeSpireMintRequest(Buffer.alloc(0))).toThrow('a SPIRE mint request needs a CSR');
    expect(() => encodeSpireMintRequest(csr, -1)).toThrow('a SPIRE ttl must be a positive int32, not -1');
    // Framed as bench/go-mint reads requests: a 4-byte big-endian length before each.
    const f = frame([plain, encodeSpireMintRequest(csr, 60)]);
    expect(f.readUInt32BE(0)).toBe(plain.length);
    expect(f.subarray(4, 4 + plain.length)).toEqual(plain);
    expect(f.readUInt32BE(4 + plain.length)).toBe(f.length - 8 - plain.length);
  });

  it('makes a CSR that carries exactly one URI SAN, the ID asked for, signed by the key it holds', async () => {
    const id = 'spiffe://bench.test/api-mint/42';
    const { csr, privateKey } = makeP256CsrWithUri(id);
    const parsed = new px509.Pkcs10CertificateRequest(csr);
    expect(await parsed.verify()).toBe(true);
    expect(parsed.subject).toBe('');
    expect(parsed.extensions.map((e) => e.type)).toEqual(['2.5.29.17']);
    const san = new px509.SubjectAlternativeNameExtension(parsed.getExtension('2.5.29.17')!.rawData);
    expect(san.names.items.map((n) => ({ type: n.type, value: n.value }))).toEqual([{ type: 'url', value: id }]);
    const spki = Buffer.from(parsed.publicKey.rawData);
    expect(spki.equals(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }))).toBe(true);
  });

  it('refuses a BENCH_SPIRE_SERVER path that is empty, missing, a directory or not executable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'anchorage-bench-spire-bin-'));
    try {
      const plain = join(dir, 'spire-server');
      writeFileSync(plain, '#!/bin/sh\n', { mode: 0o600 });
      expect(() => spireServerBinary('')).toThrow('bench api-mint: BENCH_SPIRE_SERVER="" is empty; unset it, or name a spire-server binary');
      expect(() => spireServerBinary(join(dir, 'nothing'))).toThrow(`bench api-mint: BENCH_SPIRE_SERVER="${join(dir, 'nothing')}": no such file`);
      expect(() => spireServerBinary(dir)).toThrow(`bench api-mint: BENCH_SPIRE_SERVER="${dir}" is not a file`);
      expect(() => spireServerBinary(plain)).toThrow(`bench api-mint: BENCH_SPIRE_SERVER="${plain}" is not executable`);
      chmodSync(plain, 0o700);
      expect(spireServerBinary(plain)).toBe(plain);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes a config of the disk KeyManager and sqlite3 in its own directory, and refuses what it cannot quote', () => {
    const c = { dir: '/tmp/b/spire', socket: '/tmp/b/spire/api.sock', port: 18081, trustDomain: 'bench.test', logLevel: 'info' };
    const text = spireServerConfig(c);
    for (const line of [
      'bind_address = "127.0.0.1"',
      'bind_port = "18081"',
      'socket_path = "/tmp/b/spire/api.sock"',
      'trust_domain = "bench.test"',
      'data_dir = "/tmp/b/spire/data"',
      'log_level = "INFO"',
      'database_type = "sqlite3"',
      'connection_string = "/tmp/b/spire/data/datastore.sqlite3"',
      'KeyManager "disk" {',
      'keys_path = "/tmp/b/spire/data/keys.json"',
      'NodeAttestor "join_token" {',
    ]) {
      expect(text).toContain(`  ${line}\n`);
    }
    expect(spireServerConfig({ ...c, logLevel: 'debug' })).toContain('log_level = "DEBUG"');
    expect(() => spireServerConfig({ ...c, logLevel: 'loud' })).toThrow('bench api-mint: no SPIRE log level for "loud"');
    expect(() => spireServerConfig({ ...c, socket: '/tmp/a"b/api.sock' })).toThrow('cannot go into the SPIRE config as is');
    expect(() => spireServerConfig({ ...c, port: 0 })).toThrow("bench api-mint: SPIRE's bind_port must be a TCP port, not 0");
  });
});

describeWithToolchain('bench api-mint Go client', 'unusable' in go ? go.unusable : undefined, () => {
  let bin: string;
  let running: InProcessServer;
  let socket: string;
  let dir: string;
  let types: { path: string; req: ProtobufLight.Type; res: ProtobufLight.Type };
  const good = [keyAndCsr(), keyAndCsr()];
  const id = (i: number) => `spiffe://${TD}/w/${i}`;

  beforeAll(async () => {
    bin = goClient((go as { version: string }).version).path;
    running = await startInProcessServer('anchorage-bench-api-mint-', { trust_domain: TD }, { logger: captureLogger().logger });
    socket = running.cfg.admin_socket;
    dir = mkdtempSync(join(tmpdir(), 'anchorage-bench-api-mint-req-'));
    types = mintTypes();
  }, 300_000);
  afterAll(async () => {
    await running?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const file = (name: string, bytes: Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const args = (requests: string, extra: string[] = []) => [
    '-socket', socket, '-method', types.path, '-requests', requests, '-c', '4', '-duration', '200ms', '-warmup', '0s', ...extra,
  ];

  it('mints through the admin socket, and its sample answer is the leaf for request 0', async () => {
    const requests = file('good.bin', encodeRequests(types.req, good.map((k, i) => ({ csr: k.csr, spiffe_id: id(i) }))));
    const sample = join(dir, 'sample.bin');
    const r = await goRound(bin, args(requests, ['-sample-out', sample, '-pid', `server=${process.pid}`]));
    expect(r.failures).toEqual({});
    expect(r.ok).toBeGreaterThanOrEqual(4); // every worker makes one call at least
    expect(r.method).toBe('/anchorage.admin.v1.Admin/MintX509SVID');
    expect(r.distinct_requests).toBe(2);
    expect(Object.keys(r.pid_cpu_cores)).toEqual(['server']);
    const answer = readFileSync(sample);
    checkSample(answer, types.res, id(0), good[0]!.keyPem);
    // A leaf for another ID, or for another key, is refused.
    expect(() => checkSample(answer, types.res, id(1), good[0]!.keyPem)).toThrow(`the sample leaf names URI:${id(0)}, not ${id(1)}`);
    expect(() => checkSample(answer, types.res, id(0), good[1]!.keyPem)).toThrow('the sample leaf does not hold the CSR key');
    expect(() => checkSample(Buffer.alloc(0), types.res, id(0), good[0]!.keyPem)).toThrow('the sample answer has no certificate chain');
  });

  it("checks a SPIRE answer: the leaf for the CSR's ID and key, signed by an authority of the bundle", async () => {
    // Anchorage's chain for request 0 (leaf, intermediate), put into SPIRE's answer message (SPIRE's holds no bundle).
    const requests = file('for-spire.bin', encodeRequests(types.req, good.map((k, i) => ({ csr: k.csr, spiffe_id: id(i) }))));
    const sample = join(dir, 'sample-for-spire.bin');
    await goRound(bin, args(requests, ['-sample-out', sample]));
    const msg = types.res.toObject(types.res.decode(readFileSync(sample)), { bytes: Buffer }) as { chain: Buffer[]; bundle: Buffer[] };
    expect(msg.chain).toHaveLength(2);
    const root = msg.bundle.map((d) => new X509Certificate(d));
    const intermediate = new X509Certificate(msg.chain[1]!);
    const { res } = spireMintTypes();
    const answer = (spiffeId: string, chain = msg.chain) =>
      Buffer.from(res.encode(res.fromObject({ svid: { cert_chain: chain, id: { trust_domain: TD, path: new URL(spiffeId).pathname }, expires_at: 1 } })).finish());
    const leafOnly = answer(id(0), msg.chain.slice(0, 1));
    checkSpireSample(answer(id(0)), id(0), good[0]!.keyPem, root);
    // A leaf alone (SPIRE without an upstream authority): its issuer is found in the bundle.
    checkSpireSample(leafOnly, id(0), good[0]!.keyPem, [...root, intermediate]);
    expect(() => checkSpireSample(leafOnly, id(0), good[0]!.keyPem, root)).toThrow("the sample leaf is not signed by the CA of SPIRE's bundle");
    expect(() => checkSpireSample(answer(id(1)), id(0), good[0]!.keyPem, root)).toThrow(`SPIRE's sample answer says it issued ${id(1)}, not ${id(0)}`);
    expect(() => checkSpireSample(answer(id(0)), id(0), good[1]!.keyPem, root)).toThrow('the sample leaf does not hold the CSR key');
    expect(() => checkSpireSample(Buffer.alloc(0), id(0), good[0]!.keyPem, root)).toThrow('the sample answer has no certificate chain');
    const pem = [...root, intermediate].map((c) => c.toString()).join('\n');
    expect(pemCertificates(pem).map((c) => c.fingerprint256)).toEqual([...root, intermediate].map((c) => c.fingerprint256));
  });

  it('counts refused calls by their gRPC code', async () => {
    // Request 0 is good (the client's first call must succeed); request 1 carries no valid CSR.
    // Calls take requests 1, 0, 1, 0, … so four calls at least make two refusals at least.
    const requests = file('mixed.bin', encodeRequests(types.req, [{ csr: good[0]!.csr, spiffe_id: id(0) }, { csr: Buffer.from('not a csr'), spiffe_id: id(1) }]));
    const r = await goRound(bin, args(requests));
    expect(Object.keys(r.failures)).toEqual(['InvalidArgument']);
    expect(r.failures.InvalidArgument).toBeGreaterThanOrEqual(2);
    expect(r.ok).toBeGreaterThanOrEqual(2);
    expect(r.first_failure).toMatch(/^InvalidArgument: /);
  });

  it('answers bad input with a clear error and exit status 1', async () => {
    const requests = file('one.bin', encodeRequests(types.req, [{ csr: good[0]!.csr, spiffe_id: id(0) }]));
    // Not spawnSync: the server it calls runs on this event loop.
    const run = (a: string[]) => runCollect(bin, a);
    const cases: [string[], string][] = [
      [[], 'go-mint: -socket, -method and -requests are required'],
      [args(requests, ['-c', '0']), 'go-mint: -c must be at least 1'],
      [['-socket', socket, '-method', 'MintX509SVID', '-requests', requests], 'go-mint: -method "MintX509SVID" is not of the form /package.Service/Method'],
      [['-socket', join(dir, 'nothing.sock'), '-method', types.path, '-requests', requests], `go-mint: no Unix socket at ${join(dir, 'nothing.sock')}`],
      [args(file('empty.bin', Buffer.alloc(0))), 'no messages'],
      [args(file('cut.bin', Buffer.from([0, 0]))), 'truncated length prefix after 0 messages'],
      [args(file('short.bin', Buffer.from([0, 0, 0, 9, 1, 2]))), 'message 0 is truncated'],
      [args(file('huge.bin', Buffer.from([0xff, 0, 0, 0]))), 'message 0 has an implausible length'],
      [args(requests, ['-pid', 'server']), 'want name=pid, got "server"'],
      [['-socket', socket, '-method', '/anchorage.admin.v1.Admin/NoSuchMethod', '-requests', requests], 'go-mint: first call: rpc error: code = Unimplemented'],
      [args(file('bad-first.bin', encodeRequests(types.req, [{ csr: Buffer.from('not a csr'), spiffe_id: id(0) }]))), 'go-mint: first call: rpc error: code = InvalidArgument'],
    ];
    for (const [a, message] of cases) {
      const r = await run(a);
      expect({ a, status: r.status, stdout: r.stdout }).toEqual({ a, status: a.includes('-pid') ? 2 : 1, stdout: '' });
      expect(r.stderr).toContain(message);
    }
  });
});

// With BENCH_SPIRE_SERVER naming a spire-server binary (README, "Performance"), the Go client
// against a real SPIRE server: what the bench's SPIRE rounds do, for a fraction of a second.
const spireBin = process.env.BENCH_SPIRE_SERVER;
describe.skipIf(spireBin === undefined || 'unusable' in go)('bench api-mint Go client against a real SPIRE server', () => {
  const SPIRE_TD = 'bench-spire.example';
  let dir: string;
  let spire: SpireServer | undefined;
  let bin: string;

  beforeAll(async () => {
    bin = goClient((go as { version: string }).version).path;
    dir = mkdtempSync(join(tmpdir(), 'anchorage-bench-spire-'));
    mkdirSync(join(dir, 'spire'), { mode: 0o700 });
    spire = await startSpireServer(spireServerBinary(spireBin!), { dir: join(dir, 'spire'), socket: join(dir, 'spire', 'api.sock'), port: await freePort(), trustDomain: SPIRE_TD, logLevel: 'info' });
  }, 120_000);
  afterAll(async () => {
    await spire?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it("mints through SPIRE's socket, and the sample answer is the leaf for request 0's CSR", async () => {
    const ids = [0, 1, 2].map((i) => `spiffe://${SPIRE_TD}/api-mint/${i}`);
    const csrs = ids.map((i) => makeP256CsrWithUri(i));
    const requests = join(dir, 'requests.bin');
    writeFileSync(requests, frame(csrs.map((c) => encodeSpireMintRequest(c.csr))));
    const sample = join(dir, 'sample.bin');
    const r = await goRound(bin, ['-socket', spire!.socket, '-method', SPIRE_MINT_METHOD, '-requests', requests, '-c', '4', '-duration', '300ms', '-warmup', '0s', '-sample-out', sample, '-pid', `server=${spire!.child.pid}`]);
    expect(r.failures).toEqual({});
    expect(r.ok).toBeGreaterThanOrEqual(4);
    expect(r.method).toBe(SPIRE_MINT_METHOD);
    const keyPem = (i: number) => csrs[i]!.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    checkSpireSample(readFileSync(sample), ids[0]!, keyPem(0), spire!.bundle);
    expect(() => checkSpireSample(readFileSync(sample), ids[1]!, keyPem(0), spire!.bundle)).toThrow(`says it issued ${ids[0]}, not ${ids[1]}`);
    // A CSR for another trust domain is refused, and counted by its code.
    const foreign = join(dir, 'foreign.bin');
    writeFileSync(foreign, frame([csrs[0]!.csr, makeP256CsrWithUri('spiffe://elsewhere.example/x').csr].map((c) => encodeSpireMintRequest(c))));
    const f = await goRound(bin, ['-socket', spire!.socket, '-method', SPIRE_MINT_METHOD, '-requests', foreign, '-c', '2', '-duration', '200ms', '-warmup', '0s']);
    expect(Object.keys(f.failures)).toEqual(['InvalidArgument']);
    expect(f.first_failure).toMatch(/^InvalidArgument: CSR URI SAN is invalid/);
  }, 60_000);
});
