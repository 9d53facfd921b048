import { isIP } from 'node:net';
import { AnchorageError, invalid } from './common/errors.js';

/**
 * Workload API addresses (SPIFFE_Workload_Endpoint.md §4).
 *
 * The standard form is a URI: `unix:///path/to/socket` (or `unix:/path/to/socket`)
 * for a Unix domain socket, `tcp://IP:port` for TCP. Parsing is strict —
 * a value accepted here must mean the same thing to every other SPIFFE
 * library that reads the same environment — with one convenience: an
 * address given in code (not through the environment) may be a bare
 * absolute socket path.
 */

/** The environment variable every SPIFFE library reads the Workload API address from. */
export const ENDPOINT_SOCKET_ENV = 'SPIFFE_ENDPOINT_SOCKET';

/** A parsed Workload API address, with the target string grpc-js dials. */
export type WorkloadApiAddress =
  | {
      readonly network: 'unix';
      /** Absolute path of the socket. */
      readonly path: string;
      /** The grpc-js target, e.g. `unix:///run/spire/agent.sock`. */
      readonly target: string;
    }
  | {
      readonly network: 'tcp';
      /** An IP address (never a host name, per the spec). */
      readonly host: string;
      readonly port: number;
      readonly target: string;
    };

/** Options of {@link parseWorkloadApiAddress}. */
export interface ParseAddressOptions {
  /**
   * Accept a bare absolute path (`/run/agent.sock`) as a Unix socket. Off
   * for values from the environment, which other SPIFFE libraries read too
   * and which must therefore be proper URIs.
   */
  allowBarePath?: boolean;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s;
const FORMS = 'want unix:///path/to/socket or tcp://IP:port';

function bad(address: string, why: string): AnchorageError {
  return invalid(`workloadapi: address ${JSON.stringify(address)}: ${why}`);
}

/** Percent-decodes a path; refuses malformed escapes and NUL, which no socket path can contain. */
function decodePath(address: string, path: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    throw bad(address, 'path has a malformed percent-encoding');
  }
  if (decoded.includes('\0')) throw bad(address, 'path must not contain NUL');
  return decoded;
}

/** Refuses a query or fragment, which no Workload API address may have. */
function refuseQueryAndFragment(address: string, rest: string): void {
  const q = rest.indexOf('?');
  const h = rest.indexOf('#');
  if (q !== -1 && (h === -1 || q < h)) throw bad(address, 'must not include a query');
  if (h !== -1) throw bad(address, 'must not include a fragment');
}

function parseUnix(address: string, rest: string): WorkloadApiAddress {
  refuseQueryAndFragment(address, rest);
  let path = rest;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    const authority = slash === -1 ? rest.slice(2) : rest.slice(2, slash);
    if (authority.includes('@')) throw bad(address, 'must not include user info');
    if (authority !== '') throw bad(address, `unix socket URI must not have an authority ("${authority}"); use unix:///absolute/path`);
    path = slash === -1 ? '' : rest.slice(slash);
  }
  if (path === '') throw bad(address, 'unix socket URI must include a path');
  if (!path.startsWith('/')) throw bad(address, 'unix socket path must be absolute');
  return unixAddress(decodePath(address, path));
}

function unixAddress(path: string): WorkloadApiAddress {
  // `unix://` + an absolute path: grpc-js reads an empty authority and
  // keeps the path as is, even one that starts with `//`.
  return { network: 'unix', path, target: `unix://${path}` };
}

function parseTcp(address: string, rest: string): WorkloadApiAddress {
  refuseQueryAndFragment(address, rest);
  if (!rest.startsWith('//')) throw bad(address, 'tcp URI must be tcp://IP:port');
  const slash = rest.indexOf('/', 2);
  const authority = slash === -1 ? rest.slice(2) : rest.slice(2, slash);
  if (slash !== -1) throw bad(address, 'tcp URI must not include a path');
  if (authority.includes('@')) throw bad(address, 'must not include user info');
  let host: string;
  let port: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) throw bad(address, 'tcp URI has an unterminated IPv6 address');
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (!after.startsWith(':')) throw bad(address, 'tcp URI must include a port');
    port = after.slice(1);
    if (isIP(host) !== 6) throw bad(address, `tcp host "${host}" is not an IPv6 address`);
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon === -1) throw bad(address, 'tcp URI must include a port');
    host = authority.slice(0, colon);
    port = authority.slice(colon + 1);
    if (host === '') throw bad(address, 'tcp URI must include a host');
    if (isIP(host) !== 4) throw bad(address, `tcp host "${host}" must be an IP address`);
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw bad(address, `tcp port "${port}" must be a number from 1 to 65535`);
  }
  const n = Number(port);
  const target = isIP(host) === 6 ? `ipv6:[${host}]:${n}` : `ipv4:${host}:${n}`;
  return { network: 'tcp', host, port: n, target };
}

/**
 * Parses a Workload API address. Every rejection is an
 * `AnchorageError('invalid_argument')` naming the address and the rule it
 * breaks.
 */
export function parseWorkloadApiAddress(address: string, options: ParseAddressOptions = {}): WorkloadApiAddress {
  if (typeof address !== 'string' || address === '') throw invalid('workloadapi: address is empty');
  if (address.startsWith('/')) {
    if (!options.allowBarePath) throw bad(address, `is a path, not a URI; ${FORMS}`);
    return unixAddress(checkBarePath(address));
  }
  const m = SCHEME.exec(address);
  if (!m) throw bad(address, `has no scheme; ${FORMS}`);
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  if (scheme === 'unix') return parseUnix(address, rest);
  if (scheme === 'tcp') return parseTcp(address, rest);
  throw bad(address, `unsupported scheme "${m[1]}"; ${FORMS}`);
}

/** A bare path is taken literally (no percent-decoding): it is a file name, not a URI. */
function checkBarePath(path: string): string {
  if (path.includes('\0')) throw bad(path, 'path must not contain NUL');
  return path;
}

/**
 * The address to dial: `explicit` when given (a URI or a bare absolute
 * path), else the URI in `SPIFFE_ENDPOINT_SOCKET`. Neither is an
 * `invalid_argument` error that says how to fix it.
 */
export function resolveWorkloadApiAddress(explicit?: string, env: NodeJS.ProcessEnv = process.env): WorkloadApiAddress {
  if (explicit !== undefined) return parseWorkloadApiAddress(explicit, { allowBarePath: true });
  const value = env[ENDPOINT_SOCKET_ENV];
  if (value === undefined || value === '') {
    throw invalid(`workloadapi: no Workload API address: set ${ENDPOINT_SOCKET_ENV} (e.g. unix:///run/anchorage/agent.sock) or pass an address`);
  }
  try {
    return parseWorkloadApiAddress(value);
  } catch (err) {
    throw invalid(`workloadapi: ${ENDPOINT_SOCKET_ENV}: ${(err as Error).message.replace(/^workloadapi: /, '')}`, err);
  }
}
