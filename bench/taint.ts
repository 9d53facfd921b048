import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import * as koffi from 'koffi';
import type * as Protobuf from 'protobufjs';
import { WORKLOAD_PROTO_PATH } from '@anchorage/client/proto';
import { errorMessage } from '@anchorage/client/errors';
import { withBenchNode, type BenchNode } from './node.js';
import { percentile, round } from './stats.js';

/**
 * Taint of the active X.509 authority under load (issue 12): a real server on
 * SoftHSM2 and one agent, WORKLOADS workloads on it, each a distinct uid with
 * its own entry (unix:uid:<uid>, parent the agent) and an open FetchX509SVID
 * stream. PrepareAuthority + ActivateAuthority make a successor;
 * TaintAuthority on the old one must bring every stream an SVID whose
 * intermediate (chain[1]) is the successor. Timed from the taint call's
 * return (and from its start) to each stream's first SVID from the
 * successor.
 *
 * Distinct peers: a python3 parent forks one child per workload, each child
 * drops to its own uid and gid, connects to the Workload API socket and
 * sleeps. This process takes each child's connected socket with
 * pidfd_open + pidfd_getfd and speaks gRPC over it (node:http2, gRPC framing
 * by hand, protobufjs for workload.proto). The kernel took the child's
 * credentials at connect() and the child stays alive, so the agent attests
 * the child's uid.
 */

const TD = 'bench.test';
const WORKLOADS = Number(process.env.BENCH_WORKLOADS ?? 1000);
const UID_BASE = Number(process.env.BENCH_UID_BASE ?? 30000);
/** x86_64 syscall numbers. */
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;

/** Forks the peers: one line "<pid> <fd>" per child (its connected socket), then "ready"; stdin's end kills them all. */
const PEERS_PY = String.raw`
import ctypes, os, signal, socket, sys
path, base, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
kids = []
for i in range(n):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            uid = base + i
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (after setuid, which clears it): gone with the parent
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            os.write(w, ("%d\n" % s.fileno()).encode())
        except BaseException as e:
            os.write(w, ("error %s\n" % e).encode())
            os._exit(1)
        os.close(w)
        while True:
            signal.pause()
    os.close(w)
    line = os.read(r, 200).decode().strip()
    os.close(r)
    kids.append(pid)
    sys.stdout.write("%d %s\n" % (pid, line))
    sys.stdout.flush()
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.read()
for p in kids:
    try:
        os.kill(p, signal.SIGKILL)
    except OSError:
        pass
`;

interface Syscalls {
  syscall: (...args: unknown[]) => number | bigint;
  errno: () => unknown;
}
let sys: Syscalls | undefined;

/** A file descriptor of another process (ours is root), duplicated into this one. */
function takeFd(pid: number, fd: number): number {
  if (!sys) {
    const lib = koffi.load('libc.so.6');
    sys = { syscall: lib.func('long syscall(long, ...)') as Syscalls['syscall'], errno: lib.func('int *__errno_location(void)') as Syscalls['errno'] };
  }
  const errno = () => koffi.decode(sys!.errno(), 'int') as number;
  const pidfd = Number(sys.syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0));
  if (pidfd < 0) throw new Error(`bench taint: pidfd_open(${pid}) failed: errno ${errno()}`);
  const ours = Number(sys.syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', fd, 'unsigned int', 0));
  const err = errno();
  closeSync(pidfd);
  if (ours < 0) throw new Error(`bench taint: pidfd_getfd(${pid}, ${fd}) failed: errno ${err}`);
  return ours;
}

/** Splits concatenated DER certificates. */
function splitDer(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  while (i < buf.length) {
    if (buf[i] !== 0x30) throw new Error('bench taint: not a DER SEQUENCE');
    let len = buf[i + 1]!;
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + buf[i + 2 + k]!;
      hdr += n;
    }
    out.push(buf.subarray(i, i + hdr + len));
    i += hdr + len;
  }
  return out;
}

const sha256 = (d: Uint8Array) => createHash('sha256').update(d).digest('hex');

/** One workload: a child process, its connection and its FetchX509SVID stream. */
interface Peer {
  uid: number;
  pid: number;
  session?: ClientHttp2Session;
  stream?: ClientHttp2Stream;
  openedAt: number;
  /** performance.now() of each message, and the SHA-256 of its default SVID's chain[1]. */
  messages: { at: number; issuer: string; spiffeId: string }[];
  ended?: string;
}

let svidResponse: Protobuf.Type | undefined;
function responseType(): Protobuf.Type {
  if (!svidResponse) {
    const pb = createRequire(import.meta.url)('protobufjs') as typeof Protobuf;
    svidResponse = pb.loadSync(WORKLOAD_PROTO_PATH).lookupType('X509SVIDResponse');
  }
  return svidResponse;
}

/** Opens FetchX509SVID on the peer's own connection, recording each message. */
function openStream(peer: Peer, fd: number): void {
  const type = responseType();
  const sock = new Socket({ fd, readable: true, writable: true });
  const session = http2Connect('http://localhost', { createConnection: () => sock });
  session.on('error', (e) => (peer.ended ??= `session: ${errorMessage(e)}`));
  const stream = session.request({
    ':method': 'POST',
    ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
    'content-type': 'application/grpc',
    te: 'trailers',
    'workload.spiffe.io': 'true',
  });
  peer.session = session;
  peer.stream = stream;
  peer.openedAt = performance.now();
  // An empty X509SVIDRequest: flag 0, length 0.
  stream.end(Buffer.alloc(5));
  let buf: Buffer = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const at = performance.now();
      const m = type.decode(buf.subarray(5, 5 + len)) as unknown as { svids: { spiffe_id?: string; spiffeId?: string; x509_svid?: Uint8Array; x509Svid?: Uint8Array }[] };
      buf = buf.subarray(5 + len);
      const svid = m.svids[0];
      const chain = splitDer(svid?.x509Svid ?? svid?.x509_svid ?? new Uint8Array());
      peer.messages.push({ at, issuer: chain[1] ? sha256(chain[1]) : '', spiffeId: svid?.spiffeId ?? svid?.spiffe_id ?? '' });
    }
  });
  stream.on('trailers', (t) => (peer.ended ??= `grpc-status ${String(t['grpc-status'])}: ${String(t['grpc-message'] ?? '')}`));
  stream.on('error', (e) => (peer.ended ??= `stream: ${errorMessage(e)}`));
  stream.on('close', () => (peer.ended ??= 'closed'));
}

async function waitFor(pred: () => boolean, what: string, ms: number, progress?: () => string): Promise<void> {
  const end = Date.now() + ms;
  let next = Date.now() + 5000;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`bench taint: timed out waiting for ${what}${progress ? ` (${progress()})` : ''}`);
    if (progress && Date.now() > next) {
      console.log(`  ${progress()}`);
      next = Date.now() + 5000;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Forks the peers and returns their pids and socket fds (in their own fd tables). */
async function forkPeers(socket: string, n: number): Promise<{ py: ChildProcess; peers: { pid: number; fd: number }[] }> {
  const py = spawn('python3', ['-c', PEERS_PY, socket, String(UID_BASE), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const peers: { pid: number; fd: number }[] = [];
  const lines = createInterface({ input: py.stdout! });
  await new Promise<void>((resolve, reject) => {
    py.once('exit', (code) => reject(new Error(`bench taint: the peer forker exited (${code}) after ${peers.length} peers`)));
    lines.on('line', (line) => {
      if (line === 'ready') return resolve();
      const [pid, fd, ...rest] = line.split(' ');
      if (fd === 'error') return reject(new Error(`bench taint: peer ${pid}: ${rest.join(' ')}`));
      peers.push({ pid: Number(pid), fd: Number(fd) });
    });
  });
  return { py, peers };
}

/** "time" (ms) of the agent's log records with this message, since `from` (ms since the epoch). */
function agentLogTimes(node: BenchNode, msg: string, from: number): { time: number; rec: Record<string, unknown> }[] {
  const out: { time: number; rec: Record<string, unknown> }[] = [];
  for (const line of node.agent.log().split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const rec = JSON.parse(line) as Record<string, unknown>;
      if (rec.msg === msg && typeof rec.time === 'number' && rec.time >= from) out.push({ time: rec.time, rec });
    } catch {
      // not a JSON line
    }
  }
  return out;
}

export async function benchTaint(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench taint: needs root (one uid per workload: setuid children, pidfd_getfd)');
  let py: ChildProcess | undefined;
  const peers: Peer[] = [];
  await withBenchNode('taint', TD, '', async (node) => {
    const { admin, agentId, socket } = node;
    console.log(`bench taint: ${cpus().length} cores, ${WORKLOADS} workloads (uids ${UID_BASE}..${UID_BASE + WORKLOADS - 1}), agent pid ${node.agent.child.pid}`);

    // ---- entries: one per workload uid ----------------------------------------
    const entries = Array.from({ length: WORKLOADS }, (_, i) => ({
      spiffe_id: `spiffe://${TD}/workload/${UID_BASE + i}`,
      parent_id: agentId,
      selectors: [{ type: 'unix', value: `uid:${UID_BASE + i}` }],
    }));
    const created = await admin.call('BatchCreateEntry', { entries });
    const refused = created.results.filter((r) => r.code !== 0);
    if (refused.length > 0) throw new Error(`bench taint: ${refused.length} entries refused: ${refused[0]!.message}`);

    // ---- peers and streams ----------------------------------------------------
    const t0 = performance.now();
    const forked = await forkPeers(socket, WORKLOADS);
    py = forked.py;
    const forkMs = performance.now() - t0;
    forked.peers.forEach(({ pid, fd }, i) => {
      const peer: Peer = { uid: UID_BASE + i, pid, openedAt: 0, messages: [] };
      peers.push(peer);
      openStream(peer, takeFd(pid, fd));
    });
    const firstsProgress = () => `streams with an svid: ${peers.filter((p) => p.messages.length > 0).length}/${WORKLOADS}, ended: ${peers.filter((p) => p.ended).length}${peers.find((p) => p.ended)?.ended ? ` (${peers.find((p) => p.ended)!.ended})` : ''}`;
    await waitFor(() => peers.every((p) => p.messages.length > 0 || p.ended), 'a first SVID on every stream', 180_000, firstsProgress);
    const endedEarly = peers.filter((p) => p.ended);
    if (endedEarly.length > 0) throw new Error(`bench taint: ${endedEarly.length} streams ended before their first svid: ${endedEarly[0]!.ended}`);
    for (const p of peers) {
      const want = `spiffe://${TD}/workload/${p.uid}`;
      if (p.messages[0]!.spiffeId !== want) throw new Error(`bench taint: uid ${p.uid} got ${p.messages[0]!.spiffeId}, not ${want}`);
    }
    const firsts = peers.map((p) => p.messages[0]!.at - p.openedAt);
    const oldIssuers = new Set(peers.map((p) => p.messages.at(-1)!.issuer));
    console.log(
      `streams: ${WORKLOADS} open, each its own uid and identity; forked in ${round(forkMs, 0)} ms; first svid p50 ${round(percentile(firsts, 50))} ms, max ${round(Math.max(...firsts))} ms (from each stream's open, all opened at once)`,
    );
    if (oldIssuers.size !== 1) throw new Error(`bench taint: the streams hold svids of ${oldIssuers.size} intermediates, expected one`);
    const oldIssuer = [...oldIssuers][0]!;

    // ---- the authority lifecycle ----------------------------------------------
    // The first SVIDs' aftermath (state write, GC) is not the taint's: let it settle.
    await new Promise((r) => setTimeout(r, 1000));
    let list;
    try {
      list = await admin.call('ListAuthorities', { kind: 'x509' });
    } catch (err) {
      throw new Error(`bench taint: the server has no authority lifecycle yet (ListAuthorities: ${errorMessage(err)}); connections, streams and first SVIDs above are measured, taint is not`);
    }
    const active = list.authorities.find((a) => a.status === 'active' && !a.revoked);
    if (!active) throw new Error(`bench taint: no active x509 authority in ${JSON.stringify(list.authorities.map((a) => [a.id, a.status]))}`);
    if (active.fingerprint.toLowerCase() !== oldIssuer) {
      throw new Error(`bench taint: the active authority's fingerprint ${active.fingerprint} is not the streams' intermediate ${oldIssuer}`);
    }
    let t = performance.now();
    const prepared = await admin.call('PrepareAuthority', { kind: 'x509', id: '', force: false });
    const prepareMs = performance.now() - t;
    const successor = prepared.authority!;
    t = performance.now();
    await admin.call('ActivateAuthority', { kind: 'x509', id: successor.id, force: false });
    const activateMs = performance.now() - t;
    const newIssuer = successor.fingerprint.toLowerCase();
    console.log(`prepared ${successor.id} in ${round(prepareMs)} ms, activated in ${round(activateMs)} ms; tainting ${active.id}`);

    const fromWall = Date.now();
    const taintStart = performance.now();
    await admin.call('TaintAuthority', { kind: 'x509', id: active.id, force: false });
    const taintEnd = performance.now();
    const reissued = (p: Peer) => p.messages.find((m) => m.at >= taintStart && m.issuer === newIssuer);
    await waitFor(
      () => peers.every((p) => reissued(p) || p.ended),
      'an SVID from the successor on every stream',
      120_000,
      () => `streams with the successor's svid: ${peers.filter((p) => reissued(p)).length}/${WORKLOADS}, ended: ${peers.filter((p) => p.ended).length}`,
    );
    const ended = peers.filter((p) => p.ended);
    if (ended.length > 0) throw new Error(`bench taint: ${ended.length} streams ended: ${ended[0]!.ended}`);
    const fromReturn = peers.map((p) => reissued(p)!.at - taintEnd);
    const fromStart = peers.map((p) => reissued(p)!.at - taintStart);
    // Streams that got anything else between the taint and the successor's SVID (should be none).
    const extra = peers.filter((p) => p.messages.some((m) => m.at >= taintStart && m.at < reissued(p)!.at)).length;
    // On the agent: from its taint log line to its last mint of the round.
    await new Promise((r) => setTimeout(r, 200)); // its log lines reach our pipe
    const taintLine = agentLogTimes(node, 'agent: tainted authorities changed', fromWall - 1000)[0];
    const mints = agentLogTimes(node, 'agent: workload svids minted', taintLine?.time ?? fromWall);
    const stillTainted = agentLogTimes(node, 'agent: the server still signs with a tainted authority; minting those svids again later', fromWall - 1000).length;
    const agentRemintMs = taintLine && mints.length > 0 ? mints.at(-1)!.time - taintLine.time : NaN;
    const agentSawTaintMs = taintLine ? taintLine.time - fromWall : NaN;

    const result = {
      date: new Date().toISOString(),
      cores: cpus().length,
      workloads: WORKLOADS,
      distinct_uids: new Set(peers.map((p) => p.uid)).size,
      streams: peers.length,
      reissue_p50_ms: round(percentile(fromReturn, 50)),
      reissue_p99_ms: round(percentile(fromReturn, 99)),
      reissue_max_ms: round(Math.max(...fromReturn)),
      reissue_from_call_start_p50_ms: round(percentile(fromStart, 50)),
      reissue_from_call_start_max_ms: round(Math.max(...fromStart)),
      taint_rpc_ms: round(taintEnd - taintStart),
      prepare_rpc_ms: round(prepareMs),
      activate_rpc_ms: round(activateMs),
      agent_saw_taint_ms: round(agentSawTaintMs),
      agent_remint_ms: round(agentRemintMs),
      agent_mint_calls: mints.length,
      agent_still_tainted_warnings: stillTainted,
      streams_with_other_messages_first: extra,
      first_svid_p50_ms: round(percentile(firsts, 50)),
      first_svid_max_ms: round(Math.max(...firsts)),
      targets: { reissue_max_ms: '< 2000' },
      how:
        'one agent, one server on SoftHSM2; each workload a forked child with its own uid and entry, whose connected socket this process took with pidfd_getfd; ' +
        'reissue = from the TaintAuthority call returning (or starting) to each stream receiving an SVID whose chain[1] is the successor; agent_* from the agent log "time" fields',
    };
    console.log(JSON.stringify(result, null, 2));
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/taint.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/taint.json');
  }).finally(() => {
    for (const p of peers) p.session?.destroy();
    py?.stdin?.end();
    py?.kill('SIGTERM');
  });
}
