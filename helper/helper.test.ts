import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync, readdirSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '../common/pem.js';
import { verifyJwtSvid } from '../spiffe/jwtsvid.js';
import { captureLogger } from '../test/helpers/log.js';
import { lacks } from '../test/helpers/needs.js';
import { canMount, mountSmallFs } from '../test/helpers/tmpfs.js';
import { Harness, waitFor } from '../test/helpers/workload-api-harness.js';
import { parseHelperConfig } from './config.js';
import { startHelper, type RunningHelper } from './helper.js';

/**
 * The helper in process against a real Workload API server (the agent's,
 * fed by an in-process CA): what it writes, when it reloads, and what it
 * does when the reload fails.
 */

const TD = 'helper.test';
const FED = 'fed.test';
const WEB = `spiffe://${TD}/web`;
const h = new Harness();
let n = 0;

beforeAll(() => h.setup([TD, FED]));
afterAll(() => h.close());

const pems = (ders: Iterable<Uint8Array>): string => [...ders].map((d) => toPem('CERTIFICATE', d)).join('');

async function start(address: string, extra: Record<string, unknown> = {}): Promise<{ helper: RunningHelper; dir: string; records: Array<Record<string, unknown>> }> {
  const cfg = parseHelperConfig({ agent_address: address, cert_dir: join(h.dir, `out${++n}`), retry_initial: '1s', retry_max: '2s', startup_timeout: '20s', ...extra }, 'helper.yaml', h.dir);
  const { logger, records } = captureLogger();
  const helper = await startHelper(cfg, logger);
  h.defer(() => helper.close());
  return { helper, dir: cfg.cert_dir, records };
}

/** The leaf of dir's svid.pem and whether svid_key.pem is its key, both read from one resolution of `current`. */
function readPair(dir: string): { serial: string; matches: boolean } {
  const gen = realpathSync(join(dir, 'current'));
  const cert = new X509Certificate(readFileSync(join(gen, 'svid.pem')));
  const key = createPrivateKey(readFileSync(join(gen, 'svid_key.pem')));
  const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: 'spki', format: 'der' }).toString('hex');
  return { serial: cert.serialNumber, matches: spki(cert.publicKey) === spki(createPublicKey(key)) };
}

/** A reload command: a shell script that appends a line to `log` and exits with the status in `status` (0 when missing). */
function reloadScript(name: string): { script: string; log: string; status: string } {
  const log = join(h.dir, `${name}.log`);
  const status = join(h.dir, `${name}.status`);
  const script = join(h.dir, `${name}.sh`);
  writeFileSync(script, `#!/bin/sh\necho "reload $*" >> ${log}\ns=$(cat ${status} 2>/dev/null || echo 0)\n[ "$s" = 0 ] || echo "not today: $s" >&2\nexit $s\n`, { mode: 0o755 });
  return { script, log, status };
}
const lines = (file: string): string[] => {
  try {
    return readFileSync(file, 'utf8').split('\n').map((l) => l.trimEnd()).filter(Boolean);
  } catch {
    return [];
  }
};

describe('anchorage helper (in process)', () => {
  it('writes the chain, key, bundle and federated bundles, then runs the reload command; every rotation again', async () => {
    const env = await h.startEnv(TD);
    const first = await env.addSelf(WEB, { federatesWith: [FED] });
    env.source.setFederatedBundle(h.ca(FED).ca.bundle());
    const r = reloadScript('rotate');
    const { dir } = await start(env.address, { cmd: r.script, cmd_args: ['now'] });
    expect(readFileSync(join(dir, 'svid.pem'), 'utf8')).toBe(pems(first.chain));
    expect(readPair(dir).matches).toBe(true);
    expect(readFileSync(join(dir, 'bundle.pem'), 'utf8')).toBe(pems(h.ca(TD).ca.bundle().x509.authorities()));
    expect(readFileSync(join(dir, 'federated', `${FED}.pem`), 'utf8')).toBe(pems(h.ca(FED).ca.bundle().x509.authorities()));
    expect(statSync(join(dir, 'current', 'svid_key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'current', 'svid.pem')).mode & 0o777).toBe(0o644);
    expect(statSync(join(dir, 'current', 'bundle.pem')).mode & 0o777).toBe(0o644);
    await waitFor(() => lines(r.log).length === 1, 'the first reload');
    expect(lines(r.log)).toEqual(['reload now']);

    for (let i = 2; i <= 3; i++) {
      const rotated = await env.source.rotate(WEB);
      await waitFor(() => lines(r.log).length === i, `reload ${i}`);
      expect(readFileSync(join(dir, 'svid.pem'), 'utf8')).toBe(pems(rotated.chain));
      expect(readPair(dir)).toEqual({ serial: new X509Certificate(rotated.chain[0]!).serialNumber, matches: true });
    }
  });

  it('a failing reload command is logged and retried with backoff; the files stay correct meanwhile', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const r = reloadScript('fails');
    writeFileSync(r.status, '3');
    const { dir, records, helper } = await start(env.address, { cmd: r.script });
    await waitFor(() => lines(r.log).length >= 2, 'a retried reload', 20_000);
    const failed = records.filter((x) => x.msg === 'helper: reload failed; the files are in place, retrying');
    expect(failed[0]).toMatchObject({ level: 50, err: `helper: reload command ${JSON.stringify(r.script)} exited with status 3: not today: 3` });
    expect(helper.reloader.failures).toBeGreaterThanOrEqual(1);
    expect(readPair(dir).matches).toBe(true);
    // A rotation while it fails: the new files are written at once, and the retry reloads them.
    const rotated = await env.source.rotate(WEB);
    await waitFor(() => readPair(dir).serial === new X509Certificate(rotated.chain[0]!).serialNumber, 'the rotated files');
    expect(readPair(dir).matches).toBe(true);
    writeFileSync(r.status, '0');
    await waitFor(() => records.some((x) => x.msg === 'helper: reload done'), 'a successful retry', 20_000);
  }, 40_000);

  it('signals the pid in pid_file_name with renew_signal; refuses a pid file that is a link or holds no pid', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    // A real process that counts the SIGUSR1s it gets.
    const child = spawn(process.execPath, ['-e', "let n=0;process.on('SIGUSR1',()=>console.log(`usr1 ${++n}`));setInterval(()=>{},1000);console.log('up')"], { stdio: ['ignore', 'pipe', 'inherit'] });
    h.defer(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await waitFor(() => out.includes('up'), 'the signalled process');
    const pidFile = join(h.dir, 'server.pid');
    writeFileSync(pidFile, `${child.pid}\n`, { mode: 0o644 });
    await start(env.address, { pid_file_name: pidFile, renew_signal: 'SIGUSR1' });
    await waitFor(() => out.includes('usr1 1'), 'the first signal');
    await env.source.rotate(WEB);
    await waitFor(() => out.includes('usr1 2'), 'the signal after a rotation');

    const link = join(h.dir, 'link.pid');
    symlinkSync(pidFile, link);
    const viaLink = await start(env.address, { pid_file_name: link, renew_signal: 'SIGUSR1' });
    await waitFor(() => viaLink.records.some((x) => x.msg === 'helper: reload failed; the files are in place, retrying'), 'the refused link');
    expect(viaLink.records.find((x) => x.err)!.err).toBe(`helper: cannot read pid_file_name ${link}: it is a symbolic link`);
    const garbage = join(h.dir, 'garbage.pid');
    writeFileSync(garbage, '-1\n', { mode: 0o644 });
    const bad = await start(env.address, { pid_file_name: garbage, renew_signal: 'SIGUSR1' });
    await waitFor(() => bad.records.some((x) => x.err !== undefined), 'the refused pid file');
    expect(bad.records.find((x) => x.err)!.err).toBe(`helper: pid_file_name ${garbage} does not hold a process id: "-1\\n"`);
    expect(out).not.toContain('usr1 3');
  });

  it('writes JWT-SVIDs for the configured audiences, 0600, in the same generation', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const { dir } = await start(env.address, { jwt_svids: [{ jwt_audience: 'https://db.internal', jwt_extra_audiences: ['https://cache.internal'], jwt_svid_file_name: 'db.jwt' }] });
    const token = readFileSync(join(dir, 'db.jwt'), 'utf8');
    const verified = await verifyJwtSvid(token, (td) => (td.name === TD ? h.ca(TD).ca.bundle().jwt : undefined), ['https://cache.internal']);
    expect(verified.spiffeId.toString()).toBe(WEB);
    expect([...verified.audience].sort()).toEqual(['https://cache.internal', 'https://db.internal']);
    expect(statSync(join(dir, 'current', 'db.jwt')).mode & 0o777).toBe(0o600);
  });

  it('refreshes a JWT-SVID before it expires, in a new generation, without a reload', async () => {
    const env = await h.startEnv(TD);
    env.source.jwtTtl = 4;
    await env.addSelf(WEB);
    const r = reloadScript('jwt');
    const { dir, helper } = await start(env.address, { cmd: r.script, jwt_svids: [{ jwt_audience: 'https://db.internal', jwt_svid_file_name: 'db.jwt' }] });
    const exp = (t: string): number => (JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
    const first = readFileSync(join(dir, 'db.jwt'), 'utf8');
    const gen = helper.generation;
    await waitFor(() => readFileSync(join(dir, 'db.jwt'), 'utf8') !== first, 'a refreshed JWT-SVID', 20_000);
    const second = readFileSync(join(dir, 'db.jwt'), 'utf8');
    expect(exp(second)).toBeGreaterThan(exp(first));
    // Still valid when it was replaced: fetched at half its remaining life, not after it expired.
    const verified = await verifyJwtSvid(second, (td) => (td.name === TD ? h.ca(TD).ca.bundle().jwt : undefined), ['https://db.internal']);
    expect(verified.spiffeId.toString()).toBe(WEB);
    expect(helper.generation).not.toBe(gen);
    expect(readPair(dir).matches).toBe(true);
    expect(lines(r.log)).toEqual(['reload']);
  }, 30_000);

  it('a new federated bundle is a new generation and a reload; include_federated_domains and add_intermediates_to_bundle shape bundle.pem', async () => {
    const env = await h.startEnv(TD);
    const svid = await env.addSelf(WEB, { federatesWith: [FED] });
    const r = reloadScript('federation');
    const { dir } = await start(env.address, { cmd: r.script, include_federated_domains: true, add_intermediates_to_bundle: true });
    await waitFor(() => lines(r.log).length === 1, 'the first reload');
    const own = h.ca(TD).ca.bundle().x509.authorities();
    expect(readFileSync(join(dir, 'svid.pem'), 'utf8')).toBe(pems([svid.chain[0]!]));
    expect(readFileSync(join(dir, 'bundle.pem'), 'utf8')).toBe(pems([...own, ...svid.chain.slice(1)]));
    expect(readdirSync(join(dir, 'federated'))).toEqual([]);
    env.source.setFederatedBundle(h.ca(FED).ca.bundle());
    await waitFor(() => lines(r.log).length === 2, 'the reload for the federated bundle');
    const fed = h.ca(FED).ca.bundle().x509.authorities();
    expect(readFileSync(join(dir, 'federated', `${FED}.pem`), 'utf8')).toBe(pems(fed));
    expect(readFileSync(join(dir, 'bundle.pem'), 'utf8')).toBe(pems([...own, ...svid.chain.slice(1), ...fed]));
  });

  it('kills a reload command that outlives cmd_timeout and counts it as failed', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const { records } = await start(env.address, { cmd: '/bin/sleep', cmd_args: ['30'], cmd_timeout: '1s' });
    await waitFor(() => records.some((x) => x.err !== undefined), 'the timed-out reload', 20_000);
    expect(records.find((x) => x.err)!.err).toBe('helper: reload command "/bin/sleep" did not finish within 1000 ms and was killed');
    const missing = await start(env.address, { cmd: join(h.dir, 'no-such-command') });
    await waitFor(() => missing.records.some((x) => x.err !== undefined), 'the reload that cannot start');
    expect(missing.records.find((x) => x.err)!.err).toBe(`helper: reload command ${JSON.stringify(join(h.dir, 'no-such-command'))} could not start: ENOENT`);
  }, 30_000);

  it.skipIf(lacks(!canMount, 'root, to mount a small tmpfs'))('on a full disk keeps the previous files in place, and writes the rotated ones once there is room', async () => {
    const fs = mountSmallFs(256 * 1024);
    h.defer(() => fs.unmount());
    const env = await h.startEnv(TD);
    const first = await env.addSelf(WEB);
    const r = reloadScript('full');
    const { dir, records } = await start(env.address, { cert_dir: join(fs.dir, 'certs'), cmd: r.script });
    await waitFor(() => lines(r.log).length === 1, 'the first reload');
    fs.fill();
    const rotated = await env.source.rotate(WEB);
    await waitFor(() => records.some((x) => x.msg === 'helper: cannot write the new files; the previous ones stay in place, retrying'), 'the refused write');
    expect(records.find((x) => x.retry_in_ms !== undefined && String(x.err).includes('ENOSPC'))).toBeDefined();
    expect(readPair(dir)).toEqual({ serial: new X509Certificate(first.chain[0]!).serialNumber, matches: true });
    expect(readdirSync(dir).filter((e) => e.startsWith('.gen-'))).toHaveLength(1);
    expect(lines(r.log)).toHaveLength(1);
    fs.drain();
    await waitFor(() => lines(r.log).length === 2, 'the reload after the retried write', 20_000);
    expect(readPair(dir)).toEqual({ serial: new X509Certificate(rotated.chain[0]!).serialNumber, matches: true });
  }, 30_000);

  it('with daemon_mode false writes once, runs the command once and stops', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const r = reloadScript('once');
    const { dir } = await start(env.address, { daemon_mode: false, cmd: r.script });
    expect(lines(r.log)).toEqual(['reload']);
    expect(readPair(dir).matches).toBe(true);
    // Its one reload failing is the run failing (exit 1 from the CLI), not retried.
    writeFileSync(r.status, '2');
    await expect(start(env.address, { daemon_mode: false, cmd: r.script })).rejects.toThrow(`helper: reload command ${JSON.stringify(r.script)} exited with status 2: not today: 2`);
    expect(lines(r.log)).toEqual(['reload', 'reload']);
  });

  it('gives up at start with the last error when no SVID comes (missing socket, no entry, no such hint)', async () => {
    const missing = join(h.dir, 'nowhere', 'api.sock');
    await expect(start(`unix://${missing}`, { startup_timeout: '1s' })).rejects.toThrow(
      `helper: there is no Workload API socket at ${missing} (is the agent running, and is agent_address right?): workloadapi: X509Source: no update from the Workload API within 1000 ms; last error: workloadapi: FetchX509SVID: UNAVAILABLE: No connection established`,
    );
    const env = await h.startEnv(TD);
    await expect(start(env.address, { startup_timeout: '1s' })).rejects.toThrow('last error: workloadapi: FetchX509SVID: PERMISSION_DENIED: workloadapi: no identity issued');
    await env.addSelf(WEB, { hint: 'main' });
    await expect(start(env.address, { hint: 'other' })).rejects.toThrow('helper: no SVID of this workload has the hint "other" (it has: "main")');
  });
});
