import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type * as ProtobufLight from 'protobufjs/light.js';
import { protoRoot } from '../proto/root.js';
import { keyAndCsr } from '../test/helpers/csr.js';
import { freePort, REPO, runCollect, startServerProcess, tempDir, writeFile, type ServerProcess } from '../test/helpers/process.js';
import { createSoftHsmToken, type SoftHsmToken } from '../test/helpers/softhsm.js';
import { makeP256Csr, makeP256CsrWithUri } from './csr.js';
import { decodeSpireAnswer, encodeSpireMintRequest, frame, SPIRE_MINT_METHOD, spireServerBinary, startSpireServer, type SpireServer } from './spire-server.js';
import { round } from './stats.js';

/**
 * MintX509SVID through a real server's admin API (a server process on
 * SoftHSM2, or on the disk key manager), with BENCH_IN_FLIGHT calls in flight:
 * mints per second, p50 and p99 latency, and the CPU of client and server.
 *
 * The client is a small Go program (bench/go-mint/): a Node client shares the
 * cores with the server and saturates them itself (~1k/s measured that way).
 * It sends requests this file encodes (each with a CSR of its own key) as raw
 * bytes, so it needs no generated code, and reports in one JSON line.
 *
 * BENCH_KEY_MANAGER=pkcs11 (default) | disk | ab: ab starts one server of
 * each and alternates rounds between them.
 *
 * BENCH_SPIRE_SERVER=<a spire-server binary>: a SPIRE server as well (disk
 * KeyManager, sqlite3; bench/spire-server.ts), measured by the same client in
 * the same alternation, so that issue 17's "at least SPIRE's rate on the same
 * machine" is one run's ratio rather than a figure from another day. SPIRE
 * takes the SPIFFE ID from the CSR, so its requests carry CSRs with a URI SAN
 * (each its own key, the same IDs).
 */

const TD = 'bench.test';
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 5000);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1000);
/** Distinct requests (keys and CSRs); the client cycles through them. */
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
/** PKCS#11 sessions of the server's key manager (its config's default when unset). */
const SESSIONS = process.env.BENCH_SESSIONS === undefined ? undefined : Number(process.env.BENCH_SESSIONS);
/** The servers' log_level: info (their default), debug or trace; not quieter, since the bench waits for the info-level "ready" line. */
function serverLogLevel(): string {
  const level = process.env.BENCH_SERVER_LOG_LEVEL ?? 'info';
  if (!['info', 'debug', 'trace'].includes(level)) {
    throw new Error(`bench api-mint: BENCH_SERVER_LOG_LEVEL must be info, debug or trace (the bench waits for the server's info-level ready line), not "${level}"`);
  }
  return level;
}
/** Issue 17: p99 at most this with IN_FLIGHT calls in flight, and at least SPIRE's rate on this machine. */
const TARGET_P99_MS = 20;
/** SPIRE's rate as an earlier session measured it; a run with BENCH_SPIRE_SERVER compares with its own. */
const SPIRE_RATE = 3700;

const GO_DIR = join(REPO, 'bench', 'go-mint');
/** Built binaries live with the build output (gitignored, not packed). */
const GO_CACHE = join(REPO, 'dist', 'bench', 'go-mint');

type KeyManagerKind = 'pkcs11' | 'disk';

/** What bench/go-mint prints. */
export interface GoRound {
  method: string;
  concurrency: number;
  distinct_requests: number;
  duration_ms: number;
  ok: number;
  failures: Record<string, number>;
  first_failure?: string;
  rate_per_s: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  client_cpu_cores: number;
  pid_cpu_cores: Record<string, number>;
  machine_busy_cores: number;
}

function positive(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new Error(`bench api-mint: ${name} must be a positive integer, not ${v}`);
}

function goEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };
  const goRoot = '/usr/local/go/bin';
  if (existsSync(join(goRoot, 'go')) && !(env.PATH ?? '').split(':').includes(goRoot)) env.PATH = `${env.PATH ?? ''}:${goRoot}`;
  return env;
}

/** The Go version ("go1.24.1"), or why the client cannot be built here. */
export function goToolchain(): { version: string } | { unusable: string } {
  const r = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: goEnv(), timeout: 30_000 });
  if (r.error) return { unusable: 'the Go toolchain ("go") was not found' };
  if (r.status !== 0) return { unusable: `"go env GOVERSION" failed: ${r.stderr.trim()}` };
  const need = /^go\s+(\S+)\s*$/m.exec(readFileSync(join(GO_DIR, 'go.mod'), 'utf8'))?.[1] ?? '0';
  const have = r.stdout.trim();
  const nums = (v: string) => v.split(/[^0-9]+/).filter(Boolean).map(Number);
  const [a, b] = [nums(have), nums(need)];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0) ? { version: have } : { unusable: `${have} is older than go${need}, which bench/go-mint needs` };
  }
  return { version: have };
}

/**
 * The client binary, built only when its sources (go.mod, go.sum, *.go) or
 * the Go version changed since the last build, as test/interop/go-program.ts
 * does for the interop program.
 */
export function goClient(goVersion: string): { path: string; built: boolean } {
  const h = createHash('sha256').update(`${goVersion}\0`);
  for (const f of readdirSync(GO_DIR).filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go')).sort()) {
    h.update(`${f}\0`).update(readFileSync(join(GO_DIR, f))).update('\0');
  }
  const hash = h.digest('hex');
  mkdirSync(GO_CACHE, { recursive: true });
  const path = join(GO_CACHE, 'go-mint');
  const hashFile = `${path}.sha256`;
  if (existsSync(path) && existsSync(hashFile) && readFileSync(hashFile, 'utf8').trim() === hash) return { path, built: false };
  // Built under a name of its own and renamed: a concurrent run never sees half a binary.
  const tmp = `${path}.${process.pid}.tmp`;
  const r = spawnSync('go', ['build', '-buildvcs=false', '-o', tmp, '.'], { cwd: GO_DIR, env: goEnv(), encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`bench api-mint: go build in bench/go-mint failed (exit ${r.status}, ${r.error?.message ?? r.signal ?? ''}):\n${r.stderr}${r.stdout}`);
  }
  renameSync(tmp, path);
  writeFileSync(hashFile, `${hash}\n`);
  return { path, built: true };
}

/** The admin API's MintX509SVID types and path, from the descriptor the CLI reads too. */
export function mintTypes(): { path: string; req: ProtobufLight.Type; res: ProtobufLight.Type } {
  const pb = createRequire(import.meta.url)('protobufjs/dist/light/protobuf.min.js') as typeof ProtobufLight;
  const d = JSON.parse(readFileSync(join(protoRoot(), 'gen', 'admin.descriptor.json'), 'utf8')) as {
    service: string;
    methods: Record<string, { requestType: string; responseType: string; root: ProtobufLight.INamespace }>;
  };
  const m = d.methods.MintX509SVID;
  if (!m) throw new Error('bench api-mint: the admin descriptor has no MintX509SVID');
  const root = pb.Root.fromJSON(m.root);
  return { path: `/${d.service}/MintX509SVID`, req: root.lookupType(m.requestType), res: root.lookupType(m.responseType) };
}

/** MintX509SVIDRequest messages as bench/go-mint reads them: each encoded, after its length (4 bytes, big-endian). */
export function encodeRequests(req: ProtobufLight.Type, requests: { csr: Buffer; spiffe_id: string }[]): Buffer {
  return frame(requests.map((r) => req.encode(req.fromObject(r)).finish()));
}

/** Runs the Go client once (a warm-up, then one measured round) and returns its report. */
export async function goRound(bin: string, args: string[]): Promise<GoRound> {
  const r = await runCollect(bin, args);
  const line = r.stdout.trim();
  if (r.status !== 0 || line === '' || line.includes('\n')) {
    throw new Error(`bench api-mint: the Go client failed (exit ${r.status}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
  }
  return JSON.parse(line) as GoRound;
}

interface Server {
  kind: KeyManagerKind;
  proc: ServerProcess;
  socket: string;
}

async function startServer(kind: KeyManagerKind, dir: string, hsm: SoftHsmToken | undefined, logLevel: string): Promise<Server> {
  mkdirSync(dir, { mode: 0o700 });
  const socket = join(dir, 'admin.sock');
  let km: string;
  if (kind === 'pkcs11') {
    const pin = writeFile(join(dir, 'pin'), `${hsm!.pin}\n`);
    km = `  type: pkcs11\n  module: ${hsm!.module}\n  token_label: ${hsm!.label}\n  pin_file: ${pin}\n${SESSIONS === undefined ? '' : `  sessions: ${SESSIONS}\n`}`;
  } else km = '  type: disk\n';
  const config = writeFile(
    join(dir, 'server.yaml'),
    `trust_domain: ${TD}\ndata_dir: ${join(dir, 'data')}\nadmin_socket: ${socket}\nbind_address: 127.0.0.1:0\nlog_level: ${logLevel}\nkey_manager:\n${km}`,
  );
  const env = hsm?.env ?? process.env;
  return { kind, proc: await startServerProcess(config, socket, env), socket };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The medians of a key manager's rounds, and every round as measured. */
function summary(rounds: GoRound[]) {
  const failures: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
  const m = (f: (r: GoRound) => number, d = 2) => round(median(rounds.map(f)), d);
  return {
    rate_per_s: m((r) => r.rate_per_s, 0),
    p50_ms: m((r) => r.p50_ms),
    p99_ms: m((r) => r.p99_ms),
    client_cpu_cores: m((r) => r.client_cpu_cores),
    server_cpu_cores: m((r) => r.pid_cpu_cores.server ?? 0),
    server_cpu_us_per_mint: m((r) => (1e6 * (r.pid_cpu_cores.server ?? 0)) / r.rate_per_s, 0),
    bench_node_cpu_cores: m((r) => r.pid_cpu_cores.bench ?? 0),
    machine_busy_cores: m((r) => r.machine_busy_cores),
    failures,
    rounds: rounds.map((r) => ({
      rate_per_s: Math.round(r.rate_per_s),
      p50_ms: r.p50_ms,
      p90_ms: r.p90_ms,
      p99_ms: r.p99_ms,
      max_ms: r.max_ms,
      ok: r.ok,
      client_cpu_cores: round(r.client_cpu_cores),
      server_cpu_cores: round(r.pid_cpu_cores.server ?? 0),
      machine_busy_cores: round(r.machine_busy_cores),
    })),
  };
}

/** The leaf names the SPIFFE ID, holds the CSR's key, and is signed by `issuer`. */
function checkLeaf(chain: X509Certificate[], issuer: X509Certificate | undefined, spiffeId: string, keyPem: string, of: string): void {
  const leaf = chain[0];
  if (!leaf) throw new Error('bench api-mint: the sample answer has no certificate chain');
  if (leaf.subjectAltName !== `URI:${spiffeId}`) throw new Error(`bench api-mint: the sample leaf names ${leaf.subjectAltName}, not ${spiffeId}`);
  const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: 'spki', format: 'der' });
  if (!spki(leaf.publicKey).equals(spki(createPublicKey(keyPem)))) throw new Error('bench api-mint: the sample leaf does not hold the CSR key');
  if (!issuer || !leaf.checkIssued(issuer) || !leaf.verify(issuer.publicKey)) throw new Error(`bench api-mint: the sample leaf is not signed by the CA of ${of}`);
}

/** The leaf answered to request 0 names its SPIFFE ID, holds its key, and is signed by the CA the answer names. */
export function checkSample(answer: Buffer, res: ProtobufLight.Type, spiffeId: string, keyPem: string): void {
  const msg = res.toObject(res.decode(answer), { bytes: Buffer }) as { chain?: Buffer[]; bundle?: Buffer[] };
  const chain = (msg.chain ?? []).map((d) => new X509Certificate(d));
  const bundle = (msg.bundle ?? []).map((d) => new X509Certificate(d));
  checkLeaf(chain, chain[1] ?? bundle[0], spiffeId, keyPem, 'its answer');
}

/**
 * SPIRE's answer to request 0: the leaf names the CSR's ID (and the answer
 * says so too), holds the CSR's key, and is signed by an authority of the
 * server's bundle (SPIRE's answer holds no bundle).
 */
export function checkSpireSample(answer: Buffer, spiffeId: string, keyPem: string, bundle: X509Certificate[]): void {
  const { chain, id } = decodeSpireAnswer(answer);
  if (chain.length > 0 && id !== spiffeId) throw new Error(`bench api-mint: SPIRE's sample answer says it issued ${id}, not ${spiffeId}`);
  const leaf = chain[0];
  checkLeaf(chain, chain[1] ?? bundle.find((ca) => leaf !== undefined && leaf.checkIssued(ca)), spiffeId, keyPem, "SPIRE's bundle");
}

/** a / b, rounded; undefined when b is 0. */
function ratio(a: number, b: number): number | undefined {
  return b > 0 ? round(a / b, 3) : undefined;
}

/** One server the rounds alternate between: what go-mint is pointed at, and how its sample answer is checked. */
interface Target {
  kind: KeyManagerKind | 'spire';
  socket: string;
  pid: number;
  method: string;
  requests: string;
  check(sample: Buffer): void;
}

export async function benchApiMint(): Promise<void> {
  for (const [k, v] of [['BENCH_IN_FLIGHT', IN_FLIGHT], ['BENCH_ROUNDS', ROUNDS], ['BENCH_ROUND_MS', ROUND_MS], ['BENCH_REQUESTS', REQUESTS], ['BENCH_SESSIONS', SESSIONS]] as const) positive(k, v);
  if (!(Number.isInteger(WARMUP_MS) && WARMUP_MS >= 0)) throw new Error(`bench api-mint: BENCH_WARMUP_MS must be a whole number of ms, not ${WARMUP_MS}`);
  const logLevel = serverLogLevel();
  const mode = process.env.BENCH_KEY_MANAGER ?? 'pkcs11';
  if (mode !== 'pkcs11' && mode !== 'disk' && mode !== 'ab') throw new Error(`bench api-mint: BENCH_KEY_MANAGER must be pkcs11, disk or ab, not "${mode}"`);
  const kinds: KeyManagerKind[] = mode === 'ab' ? ['pkcs11', 'disk'] : [mode];
  const spireBin = process.env.BENCH_SPIRE_SERVER === undefined ? undefined : spireServerBinary(process.env.BENCH_SPIRE_SERVER);

  const go = goToolchain();
  if ('unusable' in go) {
    console.error(`bench api-mint: ${go.unusable}; the bench needs Go for its client (bench/go-mint), stopping`);
    process.exitCode = 1;
    return;
  }
  const client = goClient(go.version);
  const { path: method, req, res } = mintTypes();

  const tmp = tempDir('anchorage-bench-api-mint-');
  chmodSync(tmp.dir, 0o700);
  const hsm = kinds.includes('pkcs11') ? createSoftHsmToken('bench', '1357') : undefined;
  const servers: Server[] = [];
  let spire: SpireServer | undefined;
  try {
    // The requests: each with a key and CSR of its own, and an ID of its own.
    const first = keyAndCsr();
    const ids = Array.from({ length: REQUESTS }, (_, i) => `spiffe://${TD}/api-mint/${i}`);
    const requestsFile = join(tmp.dir, 'requests.bin');
    writeFileSync(requestsFile, encodeRequests(req, ids.map((spiffe_id, i) => ({ csr: i === 0 ? first.csr : makeP256Csr(), spiffe_id }))), { mode: 0o600 });

    for (const kind of kinds) servers.push(await startServer(kind, join(tmp.dir, kind), hsm, logLevel));
    const targets: Target[] = servers.map((s) => ({
      kind: s.kind,
      socket: s.socket,
      pid: s.proc.child.pid!,
      method,
      requests: requestsFile,
      check: (sample) => checkSample(sample, res, ids[0]!, first.keyPem),
    }));

    if (spireBin !== undefined) {
      // The same IDs, in CSRs of keys of their own (SPIRE reads the ID from the CSR's URI SAN).
      const spireCsrs = ids.map((id) => makeP256CsrWithUri(id));
      const spireFirstKey = spireCsrs[0]!.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      const spireRequests = join(tmp.dir, 'requests-spire.bin');
      writeFileSync(spireRequests, frame(spireCsrs.map((c) => encodeSpireMintRequest(c.csr))), { mode: 0o600 });
      const s = await startSpireServer(spireBin, { dir: join(tmp.dir, 'spire'), socket: join(tmp.dir, 'spire', 'api.sock'), port: await freePort(), trustDomain: TD, logLevel: logLevel });
      spire = s;
      targets.push({
        kind: 'spire',
        socket: s.socket,
        pid: s.child.pid!,
        method: SPIRE_MINT_METHOD,
        requests: spireRequests,
        check: (sample) => checkSpireSample(sample, ids[0]!, spireFirstKey, s.bundle),
      });
    }

    console.log(
      `bench api-mint: ${cpus().length} cores, Go client ${go.version}${client.built ? ' (built now)' : ''}, ${IN_FLIGHT} in flight, ` +
        `${ROUNDS} rounds of ${ROUND_MS} ms (after ${WARMUP_MS} ms warm-up each), ${REQUESTS} distinct requests, ` +
        `key manager ${mode === 'ab' ? 'pkcs11 and disk, alternating' : mode}${SESSIONS === undefined ? '' : `, ${SESSIONS} sessions`}, server log level ${logLevel}` +
        (spire ? `; SPIRE ${spire.version} (disk KeyManager, sqlite3) in the same alternation` : ''),
    );

    const allKinds = targets.map((t) => t.kind);
    const rounds = new Map<Target['kind'], GoRound[]>(allKinds.map((k) => [k, []]));
    for (let r = 0; r < ROUNDS; r++) {
      // Alternating which goes first, so that a drift within a round favours none.
      for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
        const sample = join(tmp.dir, `sample-${t.kind}.bin`);
        const g = await goRound(client.path, [
          '-socket', t.socket, '-method', t.method, '-requests', t.requests, '-c', String(IN_FLIGHT),
          '-duration', `${ROUND_MS}ms`, '-warmup', `${WARMUP_MS}ms`, '-sample-out', sample,
          '-pid', `server=${t.pid}`, '-pid', `bench=${process.pid}`,
        ]);
        t.check(readFileSync(sample));
        rounds.get(t.kind)!.push(g);
        const failed = Object.values(g.failures).reduce((a, b) => a + b, 0);
        console.log(
          `  round ${r + 1} ${t.kind.padEnd(6)}: ${Math.round(g.rate_per_s)}/s, p50 ${g.p50_ms} ms, p90 ${g.p90_ms} ms, p99 ${g.p99_ms} ms, max ${g.max_ms} ms; ` +
            `CPU server ${g.pid_cpu_cores.server!.toFixed(2)}, client ${g.client_cpu_cores.toFixed(2)}, bench ${g.pid_cpu_cores.bench!.toFixed(2)}, machine ${g.machine_busy_cores.toFixed(2)} cores` +
            (failed > 0 ? `; ${failed} FAILED (${JSON.stringify(g.failures)}; first: ${g.first_failure})` : ''),
        );
      }
    }

    const summaries = new Map(allKinds.map((k) => [k, summary(rounds.get(k)!)]));
    const by = Object.fromEntries(kinds.map((k) => [k, summaries.get(k)!]));
    const main = by[kinds[0]!]!;
    const spireSummary = summaries.get('spire');
    // Anchorage's rate over SPIRE's: of the medians, and the median of each round's own ratio (the two ran minutes apart at most).
    const spireRounds = rounds.get('spire') ?? [];
    const vsSpire = spireSummary
      ? Object.fromEntries(
          kinds.map((k) => [
            k,
            {
              rate_ratio: ratio(by[k]!.rate_per_s, spireSummary.rate_per_s),
              rate_ratio_paired_median: round(median(rounds.get(k)!.map((g, i) => g.rate_per_s / spireRounds[i]!.rate_per_s)), 3),
              p99_ms: by[k]!.p99_ms,
              spire_p99_ms: spireSummary.p99_ms,
            },
          ]),
        )
      : undefined;
    const result = {
      key_manager: kinds[0],
      ...main,
      in_flight: IN_FLIGHT,
      rounds_count: ROUNDS,
      round_ms: ROUND_MS,
      warmup_ms: WARMUP_MS,
      distinct_requests: REQUESTS,
      ...(SESSIONS !== undefined && { pkcs11_sessions: SESSIONS }),
      server_log_level: logLevel,
      client: `bench/go-mint (${go.version})`,
      cpus: cpus().length,
      target: spireSummary
        ? { p99_ms_at_most: TARGET_P99_MS, rate_per_s_at_least: spireSummary.rate_per_s, rate_from: 'SPIRE in this run (median of its rounds)' }
        : { p99_ms_at_most: TARGET_P99_MS, rate_per_s_at_least: SPIRE_RATE },
      measured_at: new Date().toISOString(),
      ...(kinds.length > 1 && { by_key_manager: by }),
      ...(spire &&
        spireSummary &&
        vsSpire && {
          rate_ratio_to_spire: Object.fromEntries(kinds.map((k) => [k, vsSpire[k]!.rate_ratio])),
          vs_spire: vsSpire,
          spire: { server: `spire-server ${spire.version}`, key_manager: 'disk', datastore: 'sqlite3', method: SPIRE_MINT_METHOD, ...spireSummary },
        }),
    };
    for (const k of allKinds) {
      const s = summaries.get(k)!;
      console.log(
        `${k}: rate_per_s ${s.rate_per_s}  p50_ms ${s.p50_ms}  p99_ms ${s.p99_ms}  server_cpu_cores ${s.server_cpu_cores} (${s.server_cpu_us_per_mint} µs/mint)  ` +
          `client_cpu_cores ${s.client_cpu_cores}  (medians of ${ROUNDS} rounds` +
          (k === 'spire' ? ')' : `; target p99 ≤ ${TARGET_P99_MS} ms, rate ≥ ${result.target.rate_per_s_at_least}/s${spireSummary ? ' (SPIRE, this run)' : ''})`),
      );
    }
    if (vsSpire) {
      for (const k of kinds) {
        const v = vsSpire[k]!;
        const meets = (v.rate_ratio ?? 0) >= 1 && v.p99_ms <= TARGET_P99_MS;
        console.log(
          `${k} / spire: rate ratio ${v.rate_ratio} (medians; per-round pairs: median ${v.rate_ratio_paired_median}), p99 ${v.p99_ms} vs ${v.spire_p99_ms} ms; ` +
            `issue 17 ${meets ? 'met' : 'not met'} in this run`,
        );
      }
    }
    const failures = allKinds.flatMap((k) => Object.entries(summaries.get(k)!.failures).map(([code, n]) => `${k} ${code} ×${n}`));
    if (failures.length > 0) {
      console.error(`bench api-mint: failed calls: ${failures.join(', ')}`);
      process.exitCode = 1;
    }
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/api-mint.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/api-mint.json');
  } catch (err) {
    for (const s of servers) writeFileSync(`/tmp/bench-server-${s.kind}.log`, s.proc.log());
    if (spire) writeFileSync('/tmp/bench-server-spire.log', spire.log());
    const logs = [...servers.map((s) => `/tmp/bench-server-${s.kind}.log`), ...(spire ? ['/tmp/bench-server-spire.log'] : [])];
    if (logs.length > 0) console.error(`bench api-mint: failed; server logs in ${logs.join(', ')}`);
    throw err;
  } finally {
    for (const s of servers) await s.proc.kill('SIGTERM');
    await spire?.kill();
    tmp.cleanup();
    hsm?.cleanup();
  }
}
