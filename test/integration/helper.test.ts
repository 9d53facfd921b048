import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '../../common/pem.js';
import { makeCert } from '../helpers/pki.js';
import { BIN, cli, freePort, REPO, startHelperProcess, tempDir, writeFile, type AnchorageProcess } from '../helpers/process.js';
import { lacks } from '../helpers/needs.js';
import { startTrustDomain, type RealTrustDomain } from '../helpers/trust-domain.js';
import { NGINX, nginxConf, servedCertificate, startNginx, stopNginx } from '../helpers/nginx.js';

/**
 * `anchorage helper` as operators run it: the real CLI, a real trust domain
 * (server on SoftHSM2, agent), and the real Debian nginx serving mutual TLS
 * from the helper's files and reloaded by it (`nginx -s reload`) on every
 * rotation, while curl, holding another SVID from a second helper, keeps
 * sending requests.
 */

const CURL = '/usr/bin/curl';
const NJS = '/usr/lib/nginx/modules/ngx_http_js_module.so';
const TD = 'helper-it.test';
const NGINX_ID = `spiffe://${TD}/nginx`;
const CLIENT_ID = `spiffe://${TD}/client`;
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

let tmp: { dir: string; cleanup: () => void };

beforeAll(() => {
  tmp = tempDir('anchorage-helper-it-');
  chmodSync(tmp.dir, 0o755);
});
afterAll(() => tmp?.cleanup());

/** A helper.yaml in the temp dir (readable by every uid, for the run as nobody). */
function helperYaml(name: string, body: string): string {
  return writeFile(join(tmp.dir, `${name}.yaml`), body, 0o644);
}

describe('anchorage helper: bad input', () => {
  const SOCKET = 'unix:///nonexistent/anchorage/api.sock';

  it('refuses unknown keys and bad signal names with exit 1 and one line', () => {
    const unknown = helperYaml('unknown', `agent_address: ${SOCKET}\ncert_dir: ${join(tmp.dir, 'u')}\ncertdir: x\n`);
    const r = cli(['helper', '-c', unknown]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`anchorage: config: ${unknown}: (top level): unknown key(s): certdir\n`);
    const signal = helperYaml('signal', `agent_address: ${SOCKET}\ncert_dir: ${join(tmp.dir, 'u')}\npid_file_name: /run/nginx.pid\nrenew_signal: SIGRELOAD\n`);
    const s = cli(['helper', '-c', signal]);
    expect(s.code).toBe(1);
    expect(s.stderr).toBe(`anchorage: config: ${signal}: renew_signal: "SIGRELOAD" is not a signal name such as SIGHUP or SIGUSR1 (SIGKILL and SIGSTOP reload nothing)\n`);
    expect(cli(['helper']).stderr).toContain('anchorage: --config is required');
  });

  it('refuses a cert_dir that is a symbolic link, before connecting anywhere', () => {
    const real = join(tmp.dir, 'real-certs');
    mkdirSync(real, { mode: 0o700 });
    const link = join(tmp.dir, 'linked-certs');
    symlinkSync(real, link);
    const r = cli(['helper', '-c', helperYaml('link', `agent_address: ${SOCKET}\ncert_dir: ${link}\n`)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`anchorage: helper: cert_dir ${link} is a symbolic link; give the real directory\n`);
  });

  it.skipIf(lacks(!isRoot, 'root, to chown directories and run the helper as another uid'))('refuses a cert_dir owned by another uid, and one it cannot write to', () => {
    const foreign = join(tmp.dir, 'foreign-certs');
    mkdirSync(foreign, { mode: 0o700 });
    chownSync(foreign, 12345, 12345);
    const r = cli(['helper', '-c', helperYaml('foreign', `agent_address: ${SOCKET}\ncert_dir: ${foreign}\n`)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`anchorage: helper: cert_dir ${foreign} is owned by uid 12345, not by uid 0 that runs the helper; chown it or choose another cert_dir\n`);

    // Root writes anywhere, so the helper runs as nobody over its own read-only directory.
    const readOnly = join(tmp.dir, 'read-only-certs');
    mkdirSync(readOnly, { mode: 0o500 });
    chmodSync(readOnly, 0o500);
    chownSync(readOnly, NOBODY, NOBODY);
    const cfg = helperYaml('read-only', `agent_address: ${SOCKET}\ncert_dir: ${readOnly}\n`);
    const ro = spawnSync(process.execPath, [BIN, 'helper', '-c', cfg], { uid: NOBODY, gid: NOBODY, cwd: '/', encoding: 'utf8', timeout: 60_000 });
    expect(ro.status).toBe(1);
    expect(ro.stderr).toBe(`anchorage: helper: cannot write to cert_dir ${readOnly}: EACCES\n`);
  });

  it('gives up after startup_timeout when there is no Workload API socket, naming it', () => {
    const certs = join(tmp.dir, 'no-agent-certs');
    const r = cli(['helper', '-c', helperYaml('no-agent', `agent_address: ${SOCKET}\ncert_dir: ${certs}\nstartup_timeout: 1s\n`)]);
    expect(r.code).toBe(1);
    // The last line; the warnings before it are the JSON log of each attempt.
    expect(r.stderr).toMatch(
      /^anchorage: helper: there is no Workload API socket at \/nonexistent\/anchorage\/api\.sock \(is the agent running, and is agent_address right\?\): workloadapi: X509Source: no update from the Workload API within 1000 ms; last error: workloadapi: FetchX509SVID: UNAVAILABLE: .*connect ENOENT \/nonexistent\/anchorage\/api\.sock/m,
    );
    // Nothing was written.
    expect(existsSync(join(certs, 'current'))).toBe(false);
  });
});

interface CurlResult {
  code: number | null;
  out: string;
  err: string;
}

function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    const child = spawn(CURL, ['-sS', '--max-time', '10', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

describe.skipIf(lacks(!existsSync(NGINX) || !existsSync(CURL), 'nginx (/usr/sbin/nginx) and curl'))('nginx serving mutual TLS from the helper\'s files', () => {
  let td: RealTrustDomain;
  let nginxHelper: AnchorageProcess;
  let clientHelper: AnchorageProcess;
  let nginx: ChildProcess | undefined;
  let port: number;
  let prefix: string;
  let nginxCerts: string;
  let clientCerts: string;

  beforeAll(async () => {
    const tdDir = join(tmp.dir, 'td');
    mkdirSync(tdDir, { mode: 0o755 });
    // X509-SVIDs live 30 s, so the agent rotates them about every 15 s.
    td = await startTrustDomain(tdDir, {
      trustDomain: TD,
      x509SvidTtl: '30s',
      entries: [
        { spiffeId: NGINX_ID, selectors: ['unix:uid:0'], hint: 'nginx', dnsNames: ['localhost'] },
        { spiffeId: CLIENT_ID, selectors: ['unix:uid:0'], hint: 'client' },
      ],
    });
    port = await freePort();
    prefix = join(tmp.dir, 'nginx');
    nginxCerts = join(tmp.dir, 'nginx-certs');
    clientCerts = join(tmp.dir, 'client-certs');
    const conf = nginxConf(prefix, port, nginxCerts, { location: 'return 200 "$ssl_client_verify $ssl_client_s_dn\\n";' });
    nginxHelper = await startHelperProcess(
      helperYaml(
        'nginx-helper',
        `agent_address: ${td.endpoint}
cert_dir: ${nginxCerts}
hint: nginx
cmd: ${NGINX}
cmd_args: ["-p", "${prefix}", "-c", "${conf}", "-e", "${prefix}/error.log", "-s", "reload"]
retry_max: 2s
`,
      ),
      join(nginxCerts, 'svid.pem'),
      td.env,
    );
    clientHelper = await startHelperProcess(helperYaml('client-helper', `agent_address: ${td.endpoint}\ncert_dir: ${clientCerts}\nhint: client\n`), join(clientCerts, 'svid.pem'), td.env);
    // nginx starts from the files the helper wrote; until then the helper's reloads fail and are retried.
    nginx = await startNginx(prefix, conf, port, clientCerts);
  }, 120_000);

  afterAll(async () => {
    await stopNginx(nginx);
    await nginxHelper?.kill('SIGTERM');
    await clientHelper?.kill('SIGTERM');
    await td?.close();
  });

  it('curl with another SVID gets every request through while nginx is reloaded across two rotations, and the served certificate changes', async () => {
    const served = async (): Promise<X509Certificate> => servedCertificate(port, realpathSync(join(clientCerts, 'current')));
    const first = await served();
    expect(first.subjectAltName).toBe(`URI:${NGINX_ID}, DNS:localhost`);
    const serials = new Set([first.serialNumber]);

    let running = true;
    const results: CurlResult[] = [];
    const loop = (async () => {
      while (running) {
        // One resolution of `current` per request: the key and certificate curl reads are one generation's.
        const gen = realpathSync(join(clientCerts, 'current'));
        results.push(
          await curl([
            '--cert', join(gen, 'svid.pem'), '--key', join(gen, 'svid_key.pem'), '--cacert', join(gen, 'bundle.pem'),
            '--resolve', `localhost:${port}:127.0.0.1`, '-w', ' %{http_code}', `https://localhost:${port}/`,
          ]),
        );
      }
    })();
    // Two rotations of nginx's SVID: three serials served in turn.
    for (const deadline = Date.now() + 120_000; serials.size < 3 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 500));
      serials.add((await served()).serialNumber);
    }
    running = false;
    await loop;

    expect(serials.size).toBeGreaterThanOrEqual(3);
    const failed = results.filter((r) => r.code !== 0 || r.out !== 'SUCCESS O=Anchorage\n 200');
    expect(failed).toEqual([]);
    expect(results.length).toBeGreaterThan(20);

    // Every reload was nginx's own: SIGHUP received, new configuration loaded, no [emerg] (a key that did not fit its certificate would be one).
    const errorLog = readFileSync(join(prefix, 'error.log'), 'utf8');
    expect(errorLog).not.toMatch(/\[emerg\]/);
    expect(errorLog.match(/signal 1 \(SIGHUP\) received/g)!.length).toBeGreaterThanOrEqual(3);
    // The reload before nginx was up failed, was logged, and was retried.
    const log = nginxHelper.log().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log.find((l) => l.msg === 'helper: reload failed; the files are in place, retrying')?.err).toMatch(/^helper: reload command "\/usr\/sbin\/nginx" exited with status 1: .*nginx\.pid" failed \(2: No such file or directory\)/);

    console.log(`helper: ${results.length} requests, 0 failed; served serials ${[...serials].join(', ')} (figures: npm run bench -- helper)`);
  }, 180_000);

  it('nginx refuses a client without a certificate, or with one the trust domain did not issue', async () => {
    const gen = realpathSync(join(clientCerts, 'current'));
    const base = ['--cacert', join(gen, 'bundle.pem'), '--resolve', `localhost:${port}:127.0.0.1`, '-w', ' %{http_code}', `https://localhost:${port}/`];
    const none = await curl(base);
    expect(none.out).toMatch(/No required SSL certificate was sent[\s\S]* 400$/);
    const stranger = await makeCert({ subject: 'CN=stranger', uris: [CLIENT_ID] });
    const certFile = writeFile(join(tmp.dir, 'stranger.pem'), toPem('CERTIFICATE', stranger.der));
    const keyFile = writeFile(join(tmp.dir, 'stranger-key.pem'), toPem('PRIVATE KEY', Buffer.from(await crypto.subtle.exportKey('pkcs8', stranger.keys.privateKey))));
    const forged = await curl(['--cert', certFile, '--key', keyFile, ...base]);
    expect(forged.out).toMatch(/The SSL certificate error[\s\S]* 400$/);
  });

  it.skipIf(lacks(!existsSync(NJS), 'the nginx njs module (Debian libnginx-mod-http-js)'))('with njs (examples/nginx/spiffe-id.js), nginx authorizes the client by SPIFFE ID', async () => {
    const njsPrefix = join(tmp.dir, 'nginx-njs');
    const njsPort = await freePort();
    const conf = nginxConf(njsPrefix, njsPort, nginxCerts, {
      main: `load_module ${NJS};`,
      http: `js_import spiffe from ${join(REPO, 'examples', 'nginx', 'spiffe-id.js')};
  js_set $ssl_client_spiffe_id spiffe.clientId;
  map $ssl_client_spiffe_id $client_allowed { "${CLIENT_ID}" 1; default 0; }`,
      location: 'if ($client_allowed = 0) { return 403 "refused: $ssl_client_spiffe_id\\n"; } return 200 "welcome $ssl_client_spiffe_id\\n";',
    });
    const njsNginx = await startNginx(njsPrefix, conf, njsPort, clientCerts);
    try {
      const ask = (certs: string) => {
        const gen = realpathSync(join(certs, 'current'));
        return curl([
          '--cert', join(gen, 'svid.pem'), '--key', join(gen, 'svid_key.pem'), '--cacert', join(realpathSync(join(clientCerts, 'current')), 'bundle.pem'),
          '--resolve', `localhost:${njsPort}:127.0.0.1`, '-w', ' %{http_code}', `https://localhost:${njsPort}/`,
        ]);
      };
      expect((await ask(clientCerts)).out).toBe(`welcome ${CLIENT_ID}\n 200`);
      // A valid SVID of the same trust domain, but not the one allowed: nginx's own.
      expect((await ask(nginxCerts)).out).toBe(`refused: ${NGINX_ID}\n 403`);
    } finally {
      await stopNginx(njsNginx);
    }
  });

  it('a second helper on the same cert_dir is refused while the first runs', () => {
    const r = cli(['helper', '-c', helperYaml('second', `agent_address: ${td.endpoint}\ncert_dir: ${nginxCerts}\n`)], td.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`anchorage: helper: another helper (pid ${nginxHelper.child.pid}) is using ${nginxCerts}\n`);
  });

  it('a helper stops on SIGTERM with exit 0 and leaves the last generation in place', async () => {
    const gen = realpathSync(join(clientCerts, 'current'));
    expect(await clientHelper.kill('SIGTERM')).toBe(0);
    expect(realpathSync(join(clientCerts, 'current'))).toBe(gen);
    expect(readFileSync(join(clientCerts, 'svid_key.pem'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(clientHelper.log()).not.toMatch(/BEGIN PRIVATE KEY|eyJ/);
  });
});
