import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { NGINX, nginxConf, servedCertificate, startNginx, stopNginx } from '../test/helpers/nginx.js';
import { freePort, startHelperProcess, tempDir, writeFile, type AnchorageProcess } from '../test/helpers/process.js';
import { startTrustDomain, type RealTrustDomain } from '../test/helpers/trust-domain.js';
import { percentile, round, rssMb } from './stats.js';

/**
 * `anchorage helper` in front of the real nginx, on a real trust domain
 * (server on SoftHSM2, agent). Each rotation is an entry change at the
 * server, which has the agent mint a new SVID at once; measured from that
 * call to
 * - the new generation written (the helper's log),
 * - `nginx -s reload` done (the helper's log),
 * - nginx serving the new certificate (TLS handshakes until its serial shows),
 * and the helper's RSS afterwards.
 */

const TD = 'bench-helper.test';
const ROTATIONS = Number(process.env.BENCH_ROTATIONS ?? 100);

interface LogLine {
  time: number;
  msg: string;
  since_update_ms?: number;
}

function logLines(p: AnchorageProcess, msg: string): LogLine[] {
  return p
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.msg === msg);
}

async function until<T>(get: () => Promise<T | undefined> | T | undefined, what: string, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`bench helper: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const leafSerial = (certs: string): string => new X509Certificate(readFileSync(join(certs, 'svid.pem'))).serialNumber;
const stats = (xs: number[]) => ({ p50: round(percentile(xs, 50)), p99: round(percentile(xs, 99)), max: round(Math.max(...xs)) });

export async function benchHelper(): Promise<void> {
  if (!existsSync(NGINX)) throw new Error(`bench helper: needs nginx at ${NGINX} (scripts/setup.sh --test installs it)`);
  const uid = process.getuid?.() ?? 0;
  const tmp = tempDir('anchorage-bench-helper-');
  chmodSync(tmp.dir, 0o755);
  let td: RealTrustDomain | undefined;
  let helper: AnchorageProcess | undefined;
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  try {
    const tdDir = join(tmp.dir, 'td');
    mkdirSync(tdDir, { mode: 0o755 });
    td = await startTrustDomain(tdDir, { trustDomain: TD, entries: [{ spiffeId: `spiffe://${TD}/nginx`, selectors: [`unix:uid:${uid}`], dnsNames: ['localhost'] }] });
    const port = await freePort();
    const prefix = join(tmp.dir, 'nginx');
    const certs = join(tmp.dir, 'certs');
    const conf = nginxConf(prefix, port, certs, { location: 'return 200;' });
    const helperYaml = writeFile(
      join(tmp.dir, 'helper.yaml'),
      `agent_address: ${td.endpoint}\ncert_dir: ${certs}\ncmd: ${NGINX}\ncmd_args: ["-p", "${prefix}", "-c", "${conf}", "-e", "${prefix}/error.log", "-s", "reload"]\nretry_max: 2s\n`,
    );
    helper = await startHelperProcess(helperYaml, join(certs, 'svid.pem'), td.env);
    // nginx presents the helper's SVID as its certificate and, as the probe's client certificate, the same files.
    nginx = await startNginx(prefix, conf, port, certs);
    const h = helper;
    await until(() => (logLines(h, 'helper: reload done').length > 0 ? true : undefined), 'the first reload', 30_000);
    console.log(`bench helper: ${cpus().length} cores, ${ROTATIONS} rotations, nginx ${NGINX}`);

    const written: number[] = [];
    const reloaded: number[] = [];
    const inHelper: number[] = [];
    const served: number[] = [];
    // RSS along the way: growth with rotations would be a leak.
    const rssAt: Record<number, number> = { 0: round(rssMb(h.child.pid!), 1) };
    for (let i = 0; i < ROTATIONS; i++) {
      const reloadsBefore = logLines(h, 'helper: reload done').length;
      const serialBefore = leafSerial(certs);
      const t0 = Date.now();
      await td.rotate(0);
      const reload = await until(() => logLines(h, 'helper: reload done')[reloadsBefore], `reload ${i + 1}`, 30_000);
      const write = logLines(h, 'helper: wrote generation').at(-1)!;
      const serial = leafSerial(certs);
      if (serial === serialBefore) throw new Error('bench helper: a reload without a new certificate');
      await until(async () => ((await servedCertificate(port, join(certs, 'current'))).serialNumber === serial ? true : undefined), `nginx serving rotation ${i + 1}`, 30_000);
      served.push(Date.now() - t0);
      written.push(write.time - t0);
      reloaded.push(reload.time - t0);
      inHelper.push(reload.since_update_ms!);
      if ((i + 1) % 10 === 0) rssAt[i + 1] = round(rssMb(h.child.pid!), 1);
    }
    const result = {
      date: new Date().toISOString(),
      cores: cpus().length,
      rotations: ROTATIONS,
      rotation_to_files_written_ms: stats(written),
      rotation_to_reload_done_ms: stats(reloaded),
      rotation_to_nginx_serving_ms: stats(served),
      helper_update_to_reload_done_ms: stats(inHelper),
      helper_rss_mb_after_rotations: rssAt,
    };
    console.log(JSON.stringify(result, null, 2));
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/helper.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/helper.json');
  } catch (err) {
    if (helper) writeFileSync('/tmp/bench-helper.log', helper.log());
    console.error(`bench helper: failed; the helper's log is in /tmp/bench-helper.log${td ? td.diagnostics() : ''}`);
    throw err;
  } finally {
    await stopNginx(nginx);
    await helper?.kill('SIGTERM');
    await td?.close();
    tmp.cleanup();
  }
}
