import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKLOAD_PROTO_PATH } from '@anchorage/client/proto';
import { REPO, tempDir } from '../helpers/process.js';
import { softHsmAvailable } from '../helpers/softhsm.js';
import { startTrustDomain, type RealTrustDomain } from '../helpers/trust-domain.js';
import { lacks } from '../helpers/needs.js';

/**
 * Issue 10 item 5, against a real server and agent: a process connects to
 * the Workload API running one binary (perl), then executes another (node)
 * that keeps the connection and calls through it. The pid the kernel
 * reported at connect now runs node, and before the fix the agent attested
 * the call as node (`unix:path` of node) and served node's identity. Now the
 * connection gets PERMISSION_DENIED: the executable is not the one it
 * connected with.
 */

const TD = 'exec-after-connect.test';
const PERL = '/usr/bin/perl';
const NODE_ID = `spiffe://${TD}/node`;
const PERL_ID = `spiffe://${TD}/perl`;

/**
 * Connects to argv[0] on a descriptor that survives exec ($^F), waits long
 * enough for the agent to accept (and record the executable), then executes
 * argv[1..] with the descriptor number appended.
 */
const CONNECT_THEN_EXEC = `use Socket; $^F = 1000;
my $path = shift @ARGV;
socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
connect($s, pack_sockaddr_un($path)) or die "connect: $!";
select(undef, undef, undef, 0.5);
exec { $ARGV[0] } @ARGV, fileno($s) or die "exec: $!";`;

/**
 * Runs in the process after exec (node -e): relays a local socket to the
 * inherited connection, so a stock grpc-js client talks over it, then makes
 * a FetchJWTSVID and a FetchX509SVID call and prints what came back.
 * argv: proxy socket path, inherited fd.
 */
const CALL_ON_INHERITED_FD = `
const { createRequire } = require('node:module');
const net = require('node:net');
const req = createRequire(${JSON.stringify(join(REPO, 'package.json'))});
const grpc = req('@grpc/grpc-js');
const protoLoader = req('@grpc/proto-loader');
const [proxyPath, fd] = [process.argv[1], Number(process.argv[2])];
const upstream = new net.Socket({ fd, readable: true, writable: true });
const out = { pid: process.pid };
const proxy = net.createServer((c) => { proxy.close(); c.pipe(upstream); upstream.pipe(c); });
proxy.listen(proxyPath, () => {
  const def = protoLoader.loadSync(${JSON.stringify(WORKLOAD_PROTO_PATH)}, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const client = new (grpc.loadPackageDefinition(def).SpiffeWorkloadAPI)('unix://' + proxyPath, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  const done = () => { process.stdout.write(JSON.stringify(out) + '\\n'); process.exit(0); };
  client.FetchJWTSVID({ audience: ['exec-test'] }, md, { deadline: Date.now() + 10000 }, (err, res) => {
    out.jwt = err ? { code: err.code, details: err.details } : { ids: res.svids.map((s) => s.spiffe_id) };
    const stream = client.FetchX509SVID({}, md, { deadline: Date.now() + 10000 });
    stream.once('data', (m) => { out.x509 = { ids: m.svids.map((s) => s.spiffe_id) }; done(); });
    stream.once('error', (e) => { out.x509 = { code: e.code, details: e.details }; done(); });
  });
});
`;

/**
 * The stream variant: connects, forks a child that executes argv[1..] with
 * the connection (so the child talks on a connection whose peer is this
 * process), then waits for a line on stdin and executes /bin/sleep itself.
 */
const CONNECT_FORK_THEN_EXEC = `use Socket; $^F = 1000;
my $path = shift @ARGV;
socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
connect($s, pack_sockaddr_un($path)) or die "connect: $!";
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) { exec { $ARGV[0] } @ARGV, fileno($s) or die "exec: $!"; }
close($s);
my $line = <STDIN>;
exec { "/bin/sleep" } "sleep", "1000" or die "exec: $!";`;

/**
 * The child's side: holds a FetchX509SVID stream open on the inherited
 * connection and prints one JSON line per message (SPIFFE IDs and hints),
 * then one for the status that ended it. argv: proxy socket path, fd.
 */
const STREAM_ON_INHERITED_FD = CALL_ON_INHERITED_FD.replace(
  /client\.FetchJWTSVID[\s\S]*$/,
  `const stream = client.FetchX509SVID({}, md);
  stream.on('data', (m) => process.stdout.write(JSON.stringify({ ids: m.svids.map((s) => s.spiffe_id), hints: m.svids.map((s) => s.hint) }) + '\\n'));
  stream.on('error', (e) => { process.stdout.write(JSON.stringify({ code: e.code, details: e.details }) + '\\n'); process.exit(0); });
});
`,
);

interface Outcome {
  pid: number;
  jwt: { code?: number; details?: string; ids?: string[] };
  x509: { code?: number; details?: string; ids?: string[] };
}

let tmp: { dir: string; cleanup: () => void };
let td: RealTrustDomain | undefined;
const nodePath = realpathSync(process.execPath);

beforeAll(async () => {
  tmp = tempDir('anchorage-exec-');
  chmodSync(tmp.dir, 0o755);
  if (!softHsmAvailable() || !existsSync(PERL)) return;
  const uid = process.getuid!();
  // Both binaries are registered: the question is only which one the connection belongs to.
  td = await startTrustDomain(tmp.dir, {
    trustDomain: TD,
    entries: [
      { spiffeId: NODE_ID, selectors: [`unix:uid:${uid}`, `unix:path:${nodePath}`] },
      { spiffeId: PERL_ID, selectors: [`unix:uid:${uid}`, `unix:path:${realpathSync(PERL)}`] },
    ],
  });
}, 120_000);

afterAll(async () => {
  await td?.close();
  tmp?.cleanup();
});

function connectThenExecNode(): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const proxy = join(tmp.dir, `proxy-${Date.now()}.sock`);
    const child = spawn(PERL, ['-e', CONNECT_THEN_EXEC, td!.workloadSocket, nodePath, '-e', CALL_ON_INHERITED_FD, proxy], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim()) as Outcome);
      } catch {
        reject(new Error(`perl → node exited ${code}: ${out} ${err}${td!.diagnostics()}`));
      }
    });
  });
}

describe.skipIf(lacks(!softHsmAvailable() || !existsSync(PERL), 'SoftHSM2 and perl'))('exec after connect, real agent', () => {
  it('refuses every call on a connection whose process executed another binary since connecting', async () => {
    const got = await connectThenExecNode();
    const refused = {
      code: grpc.status.PERMISSION_DENIED,
      details: `attestor: the calling process (pid ${got.pid}) executed another binary after connecting; reconnect`,
    };
    // Before the fix: { ids: [NODE_ID] } for both, the identity of the binary exec'd into.
    expect(got.jwt).toEqual(refused);
    expect(got.x509).toEqual(refused);
  }, 60_000);

  it('ends a stream opened before the exec, at the next update, instead of sending the new SVID', async () => {
    const proxy = join(tmp.dir, `proxy-stream-${Date.now()}.sock`);
    // Its own process group, so that the forked node child goes with it.
    const perl = spawn(PERL, ['-e', CONNECT_FORK_THEN_EXEC, td!.workloadSocket, nodePath, '-e', STREAM_ON_INHERITED_FD, proxy], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const lines: Record<string, unknown>[] = [];
    let buf = '';
    let err = '';
    perl.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
    });
    perl.stderr.on('data', (d) => (err += d));
    const waitFor = async (n: number, what: string): Promise<void> => {
      for (let i = 0; i < 300 && lines.length < n; i++) await new Promise((r) => setTimeout(r, 50));
      if (lines.length < n) throw new Error(`no ${what} within 15 s: ${JSON.stringify(lines)} ${err}${td!.diagnostics()}`);
    };
    try {
      // The stream's peer is the perl parent: it gets perl's identity.
      await waitFor(1, 'first message');
      expect(lines[0]).toEqual({ ids: [PERL_ID], hints: [''] });
      perl.stdin.write('go\n');
      const sleepPath = realpathSync('/bin/sleep');
      for (let i = 0; i < 500 && readlinkSync(`/proc/${perl.pid}/exe`) !== sleepPath; i++) await new Promise((r) => setTimeout(r, 10));
      expect(readlinkSync(`/proc/${perl.pid}/exe`)).toBe(sleepPath);
      // A new SVID for the perl entry: before the fix the stream delivered it
      // ({ ids: [PERL_ID], hints: ['entry-rotated-1'] }) to whoever held the connection.
      await td!.rotate(1);
      await waitFor(2, 'update or end of stream');
      expect(lines[1]).toEqual({
        code: grpc.status.PERMISSION_DENIED,
        details: `attestor: the calling process (pid ${perl.pid}) executed another binary after connecting; reconnect`,
      });
    } finally {
      try {
        process.kill(-perl.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }, 60_000);
});
