// A real PostgreSQL cluster for tests: Debian's `postgresql` binaries, a
// cluster made by initdb in a temp dir and run by pg_ctl on a free port on
// 127.0.0.1 and a Unix socket in that dir. PostgreSQL refuses to run as
// root, so the cluster belongs to `nobody`. Logins need a password
// (scram-sha-256), so the tests exercise password_env / password_file.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { issueNodeCert, makeOpensslCa } from './openssl-ca.js';
import { freePort } from './process.js';

/** The newest installed server's bin dir (Debian: /usr/lib/postgresql/<major>/bin), or undefined. */
function findBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const majors = readdirSync(base).filter((d) => /^\d+$/.test(d) && existsSync(join(base, d, 'bin', 'pg_ctl')));
  majors.sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(base, majors[0], 'bin');
}

export const PG_BIN = findBinDir();
/** Tests skip with `lacks(!havePostgres, …)` (CI installs `postgresql`). */
export const havePostgres = PG_BIN !== undefined && process.getuid?.() === 0;
export const POSTGRES_NEEDS = "Debian's postgresql (initdb, pg_ctl) and root to run it as nobody";

/** The uid (and gid) the cluster runs as. */
const PG_UID = 65534;

export interface PostgresCluster {
  port: number;
  /** The directory of the cluster's Unix socket. */
  socketDir: string;
  user: string;
  password: string;
  /** A file holding the password, mode 0600 (for password_file). */
  passwordFile: string;
  /** With `tls`: the PEM CA that issued the server's certificate (for 127.0.0.1 and localhost). */
  caFile?: string;
  /** postgresql://user@127.0.0.1:port/database?sslmode=disable, no password in it. */
  url(database: string): string;
  /** Creates a fresh, empty database and returns its name. */
  createDatabase(): Promise<string>;
  /** A pg client logged in to `database` (the caller ends it). */
  connect(database: string): Promise<pg.Client>;
  /** pg_ctl restart: every connection is cut, the cluster comes back on the same port. */
  restart(): void;
  stop(): void;
  start(): void;
  /** Stops the cluster and removes its files. */
  destroy(): void;
}

function asPostgres(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), {
    uid: PG_UID,
    gid: PG_UID,
    cwd: '/',
    env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * initdb + pg_ctl start; the caller destroys the cluster. `tls`: the server
 * also takes TLS (ssl=on) with a certificate from a CA of its own.
 */
export async function startPostgres(opts: { tls?: boolean } = {}): Promise<PostgresCluster> {
  if (PG_BIN === undefined) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-pg-'));
  chownSync(dir, PG_UID, PG_UID);
  const data = join(dir, 'data');
  const user = 'anchorage';
  const password = randomBytes(12).toString('hex');
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, password, { mode: 0o600 });
  chownSync(pwfile, PG_UID, PG_UID);
  // The copy tests hand to the server: root's, like a real secret file.
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  const port = await freePort();
  let serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=100`;
  let caFile: string | undefined;
  if (opts.tls) {
    const ca = makeOpensslCa(dir, 'pg-ca');
    const { certFile, keyFile } = issueNodeCert(ca, dir, 'localhost', { san: 'DNS:localhost,IP:127.0.0.1', extendedKeyUsage: 'serverAuth' });
    // PostgreSQL wants its key owned by the server's user, mode 0600.
    chownSync(certFile, PG_UID, PG_UID);
    chownSync(keyFile, PG_UID, PG_UID);
    serverOptions += ` -c ssl=on -c ssl_cert_file=${certFile} -c ssl_key_file=${keyFile}`;
    caFile = ca.certFile;
  }
  const ctl = (action: string): void => {
    asPostgres([
      join(PG_BIN!, 'pg_ctl'),
      action,
      '-D',
      data,
      '-w',
      '-t',
      '60',
      '-l',
      join(dir, 'postgres.log'),
      '-o',
      serverOptions,
      ...(action === 'stop' ? ['-m', 'fast'] : []),
    ]);
  };
  try {
    asPostgres([join(PG_BIN, 'initdb'), '-D', data, '-U', user, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C']);
    ctl('start');
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let counter = 0;
  const cluster: PostgresCluster = {
    port,
    socketDir: dir,
    user,
    password,
    passwordFile,
    ...(caFile !== undefined && { caFile }),
    url: (database) => `postgresql://${user}@127.0.0.1:${port}/${database}?sslmode=disable`,
    async connect(database) {
      const client = new pg.Client({ host: '127.0.0.1', port, user, password, database });
      await client.connect();
      return client;
    },
    async createDatabase() {
      const name = `t${process.pid}_${++counter}_${randomBytes(3).toString('hex')}`;
      const admin = await cluster.connect('postgres');
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return name;
    },
    restart: () => ctl('restart'),
    stop: () => ctl('stop'),
    start: () => ctl('start'),
    destroy() {
      try {
        ctl('stop');
      } catch {
        // Already stopped (or never came up): the files go all the same.
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
