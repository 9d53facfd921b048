// The real Debian nginx for the helper's tests and bench: a prefix of its own
// (pid file, logs, temp paths, a free port) serving mutual TLS from the files
// `anchorage helper` writes, run in the foreground so the caller owns it.
import { spawn, type ChildProcess } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { writeFile } from './process.js';

export const NGINX = '/usr/sbin/nginx';

/** An nginx prefix with a config serving mutual TLS on `port` from the helper's files in `certs`. */
export function nginxConf(prefix: string, port: number, certs: string, opts: { main?: string; http?: string; location: string }): string {
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  return writeFile(
    join(prefix, 'nginx.conf'),
    `${opts.main ?? ''}
daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log notice;
events { worker_connections 64; }
http {
  access_log ${prefix}/access.log;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  ${opts.http ?? ''}
  server {
    listen 127.0.0.1:${port} ssl;
    server_name localhost;
    ssl_certificate ${certs}/svid.pem;
    ssl_certificate_key ${certs}/svid_key.pem;
    ssl_client_certificate ${certs}/bundle.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    location / { ${opts.location} }
  }
}
`,
    0o644,
  );
}

/** The nginx master in the foreground of its own prefix, once it answers TLS on `port`; stopped with SIGQUIT. */
export async function startNginx(prefix: string, conf: string, port: number, clientCerts: string): Promise<ChildProcess> {
  const child = spawn(NGINX, ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (d) => process.stderr.write(`nginx: ${d}`));
  for (const deadline = Date.now() + 30_000; ; ) {
    try {
      await servedCertificate(port, realpathSync(join(clientCerts, 'current')));
      return child;
    } catch (err) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`nginx did not come up: ${String(err)}\n${readFileSync(join(prefix, 'error.log'), 'utf8')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function stopNginx(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGQUIT');
  await gone;
}

/** The certificate nginx serves now, through a TLS handshake with the client's SVID. */
export function servedCertificate(port: number, clientGen: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      cert: readFileSync(join(clientGen, 'svid.pem')),
      key: readFileSync(join(clientGen, 'svid_key.pem')),
      ca: readFileSync(join(clientGen, 'bundle.pem')),
      checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (cert) resolve(cert);
      else reject(new Error('no server certificate'));
    });
    socket.once('error', reject);
  });
}
