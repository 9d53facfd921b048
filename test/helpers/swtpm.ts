// Real software TPMs for the tpm node attestor's tests and bench: a local EK
// CA made with openssl, and per simulated node one swtpm whose EK
// certificates (NV 0x01c00002 RSA, 0x01c00016 ECC) swtpm_setup issues under
// that CA, through a swtpm-localca config of the test's own (nothing touches
// /var/lib/swtpm-localca). swtpm runs as a daemon on two free ports (control = server + 1, where
// the swtpm TCTI looks for it) with
// `--flags not-need-init,startup-clear` (without them every command answers
// 0x101); it changes to /, so every path given to it is absolute.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { makeOpensslCa, type OpensslCa } from './openssl-ca.js';
import { freePort } from './process.js';

/** True when swtpm, swtpm_setup, openssl and tpm2-tools are all on PATH. */
export function haveSwtpm(): boolean {
  return ['swtpm', 'swtpm_setup', 'swtpm_localca', 'openssl', 'tpm2_createek', 'tpm2_quote'].every((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
}

/** An EK CA: a CA made with openssl, and the swtpm_setup / swtpm_localca configs that issue EK certificates under it. */
export type EkCa = OpensslCa;

export function makeEkCa(parent: string, name: string): EkCa {
  const ca = makeOpensslCa(parent, name);
  const { dir } = ca;
  writeFileSync(join(dir, 'certserial'), '1\n');
  writeFileSync(
    join(dir, 'localca.conf'),
    `statedir = ${dir}\nsigningkey = ${ca.keyFile}\nissuercert = ${ca.certFile}\ncertserial = ${join(dir, 'certserial')}\n`,
  );
  writeFileSync(join(dir, 'localca.options'), '--platform-manufacturer Anchorage\n--platform-version 2.1\n--platform-model test\n');
  writeFileSync(
    join(dir, 'swtpm_setup.conf'),
    `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${join(dir, 'localca.conf')}\n` +
      `create_certs_tool_options = ${join(dir, 'localca.options')}\nactive_pcr_banks = sha256\n`,
  );
  return ca;
}

/** One running swtpm. */
export interface Swtpm {
  /** The tpm2-tools TCTI string for it. */
  tcti: string;
  /** Stops the daemon (same state dir: start it again with {@link startSwtpm}). */
  stop(): void;
}

/** Manufactures a TPM in `stateDir` with EK certificates from `ca` (swtpm_setup, once per state dir). */
export function manufactureTpm(stateDir: string, ca: EkCa): void {
  const abs = resolve(stateDir);
  mkdirSync(abs, { recursive: true, mode: 0o700 });
  execFileSync(
    'swtpm_setup',
    ['--tpm2', '--tpmstate', abs, '--create-ek-cert', '--create-platform-cert', '--config', join(ca.dir, 'swtpm_setup.conf'), '--overwrite'],
    { stdio: 'ignore' },
  );
}

/** A free port whose next one is free too: the swtpm TCTI finds the control port at port + 1. */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port >= 65535) continue;
    const ok = await new Promise<boolean>((done) => {
      const srv = createServer();
      srv.once('error', () => done(false));
      srv.listen(port + 1, '127.0.0.1', () => srv.close(() => done(true)));
    });
    if (ok) return port;
  }
}

/** Starts swtpm on the TPM state in `stateDir`. */
export async function startSwtpm(stateDir: string): Promise<Swtpm> {
  const abs = resolve(stateDir);
  const port = await freePortPair();
  const ctrl = port + 1;
  const pidFile = join(abs, 'swtpm.pid');
  execFileSync('swtpm', [
    'socket', '--tpm2', '--tpmstate', `dir=${abs}`,
    '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
    '--flags', 'not-need-init,startup-clear', '--daemon', '--pid', `file=${pidFile}`,
  ], { stdio: 'ignore' });
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    stop() {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) execFileSync('sleep', ['0.01']);
    },
  };
}

/** Extends a PCR of the TPM behind `tcti` with `data` (tpm2_pcrevent hashes it into every active bank). */
export function extendPcr(tcti: string, index: number, data: string, dir: string): void {
  const file = join(dir, `event-${index}.txt`);
  writeFileSync(file, data);
  execFileSync('tpm2_pcrevent', [String(index), file], { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, stdio: 'ignore' });
}
