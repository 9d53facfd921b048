// The `connection_string` of a postgres datastore: checked when server.yaml
// is read (so a bad one fails at load with the key named), turned into the pg
// client settings when the store opens. No pg import here: the config layer
// uses this without loading the driver.
import { isAbsolute } from 'node:path';

/** The sslmode values we implement; libpq's `allow` and `prefer` fall back to plaintext, which we refuse. */
export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The query parameters a connection string may carry (each once). */
const PARAMS = ['sslmode', 'sslrootcert', 'host', 'port', 'application_name'] as const;

/** What a connection string names, password aside (it may not hold one). */
export interface PgTarget {
  user: string;
  /** A host name or address, or the directory of a Unix socket (absolute path). */
  host: string;
  port: number;
  database: string;
  sslmode: SslMode;
  /** PEM CA file for verify-ca / verify-full; unset = the system roots. */
  sslrootcert?: string;
  applicationName: string;
}

/**
 * Parses `postgresql://user@host:port/database?sslmode=…`. Throws an Error
 * whose message says what is wrong without repeating the string: it may hold
 * a password, and messages end up in logs.
 *
 * sslmode defaults to `verify-full` over TCP and `disable` for a Unix socket
 * (`?host=/run/postgresql`), where TLS adds nothing.
 */
export function parseConnectionString(text: string): PgTarget {
  // WHATWG URLs of other schemes may not have an empty host, which the
  // socket form (postgresql://user@/db?host=/dir) has: parse it with a
  // placeholder host and forget the placeholder.
  const noHost = /^[a-z]+:\/\/[^/@]*@\//i.test(text);
  let url: URL;
  try {
    url = new URL(noHost ? text.replace('@/', '@socket.invalid/') : text);
  } catch {
    throw new Error('is not a URL; expected postgresql://user@host:port/database');
  }
  const hostname = noHost ? '' : url.hostname;
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
    throw new Error(`must start with postgresql:// (found ${url.protocol}//)`);
  }
  if (url.password !== '') throw new Error('must not contain a password: give it with password_env or password_file');
  const user = decodeURIComponent(url.username);
  if (user === '') throw new Error('must name the user (postgresql://user@host/database)');
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) throw new Error('must name one database (postgresql://user@host/database)');
  if (url.hash !== '') throw new Error('must not have a #fragment');
  const params = new Map<string, string>();
  for (const [key, value] of url.searchParams) {
    if (!(PARAMS as readonly string[]).includes(key)) throw new Error(`unknown parameter ${JSON.stringify(key)}; known: ${PARAMS.join(', ')}`);
    if (params.has(key)) throw new Error(`parameter ${key} is given twice`);
    params.set(key, value);
  }
  const socketDir = params.get('host');
  if (socketDir !== undefined && (!isAbsolute(socketDir) || hostname !== '')) {
    throw new Error('host= must be the absolute directory of a Unix socket, with no host name before the path (postgresql://user@/database?host=/run/postgresql)');
  }
  const host = socketDir ?? hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new Error('must name a host, or a socket directory with ?host=/path');
  const sslmode = params.get('sslmode') ?? (socketDir !== undefined ? 'disable' : 'verify-full');
  if (!(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new Error(`sslmode must be one of ${SSL_MODES.join(', ')} (found ${JSON.stringify(sslmode)})`);
  }
  const sslrootcert = params.get('sslrootcert');
  if (sslrootcert !== undefined && !isAbsolute(sslrootcert)) throw new Error('sslrootcert must be an absolute path');
  // ?port= is for the socket form, which has no place for one in the URL
  // (the socket file is named after the port).
  const portParam = params.get('port');
  if (portParam !== undefined && (url.port !== '' || !/^[1-9][0-9]{0,4}$/.test(portParam) || Number(portParam) > 65535)) {
    throw new Error('port= must be a port number (1-65535), given only when the URL has none');
  }
  return {
    user,
    host,
    port: Number(portParam ?? (url.port === '' ? 5432 : url.port)),
    database,
    sslmode: sslmode as SslMode,
    ...(sslrootcert !== undefined && { sslrootcert }),
    applicationName: params.get('application_name') ?? 'anchorage',
  };
}

/** The target for messages: user@host:port/database, never a password. */
export function describeTarget(t: PgTarget): string {
  return `${t.user}@${t.host.startsWith('/') ? `[socket ${t.host}]` : t.host}:${t.port}/${t.database}`;
}
