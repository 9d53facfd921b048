import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian's softhsm2 package puts the PKCS#11 module. */
export const SOFTHSM_MODULE = process.env.ANCHORAGE_SOFTHSM_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';

export function softHsmAvailable(): boolean {
  return existsSync(SOFTHSM_MODULE);
}

export interface SoftHsmToken {
  /** Directory holding the token store and config; removed by cleanup(). */
  dir: string;
  /** Path of the softhsm2.conf that points at this token store. */
  conf: string;
  module: string;
  label: string;
  pin: string;
  soPin: string;
  /** Environment for child processes (SOFTHSM2_CONF set). */
  env: NodeJS.ProcessEnv;
  /** The token directory (directories.tokendir) that holds every token of this store. */
  tokensDir: string;
  /**
   * A token outage as a running process sees it: renames the token directory
   * away, so SoftHSM2 answers CKR_OBJECT_HANDLE_INVALID, empty finds and
   * CKR_GENERAL_ERROR until it is back and the module re-initialized.
   * Returns the function that brings it back (idempotent).
   */
  takeAway(): () => void;
  /** Adds another token to the same store (same conf). */
  addToken(label: string, pin: string): void;
  cleanup(): void;
}

/**
 * Creates a fresh SoftHSM2 token store in a temp dir with one initialized
 * token. SOFTHSM2_CONF is read by the module when it is loaded, so a test
 * process that loads the module must set `process.env.SOFTHSM2_CONF = conf`
 * before the first C_Initialize (see useSoftHsmToken).
 */
export function createSoftHsmToken(label = 'anchorage-test', pin = '1234', soPin = '5678'): SoftHsmToken {
  if (!softHsmAvailable()) {
    throw new Error(`softhsm: module not found at ${SOFTHSM_MODULE} (install the softhsm2 package)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-hsm-'));
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
    { mode: 0o600 },
  );
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  const addToken = (l: string, p: string) => {
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', l, '--pin', p, '--so-pin', soPin], {
      env,
      stdio: 'pipe',
    });
  };
  addToken(label, pin);
  return {
    dir,
    conf,
    module: SOFTHSM_MODULE,
    label,
    pin,
    soPin,
    env,
    tokensDir: tokens,
    takeAway: () => {
      const away = `${tokens}.away`;
      renameSync(tokens, away);
      let back = false;
      return () => {
        if (back) return;
        back = true;
        renameSync(away, tokens);
      };
    },
    addToken,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * SoftHSM2 reads SOFTHSM2_CONF once per process, at its first C_Initialize.
 * In-process tests therefore share one token store per test file: call this
 * at the top of the file, before anything loads the module.
 */
export function useSoftHsmToken(label?: string, pin?: string): SoftHsmToken {
  const token = createSoftHsmToken(label, pin);
  process.env.SOFTHSM2_CONF = token.conf;
  return token;
}

/**
 * Writes `<dir>/pin` and `<dir>/server.yaml` for `anchorage server run` on this
 * token: the admin socket given, the agent API on loopback (`port`, or any
 * free one), the data dir `<dir>/data` unless given; `extra` (YAML lines) is
 * appended.
 * Returns the config's path.
 */
export function writePkcs11ServerConfig(
  token: SoftHsmToken,
  opts: { dir: string; trustDomain: string; socket: string; dataDir?: string; port?: number; extra?: string },
): string {
  const pinFile = join(opts.dir, 'pin');
  writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o600 });
  const path = join(opts.dir, 'server.yaml');
  writeFileSync(
    path,
    `trust_domain: ${opts.trustDomain}
data_dir: ${opts.dataDir ?? join(opts.dir, 'data')}
admin_socket: ${opts.socket}
bind_address: 127.0.0.1:${opts.port ?? 0}
key_manager:
  type: pkcs11
  module: ${token.module}
  token_label: ${token.label}
  pin_file: ${pinFile}
${opts.extra ?? ''}`,
  );
  return path;
}
