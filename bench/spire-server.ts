import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import type * as ProtobufLight from 'protobufjs/light.js';
import { runCollect, writeFile } from '../test/helpers/process.js';

/**
 * A real SPIRE server for bench/api-mint.ts to measure against on the same
 * machine, in the same run: its disk KeyManager (the CA key in a file, signing
 * in process), a sqlite3 datastore, and its API on a Unix socket of its own.
 * Nothing of SPIRE is in this repository: BENCH_SPIRE_SERVER names a
 * spire-server binary built elsewhere (README, "Performance").
 */

/** SPIRE's admin-API method: the SPIFFE ID comes from the CSR's URI SAN, not from the request. */
export const SPIRE_MINT_METHOD = '/spire.api.server.svid.v1.SVID/MintX509SVID';

/** The spire-server binary BENCH_SPIRE_SERVER names, as an absolute path, or a clear error. */
export function spireServerBinary(path: string): string {
  const what = `bench api-mint: BENCH_SPIRE_SERVER=${JSON.stringify(path)}`;
  if (path.trim() === '') throw new Error(`${what} is empty; unset it, or name a spire-server binary`);
  const abs = resolve(path);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new Error(`${what}: no such file (${abs}); build one as README.md ("Performance") says`);
  }
  if (!st.isFile()) throw new Error(`${what} is not a file`);
  try {
    accessSync(abs, constants.X_OK);
  } catch {
    throw new Error(`${what} is not executable`);
  }
  return abs;
}

/** SPIRE's log level for the level the Anchorage servers of the bench log at. */
export function spireLogLevel(level: string): string {
  const map: Record<string, string> = { trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR', fatal: 'ERROR', silent: 'ERROR' };
  const l = map[level.toLowerCase()];
  if (!l) throw new Error(`bench api-mint: no SPIRE log level for "${level}"`);
  return l;
}

export interface SpireConfig {
  /** Its own directory: data, keys, sqlite file. */
  dir: string;
  socket: string;
  /** SPIRE wants a TCP listener too (agents' API); a free loopback port. */
  port: number;
  trustDomain: string;
  logLevel: string;
}

/** A quoted HCL string: paths and names here are plain, but quoting keeps a stray quote from becoming syntax. */
function hclString(s: string): string {
  if (/[\x00-\x1f"\\]|\$\{/.test(s)) throw new Error(`bench api-mint: ${JSON.stringify(s)} cannot go into the SPIRE config as is`);
  return `"${s}"`;
}

/** The server's HCL configuration: its defaults (P-256 CA, 1 h X509-SVIDs, as Anchorage's), disk KeyManager, sqlite3. */
export function spireServerConfig(c: SpireConfig): string {
  if (!(Number.isInteger(c.port) && c.port > 0 && c.port < 65536)) throw new Error(`bench api-mint: SPIRE's bind_port must be a TCP port, not ${c.port}`);
  const data = join(c.dir, 'data');
  return [
    'server {',
    '  bind_address = "127.0.0.1"',
    `  bind_port = "${c.port}"`,
    `  socket_path = ${hclString(c.socket)}`,
    `  trust_domain = ${hclString(c.trustDomain)}`,
    `  data_dir = ${hclString(data)}`,
    `  log_level = ${hclString(spireLogLevel(c.logLevel))}`,
    '}',
    '',
    'plugins {',
    '  DataStore "sql" {',
    '    plugin_data {',
    '      database_type = "sqlite3"',
    `      connection_string = ${hclString(join(data, 'datastore.sqlite3'))}`,
    '    }',
    '  }',
    '  KeyManager "disk" {',
    '    plugin_data {',
    `      keys_path = ${hclString(join(data, 'keys.json'))}`,
    '    }',
    '  }',
    // The server refuses to start without a node attestor; nothing attests here.
    '  NodeAttestor "join_token" {',
    '    plugin_data {}',
    '  }',
    '}',
    '',
  ].join('\n');
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** MintX509SVIDRequest { bytes csr = 1; int32 ttl = 2; } encoded by hand (ttl omitted: the server's default). */
export function encodeSpireMintRequest(csr: Buffer, ttlSeconds?: number): Buffer {
  if (csr.length === 0) throw new Error('bench api-mint: a SPIRE mint request needs a CSR');
  const parts = [Buffer.from([0x0a]), varint(csr.length), csr];
  if (ttlSeconds !== undefined && ttlSeconds !== 0) {
    if (!(Number.isInteger(ttlSeconds) && ttlSeconds > 0 && ttlSeconds <= 0x7fffffff)) throw new Error(`bench api-mint: a SPIRE ttl must be a positive int32, not ${ttlSeconds}`);
    parts.push(Buffer.from([0x10]), varint(ttlSeconds));
  }
  return Buffer.concat(parts);
}

/** Messages as bench/go-mint reads them: each after its length (4 bytes, big-endian). */
export function frame(messages: Uint8Array[]): Buffer {
  const out: Buffer[] = [];
  for (const m of messages) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(m.length);
    out.push(len, Buffer.from(m));
  }
  return Buffer.concat(out);
}

/** SPIRE's MintX509SVID messages (the fields the bench reads), for decoding its answer and in tests. */
export function spireMintTypes(): { req: ProtobufLight.Type; res: ProtobufLight.Type } {
  const pb = createRequire(import.meta.url)('protobufjs/dist/light/protobuf.min.js') as typeof ProtobufLight;
  const root = pb.Root.fromJSON({
    nested: {
      spire: {
        nested: {
          MintX509SVIDRequest: { fields: { csr: { type: 'bytes', id: 1 }, ttl: { type: 'int32', id: 2 } } },
          MintX509SVIDResponse: { fields: { svid: { type: 'X509SVID', id: 1 } } },
          X509SVID: {
            fields: {
              cert_chain: { rule: 'repeated', type: 'bytes', id: 1 },
              id: { type: 'SPIFFEID', id: 2 },
              expires_at: { type: 'int64', id: 3 },
              hint: { type: 'string', id: 4 },
            },
          },
          SPIFFEID: { fields: { trust_domain: { type: 'string', id: 1 }, path: { type: 'string', id: 2 } } },
        },
      },
    },
  });
  return { req: root.lookupType('spire.MintX509SVIDRequest'), res: root.lookupType('spire.MintX509SVIDResponse') };
}

/** The certificate chain of SPIRE's answer (leaf first) and the SPIFFE ID it says it issued. */
export function decodeSpireAnswer(answer: Buffer): { chain: X509Certificate[]; id: string | undefined } {
  const { res } = spireMintTypes();
  const msg = res.toObject(res.decode(answer), { bytes: Buffer }) as { svid?: { cert_chain?: Buffer[]; id?: { trust_domain?: string; path?: string } } };
  const chain = (msg.svid?.cert_chain ?? []).map((d) => new X509Certificate(d));
  const id = msg.svid?.id ? `spiffe://${msg.svid.id.trust_domain ?? ''}${msg.svid.id.path ?? ''}` : undefined;
  return { chain, id };
}

/** The certificates of a PEM text, in order. */
export function pemCertificates(pem: string): X509Certificate[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
}

/** Runs the binary to the end with a deadline; its exit status, what it wrote to stdout, and both streams (for messages). */
export async function runTool(bin: string, args: string[], timeoutMs = 30_000): Promise<{ status: number | null; stdout: string; out: string }> {
  const r = await runCollect(bin, args, timeoutMs);
  return { status: r.status, stdout: r.stdout, out: r.stdout + r.stderr };
}

/** What `spire-server --version` says (it carries the commit when the build set it, README). */
export async function spireVersion(bin: string): Promise<string> {
  const r = await runTool(bin, ['--version']);
  if (r.status !== 0) throw new Error(`bench api-mint: ${bin} --version failed (exit ${r.status}):\n${r.out}`);
  return r.stdout.trim();
}

export interface SpireServer {
  child: ChildProcess;
  socket: string;
  version: string;
  /** Its X.509 authorities, from `spire-server bundle show`. */
  bundle: X509Certificate[];
  log(): string;
  kill(): Promise<void>;
}

/**
 * Starts `spire-server run` in `dir` and resolves once its health check passes
 * on `socket` (SPIRE's own `healthcheck` command), within `readyMs`.
 */
export async function startSpireServer(bin: string, c: SpireConfig, readyMs = 60_000): Promise<SpireServer> {
  mkdirSync(c.dir, { recursive: true, mode: 0o700 });
  const config = writeFile(join(c.dir, 'server.conf'), spireServerConfig(c));
  const version = await spireVersion(bin);
  const child = spawn(bin, ['run', '-config', config], { cwd: c.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('error', (err) => (log += `\nspawn: ${err.message}`));
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + readyMs;
  try {
    let last = '';
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`bench api-mint: spire-server exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${log}`);
      const h = await runTool(bin, ['healthcheck', '-socketPath', c.socket], 10_000);
      if (h.status === 0) break;
      last = h.out.trim();
      if (Date.now() > deadline) throw new Error(`bench api-mint: spire-server was not healthy within ${readyMs} ms (last check: ${last}):\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const b = await runTool(bin, ['bundle', 'show', '-socketPath', c.socket, '-format', 'pem']);
    const bundle = b.status === 0 ? pemCertificates(b.stdout) : [];
    if (bundle.length === 0) throw new Error(`bench api-mint: spire-server bundle show gave no certificates (exit ${b.status}):\n${b.out}`);
    return { child, socket: c.socket, version, bundle, log: () => log, kill };
  } catch (err) {
    await kill();
    throw err;
  }
}
