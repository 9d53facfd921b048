// A real Prometheus (Debian's /usr/bin/prometheus) scrapes a real
// `anchorage server run` (SoftHSM2) and `anchorage agent run`, and the values
// it stored are compared with what the CLI and the admin API say: the
// intermediate's and root's notAfter with `ca show --json`, the issuance
// counters with the SVIDs minted here, the agent's bundle sequence with the
// server's, a federated authority's notAfter with the certificate set by hand.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromPem } from '@anchorage/client/pem';
import { loadHealthProto } from '../../proto/load.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { lacks } from '../helpers/needs.js';
import { makeRoot } from '../helpers/pki.js';
import { cli, freePort, tempDir, writeFile } from '../helpers/process.js';
import { softHsmAvailable } from '../helpers/softhsm.js';
import { startTrustDomain, type RealTrustDomain } from '../helpers/trust-domain.js';

const PROMETHEUS = '/usr/bin/prometheus';
const TD = 'metrics.test';
const WORKLOAD = `spiffe://${TD}/workload`;
const uid = process.getuid!();

let dir: { dir: string; cleanup(): void };
let td: RealTrustDomain;
let prom: ChildProcess | undefined;
let promLog = '';
let promUrl = '';
let serverPort = 0;
let agentPort = 0;

/** The port a `127.0.0.1:0` metrics address got, from the process's `metrics: listening` record. */
function metricsPort(log: string): number {
  for (const line of log.split('\n')) {
    if (!line.includes('"metrics: listening"')) continue;
    const address = (JSON.parse(line) as { address: string }).address;
    return Number(address.slice(address.lastIndexOf(':') + 1));
  }
  throw new Error(`no "metrics: listening" record in:\n${log.slice(-2000)}`);
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(q: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await res.json()) as { status: string; data: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`prometheus: ${q}: ${JSON.stringify(body)}`);
  return body.data.result;
}

/**
 * Asks Prometheus until `q` has a sample satisfying `want` (a scrape happens
 * every second; values of the previous scrape may still be the latest).
 * Returns the last answer, so the test asserts on exactly what Prometheus holds.
 */
async function eventually(q: string, want: (s: Sample[]) => boolean, timeoutMs = 30_000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  let last: Sample[] = [];
  while (Date.now() < deadline) {
    last = await query(q);
    if (want(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
}

function cliJson<T>(args: string[]): T {
  const r = cli([...args, '--socket', td.adminSocket, '--json'], td.env);
  if (r.code !== 0) throw new Error(`anchorage ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const fingerprint = (der: Uint8Array) => createHash('sha256').update(der).digest('hex');
const notAfterOf = (der: Uint8Array) => Math.floor(Date.parse(new X509Certificate(der).validTo) / 1000);

describe.skipIf(lacks(!existsSync(PROMETHEUS), 'Prometheus (/usr/bin/prometheus, Debian package prometheus)') || lacks(!softHsmAvailable(), 'SoftHSM2'))(
  'a real Prometheus scraping a real server and agent',
  () => {
    beforeAll(async () => {
      dir = tempDir('anchorage-prom-');
      td = await startTrustDomain(dir.dir, {
        trustDomain: TD,
        entries: [{ spiffeId: WORKLOAD, selectors: [`unix:uid:${uid}`] }],
        serverYaml: 'metrics:\n  address: 127.0.0.1:0\n',
        agentYaml: 'metrics:\n  address: 127.0.0.1:0\n',
      });
      serverPort = metricsPort(td.serverLog());
      agentPort = metricsPort(td.agentLog());

      const promPort = await freePort();
      promUrl = `http://127.0.0.1:${promPort}`;
      const storage = join(dir.dir, 'prometheus');
      mkdirSync(storage);
      const config = writeFile(
        join(dir.dir, 'prometheus.yml'),
        `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: anchorage-server
    static_configs: [{ targets: ['127.0.0.1:${serverPort}'] }]
  - job_name: anchorage-agent
    static_configs: [{ targets: ['127.0.0.1:${agentPort}'] }]
`,
      );
      prom = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${storage}`, `--web.listen-address=127.0.0.1:${promPort}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      prom.stderr!.on('data', (d) => (promLog += d));
      prom.stdout!.on('data', (d) => (promLog += d));
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (prom.exitCode !== null) throw new Error(`prometheus exited ${prom.exitCode}:\n${promLog}`);
        const ok = await fetch(`${promUrl}/-/ready`).then((r) => r.ok, () => false);
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`prometheus did not become ready:\n${promLog}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }, 180_000);

    afterAll(async () => {
      if (prom && prom.exitCode === null) {
        const exited = new Promise((r) => prom!.once('exit', r));
        prom.kill('SIGTERM');
        await exited;
      }
      await td?.close();
      dir?.cleanup();
    });

    it('scrapes both targets', async () => {
      const up = await eventually('up', (s) => s.length === 2 && s.every((x) => x.value[1] === '1'));
      expect(up.map((s) => [s.metric.job, s.value[1]]).sort()).toEqual([
        ['anchorage-agent', '1'],
        ['anchorage-server', '1'],
      ]);
    });

    it('holds the notAfter of the root and the active intermediate that `ca show --json` prints, and the JWT key\'s', async () => {
      const ca = cliJson<{ keys: Array<{ kind: string; status: string; kid: string; not_after: number; cert?: string }> }>(['ca', 'show']);
      const inter = ca.keys.find((k) => k.kind === 'x509' && k.status === 'active')!;
      const interDer = fromPem(inter.cert!, 'CERTIFICATE')[0]!;
      const got = await eventually('anchorage_ca_authority_not_after_timestamp_seconds{kind="intermediate",status="active"}', (s) => s.length === 1);
      expect(got).toHaveLength(1);
      expect(got[0]!.metric.id).toBe(fingerprint(interDer));
      expect(Number(got[0]!.value[1])).toBe(inter.not_after);

      const root = ca.keys.find((k) => k.kind === 'root')!;
      const rootDer = fromPem(root.cert!, 'CERTIFICATE')[0]!;
      const rootGot = await query('anchorage_ca_authority_not_after_timestamp_seconds{kind="root"}');
      expect(rootGot.map((s) => [s.metric.id, Number(s.value[1])])).toEqual([[fingerprint(rootDer), root.not_after]]);

      const jwt = ca.keys.find((k) => k.kind === 'jwt' && k.status === 'active')!;
      const jwtGot = await query(`anchorage_ca_authority_not_after_timestamp_seconds{kind="jwt",status="active"}`);
      expect(jwtGot.map((s) => [s.metric.id, Number(s.value[1])])).toEqual([[jwt.kid, jwt.not_after]]);
    });

    it('counts exactly the SVIDs minted: the server\'s own, the agent\'s, the workload\'s and three `x509 mint`; two `jwt mint`', async () => {
      for (let i = 0; i < 3; i++) {
        const out = join(dir.dir, `mint-${i}`);
        const r = cli(['x509', 'mint', '--spiffe-id', `spiffe://${TD}/cli-${i}`, '--out-dir', out, '--socket', td.adminSocket], td.env);
        expect(r.code, r.stderr).toBe(0);
      }
      for (let i = 0; i < 2; i++) {
        const r = cli(['jwt', 'mint', '--spiffe-id', `spiffe://${TD}/cli-jwt`, '--audience', 'prom', '--socket', td.adminSocket], td.env);
        expect(r.code, r.stderr).toBe(0);
      }
      // A refused mint is counted under its error code, not as an issued SVID.
      const refused = cli(['jwt', 'mint', '--spiffe-id', 'spiffe://other.test/x', '--audience', 'prom', '--socket', td.adminSocket], td.env);
      expect(refused.code).toBe(1);
      const x509 = await eventually('anchorage_svids_issued_total{type="x509",result="success"}', (s) => s[0]?.value[1] === '6');
      expect(x509.map((s) => s.value[1])).toEqual(['6']);
      const jwt = await eventually('anchorage_svids_issued_total{type="jwt"}', (s) => s.length === 2);
      expect(Object.fromEntries(jwt.map((s) => [s.metric.result, s.value[1]]))).toEqual({ success: '2', invalid_argument: '1' });
      const hist = await query('anchorage_svid_issuance_duration_seconds_count{type="x509",result="success"}');
      expect(hist.map((s) => s.value[1])).toEqual(['6']);
      const attest = await query('anchorage_node_attestations_total');
      expect(attest.map((s) => [s.metric.attestor, s.metric.result, s.value[1]])).toEqual([['join_token', 'success', '1']]);
    });

    it('holds the same bundle sequence for the agent as for the server, the one `bundle show` prints', async () => {
      const shown = cliJson<{ sequence: number }>(['bundle', 'show']);
      const server = await eventually('anchorage_bundle_sequence', (s) => s.length === 1);
      const agent = await eventually('anchorage_agent_bundle_sequence', (s) => s.length === 1);
      expect(Number(server[0]!.value[1])).toBe(shown.sequence);
      expect(Number(agent[0]!.value[1])).toBe(shown.sequence);
    });

    it('holds the agent SVID notAfter the server recorded, the workload SVID expiry and a sync lag of 0', async () => {
      const agents = cliJson<Array<{ spiffe_id: string; cert_not_after: number }>>(['agent', 'list']);
      const svid = await eventually('anchorage_agent_svid_not_after_timestamp_seconds', (s) => s.length === 1);
      expect(Number(svid[0]!.value[1])).toBe(agents.find((a) => a.spiffe_id === td.agentId)!.cert_not_after);
      const soonest = await query('anchorage_agent_workload_svid_soonest_not_after_timestamp_seconds');
      expect(soonest).toHaveLength(1);
      expect(Number(soonest[0]!.value[1])).toBeGreaterThan(Date.now() / 1000 + 3000); // 1h SVIDs
      expect((await query('anchorage_agent_sync_lag_seconds')).map((s) => s.value[1])).toEqual(['0']);
      expect((await query('anchorage_agent_workload_svids')).map((s) => s.value[1])).toEqual(['1']);
    });

    it('holds a federated authority\'s notAfter and its bundle\'s age', async () => {
      const partner = await makeRoot('partner.test');
      const doc = new SpiffeBundle(TrustDomain.parse('partner.test'), { x509Authorities: [partner.der], refreshHint: 300 }).marshal();
      const file = writeFile(join(dir.dir, 'partner.json'), doc);
      const r = cli(['bundle', 'set', '--trust-domain', 'partner.test', '--file', file, '--socket', td.adminSocket], td.env);
      expect(r.code, r.stderr).toBe(0);
      const got = await eventually('anchorage_federated_authority_not_after_timestamp_seconds', (s) => s.length === 1);
      expect(got.map((s) => [s.metric.trust_domain, s.metric.id, Number(s.value[1])])).toEqual([['partner.test', fingerprint(partner.der), notAfterOf(partner.der)]]);
      const age = await query('anchorage_federated_bundle_age_seconds');
      expect(age.map((s) => [s.metric.trust_domain, s.metric.source])).toEqual([['partner.test', 'static']]);
      expect(Number(age[0]!.value[1])).toBeLessThan(120);
      expect((await query('anchorage_federated_bundle_refresh_hint_seconds')).map((s) => s.value[1])).toEqual(['300']);
    });

    it('counts Workload API calls by RPC and status, and a health check through the real socket', async () => {
      const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${td.workloadSocket}`, grpc.credentials.createInsecure());
      const noHeader = await new Promise<grpc.ServiceError | null>((resolve) => client.FetchJWTSVID({ audience: ['x'] }, (err) => resolve(err)));
      client.close();
      expect(noHeader?.code).toBe(grpc.status.INVALID_ARGUMENT);
      const calls = await eventually('anchorage_workload_api_calls_total{rpc="FetchJWTSVID"}', (s) => s.length === 1);
      expect(calls.map((s) => [s.metric.code, s.value[1]])).toEqual([['INVALID_ARGUMENT', '1']]);
      const health = new (loadHealthProto().grpc.health.v1.Health)(`unix://${td.workloadSocket}`, grpc.credentials.createInsecure());
      const res = await new Promise((resolve, reject) => health.Check({ service: '' }, (err, r) => (err ? reject(err) : resolve(r))));
      health.close();
      expect(res).toEqual({ status: 'SERVING' });
      const attests = await query('anchorage_workload_attestations_total');
      expect(attests.every((s) => s.metric.attestor === 'unix' && s.metric.result === 'success')).toBe(true);
    });

    it('holds the session pool of the token: four sessions, none waited for', async () => {
      const sessions = await query('sum by (token) (anchorage_hsm_sessions)');
      expect(sessions.map((s) => Number(s.value[1]))).toEqual([4]);
      expect((await query('anchorage_hsm_session_waiters')).map((s) => s.value[1])).toEqual(['0']);
      expect((await query('anchorage_ca_keys_usable')).map((s) => [s.metric.key_manager, s.value[1]])).toEqual([['pkcs11', '1']]);
      const signs = await query('anchorage_hsm_sign_duration_seconds_count{result="success"}');
      expect(Number(signs[0]!.value[1])).toBeGreaterThanOrEqual(8);
    });

    it('answers /ready on both listeners with the reasons', async () => {
      const server = await fetch(`http://127.0.0.1:${serverPort}/ready`);
      const text = await server.text();
      expect(server.status, text).toBe(200);
      expect(text).toMatch(/^ready\n/);
      expect(text).toContain('ok: datastore is writable');
      expect(text).toMatch(/ok: intermediate key "[^"]+" signs/);
      const agent = await fetch(`http://127.0.0.1:${agentPort}/ready`);
      const agentText = await agent.text();
      expect(agent.status, agentText).toBe(200);
      expect(agentText).toContain(`ok: bundle of ${TD}`);
      expect(await (await fetch(`http://127.0.0.1:${agentPort}/live`)).text()).toBe('live\n');
    });
  },
);
