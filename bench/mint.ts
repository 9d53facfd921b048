import { cpus } from 'node:os';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { silentLogger } from '../common/log.js';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { openDataStore } from '../ca/datastore/registry.js';
import { openKeyManager } from '../ca/keymanager/registry.js';
import { Pkcs11KeyManager } from '../ca/keymanager/pkcs11/index.js';
import type { KeyHandle } from '../ca/keymanager/KeyManager.js';
import { CaManager } from '../ca/manager.js';
import { Minter } from '../ca/minter.js';
import { ServerMetrics } from '../ca/metrics.js';
import { loadRootOfTrust } from '../ca/root.js';
import { createSoftHsmToken } from '../test/helpers/softhsm.js';
import { makeP256Csr } from './csr.js';
import { CsrVerifierPool } from '../ca/x509/csr-pool.js';
import { AuditLog } from '../ca/audit/log.js';
import { startPostgres } from '../test/helpers/postgres.js';

const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 3000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Requests kept in flight: enough to keep every session of the pool busy. */
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 64);
const CSR_POOL = 2000;
/** BENCH_METRICS=ab: pairs of rounds without and with metrics. */
const AB_ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 8);
/** BENCH_AUDIT=ab: rounds of three (without, with, control), shorter and more of them: the ratio is a median. */
const AUDIT_AB_ROUNDS = Number(process.env.BENCH_AUDIT_AB_ROUNDS ?? 24);
const AUDIT_ROUND_MS = Number(process.env.BENCH_AUDIT_ROUND_MS ?? 1000);

interface Rate {
  perSecond: number;
  cpuCores: number;
  /** CPU of the main thread alone, in cores (Linux; 0 elsewhere). */
  mainCores: number;
}

/** The main thread's CPU time in ms (from /proc; its thread id is the process id). */
function mainThreadCpuMs(): number {
  try {
    const s = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

/** Runs `op` with IN_FLIGHT concurrent callers for `ms`, returning the completion rate and CPU used. */
async function measure(ms: number, op: (i: number) => Promise<unknown>): Promise<Rate> {
  let done = 0;
  let next = 0;
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadCpuMs();
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        await op(next++);
        done++;
      }
    }),
  );
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: (done / elapsed) * 1000, cpuCores: (cpu.user + cpu.system) / 1000 / elapsed, mainCores: (mainThreadCpuMs() - main0) / elapsed };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Raw PKCS#11 P-256 signing vs end-to-end X509-SVID minting (CSR in → DER
 * chain out through the server's own Minter), on one SoftHSM2 token with the
 * same session pool, measured in alternating rounds of one run.
 */
export async function benchMint(): Promise<void> {
  const token = createSoftHsmToken('bench', '1234');
  process.env.SOFTHSM2_CONF = token.conf;
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-bench-'));
  // Opened through the registries, exactly as `anchorage server run` opens them.
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o600 });
  const opened = await openKeyManager(
    { type: 'pkcs11', module: token.module, token_label: token.label, pin_file: pinFile, sessions: 4 },
    { configPath: 'key_manager', logger: silentLogger() },
  );
  if (!(opened instanceof Pkcs11KeyManager)) throw new Error('bench: the registry did not open a PKCS#11 key manager');
  const km = opened;
  // BENCH_DATASTORE=postgres: a PostgreSQL cluster of its own on this machine (Debian's postgresql), as a server with `datastore: {type: postgres}` uses it.
  const onPostgres = process.env.BENCH_DATASTORE === 'postgres';
  if (!onPostgres && process.env.BENCH_DATASTORE !== undefined && process.env.BENCH_DATASTORE !== 'sqlite') {
    throw new Error(`bench mint: BENCH_DATASTORE must be sqlite or postgres, not "${process.env.BENCH_DATASTORE}"`);
  }
  const pg = onPostgres ? await startPostgres() : undefined;
  const ds = pg
    ? await openDataStore(
        { type: 'postgres', connection_string: pg.url(await pg.createDatabase()), password_file: pg.passwordFile, max_connections: 10, connect_timeout: 10, statement_timeout: 30 },
        { logger: silentLogger() },
      )
    : await openDataStore({ type: 'sqlite', path: join(dir, 'ds.sqlite3') }, { logger: silentLogger() });
  try {
    const td = TrustDomain.parse('bench.example');
    const root = await loadRootOfTrust(
      { type: 'self-signed', ttl: 3650 * 86400 },
      { trustDomain: td, datastore: ds, keyManager: km, now: Date.now, logger: silentLogger(), defaultKeyType: 'ec-p256' },
    );
    const ca = new CaManager({
      trustDomain: td, keyManager: km, root, datastore: ds, caTtl: 86400, keyType: 'ec-p256', bundleRefreshHint: 300, logger: silentLogger(),
    });
    await ca.start();
    const workers = process.env.BENCH_CSR_WORKERS === undefined ? undefined : Number(process.env.BENCH_CSR_WORKERS);
    const csrVerifier = new CsrVerifierPool(workers === undefined ? {} : { workers });
    // BENCH_METRICS=1: instrumented as a server with `metrics:` is (what
    // metrics cost on the minting path). BENCH_METRICS=ab: uninstrumented,
    // then alternating rounds without and with metrics in this one process,
    // which a loaded machine disturbs far less than separate runs.
    const mode = process.env.BENCH_METRICS;
    const metrics = mode === '1' || mode === 'ab' ? new ServerMetrics() : undefined;
    metrics?.attach({ ca, datastore: ds, keyManagers: [km], trustDomain: td, now: Date.now, logger: silentLogger() });
    const signObserver = km.signObserver;
    if (mode === 'ab') km.onSign(undefined);
    // The audit log, wired as the server wires it (ca/server.ts): every mint
    // waits for its record to be committed to the SQLite datastore, and the
    // checkpoints are signed in the same token. BENCH_AUDIT=0: without it (as
    // before the audit log); BENCH_AUDIT=ab: with it, then alternating rounds
    // without and with it in this one process.
    const auditMode = process.env.BENCH_AUDIT ?? '1';
    const audit = auditMode === '0' ? undefined : await AuditLog.open({ datastore: ds, keyManager: km, trustDomain: td.name, logger: silentLogger(), headFile: join(dir, 'audit-head.json'), sharedWriters: onPostgres, ...(process.env.BENCH_AUDIT_COMMIT_MS !== undefined && { minCommitIntervalMs: Number(process.env.BENCH_AUDIT_COMMIT_MS) }) });
    const minter = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 300, csrVerifier, metrics: mode === '1' ? metrics : undefined, audit });
    const unaudited = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 300, csrVerifier, metrics: mode === '1' ? metrics : undefined });
    const metered = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 300, csrVerifier, metrics });
    const raw: KeyHandle = await km.generateKey('bench-raw', 'ec-p256');

    console.log(
      `bench mint: ${cpus().length} cores, ${km.sessions} PKCS#11 sessions, ${IN_FLIGHT} in flight, ${ROUNDS} rounds of ${ROUND_MS} ms each${mode === '1' ? ', metrics on' : ''}, audit log ${audit ? 'on' : 'off'}, datastore ${onPostgres ? 'postgres' : 'sqlite'}`,
    );
    const csrs = Array.from({ length: CSR_POOL }, makeP256Csr);
    const ids = Array.from({ length: 100 }, (_, i) => SpiffeId.parse(`spiffe://bench.example/workload/${i}`));
    // What the raw signer signs: a TBSCertificate-sized input, hashed like a leaf.
    const tbsLike = createHash('sha512').update('tbs').digest().subarray(0, 32);
    const payload = Buffer.concat(Array.from({ length: 14 }, () => tbsLike));

    // Warm-up: JIT, session pool, CSR parsing paths.
    await measure(500, () => raw.sign(payload));
    await measure(500, (i) => minter.mintX509FromCsr(csrs[i % CSR_POOL]!, { spiffeId: ids[i % ids.length]! }));

    const rawRounds: Rate[] = [];
    const mintRounds: Rate[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      rawRounds.push(await measure(ROUND_MS, () => raw.sign(payload)));
      mintRounds.push(await measure(ROUND_MS, (i) => minter.mintX509FromCsr(csrs[i % CSR_POOL]!, { spiffeId: ids[i % ids.length]! })));
      console.log(
        `  round ${r + 1}: raw ${rawRounds[r]!.perSecond.toFixed(0)}/s (${rawRounds[r]!.cpuCores.toFixed(2)} cores), ` +
          `mint ${mintRounds[r]!.perSecond.toFixed(0)}/s (${mintRounds[r]!.cpuCores.toFixed(2)} cores)`,
      );
    }
    const rawPerS = median(rawRounds.map((r) => r.perSecond));
    const mintPerS = median(mintRounds.map((r) => r.perSecond));
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    for (let r = 0; mode === 'ab' && r < AB_ROUNDS; r++) {
      const mint = (m: Minter) => measure(ROUND_MS, (i) => m.mintX509FromCsr(csrs[i % CSR_POOL]!, { spiffeId: ids[i % ids.length]! }));
      const plainRound = () => {
        km.onSign(undefined);
        return mint(minter);
      };
      const meteredRound = () => {
        km.onSign(signObserver);
        return mint(metered);
      };
      // Alternating which goes first, so that a drift within a pair favours neither.
      let plain: Rate;
      let withMetrics: Rate;
      if (r % 2 === 0) {
        plain = await plainRound();
        withMetrics = await meteredRound();
      } else {
        withMetrics = await meteredRound();
        plain = await plainRound();
      }
      ratios.push(withMetrics.perSecond / plain.perSecond);
      // CPU time per mint (all threads of the process): what metrics add, far less moved by other processes than a rate.
      const cpuUs = (x: Rate) => (1e6 * x.cpuCores) / x.perSecond;
      cpuRatios.push(cpuUs(withMetrics) / cpuUs(plain));
      console.log(
        `  a/b ${r + 1}: without metrics ${plain.perSecond.toFixed(0)}/s ${cpuUs(plain).toFixed(0)} µs CPU/mint, ` +
          `with ${withMetrics.perSecond.toFixed(0)}/s ${cpuUs(withMetrics).toFixed(0)} µs CPU/mint (rate ${(100 * ratios[r]!).toFixed(1)} %, CPU ${(100 * cpuRatios[r]!).toFixed(1)} %)`,
      );
    }
    // BENCH_AUDIT=ab: what the audit log costs. Rounds in threes: without it,
    // with it, and a control identical to the first (another Minter without
    // an audit log), in an order that cycles through all six permutations.
    // control/without shows how far two identical configurations differ on
    // this machine at this moment: the noise a with/without ratio sits in.
    const auditRatios: number[] = [];
    const auditCpuRatios: number[] = [];
    const controlRatios: number[] = [];
    const perCommit: number[] = [];
    /** Mints per second of each arm pooled over all rounds: [without, with, control]. */
    const pooled = [0, 0, 0];
    const control = new Minter({ ca, x509SvidTtl: 3600, jwtSvidTtl: 300, csrVerifier });
    const orders = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]];
    for (let r = 0; auditMode === 'ab' && r < AUDIT_AB_ROUNDS; r++) {
      const mint = (m: Minter) => measure(AUDIT_ROUND_MS, (i) => m.mintX509FromCsr(csrs[i % CSR_POOL]!, { spiffeId: ids[i % ids.length]! }));
      const rates: Rate[] = [];
      for (const which of orders[r % orders.length]!) {
        if (which === 1) {
          const [seq0, commits0] = [audit!.headSeq, audit!.commits];
          rates[1] = await mint(minter);
          perCommit.push((audit!.headSeq - seq0) / Math.max(1, audit!.commits - commits0));
        } else rates[which] = await mint(which === 0 ? unaudited : control);
      }
      const [plain, withAudit, again] = rates as [Rate, Rate, Rate];
      rates.forEach((x, i) => (pooled[i] += x.perSecond));
      auditRatios.push(withAudit.perSecond / plain.perSecond);
      controlRatios.push(again.perSecond / plain.perSecond);
      const cpuUs = (x: Rate) => (1e6 * x.cpuCores) / x.perSecond;
      auditCpuRatios.push(cpuUs(withAudit) / cpuUs(plain));
      const mainUs = (x: Rate) => (1e6 * x.mainCores) / x.perSecond;
      console.log(
        `  audit ${r + 1}: without ${plain.perSecond.toFixed(0)}/s ${cpuUs(plain).toFixed(0)} µs CPU/mint (main thread ${mainUs(plain).toFixed(0)}), ` +
          `with ${withAudit.perSecond.toFixed(0)}/s ${cpuUs(withAudit).toFixed(0)} µs (main ${mainUs(withAudit).toFixed(0)}), ` +
          `control ${again.perSecond.toFixed(0)}/s; with/without ${(100 * auditRatios[r]!).toFixed(1)} %, control/without ${(100 * controlRatios[r]!).toFixed(1)} %, ` +
          `${perCommit[r]!.toFixed(1)} records per commit`,
      );
    }
    if (audit) await audit.flush();
    const auditRecords = audit ? audit.headSeq : 0;
    const auditOk = audit ? (await audit.verify()).ok : undefined;
    const result = {
      raw_sign_per_s: Math.round(rawPerS),
      mint_per_s: Math.round(mintPerS),
      ratio: Number((mintPerS / rawPerS).toFixed(3)),
      sessions: km.sessions,
      in_flight: IN_FLIGHT,
      rounds: ROUNDS,
      round_ms: ROUND_MS,
      cpus: cpus().length,
      measured_at: new Date().toISOString(),
      ...(ratios.length > 0 && { metrics_mint_ratio: Number(median(ratios).toFixed(3)), metrics_mint_cpu_ratio: Number(median(cpuRatios).toFixed(3)) }),
      datastore: onPostgres ? 'postgres' : 'sqlite',
      audit: audit !== undefined,
      ...(audit && { audit_records: auditRecords, audit_verified: auditOk }),
      ...(auditRatios.length > 0 && {
        audit_mint_ratio: Number(median(auditRatios).toFixed(3)),
        audit_mint_cpu_ratio: Number(median(auditCpuRatios).toFixed(3)),
        audit_control_ratio: Number(median(controlRatios).toFixed(3)),
        audit_pooled_ratio: Number((pooled[1]! / pooled[0]!).toFixed(3)),
        audit_pooled_control_ratio: Number((pooled[2]! / pooled[0]!).toFixed(3)),
        audit_records_per_commit: Number(median(perCommit).toFixed(1)),
        audit_rounds: auditRatios.length,
      }),
    };
    if (auditRatios.length > 0) {
      console.log(`audit_mint_ratio ${result.audit_mint_ratio} (rate with / without the audit log, median of ${auditRatios.length} rounds; target ≥ 0.9)`);
      console.log(`audit_control_ratio ${result.audit_control_ratio} (the same, for two identical configurations without it: the noise floor)`);
      console.log(`audit_pooled_ratio ${result.audit_pooled_ratio} (mean rate with / mean rate without, over all rounds; control ${result.audit_pooled_control_ratio})`);
      console.log(`audit_mint_cpu_ratio ${result.audit_mint_cpu_ratio} (CPU per mint with / without)`);
      console.log(`audit_records_per_commit ${result.audit_records_per_commit}`);
    }
    if (audit) console.log(`audit log: ${auditRecords} records written, verify ${auditOk ? 'ok' : 'FAILED'}`);
    if (ratios.length > 0) {
      console.log(`metrics_mint_ratio ${result.metrics_mint_ratio} (rate with / without, median of ${ratios.length} a/b pairs; 1 = metrics cost nothing)`);
      console.log(`metrics_mint_cpu_ratio ${result.metrics_mint_cpu_ratio} (CPU per mint with / without)`);
    }
    console.log(`raw_sign_per_s ${result.raw_sign_per_s}`);
    console.log(`mint_per_s     ${result.mint_per_s}`);
    console.log(`ratio          ${result.ratio} (target ≥ 0.6)`);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/mint.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/mint.json');
    await audit?.close();
    await ca.close();
    await csrVerifier.close();
  } finally {
    await ds.close();
    pg?.destroy();
    await km.close();
    rmSync(dir, { recursive: true, force: true });
    token.cleanup();
  }
}
