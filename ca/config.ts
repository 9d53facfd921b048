import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { DEFAULT_ADMIN_SOCKET } from '../common/admin-socket.js';
import { formatIssues, readYamlConfig } from '../common/config-file.js';
import { z } from 'zod';
import { parseDuration } from '../common/duration.js';
import { AnchorageError, invalid, errorMessage } from '@anchorage/client/errors';
import type { TcpLimits } from '../common/tcp-guard.js';
import { LOG_FORMATS } from '../common/log.js';
import { hostPort, metricsConfig } from '../common/metrics-http.js';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { KEY_TYPES, type KeyType } from './keymanager/KeyManager.js';
import { pcrSelectionWire } from '../common/attestation-wire.js';
import { DEFAULT_NODE_ATTESTORS, NODE_ATTESTOR_TYPES, type NodeAttestorsConfig, type NodeAttestorType } from './nodeattestor/registry.js';
import { EK_HASH } from './nodeattestor/tpm.js';
import { parseConnectionString } from './datastore/postgres/connection.js';

/** A duration string (`1h`, `30d`), turned into seconds. */
const duration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text, 'duration');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: errorMessage(err).replace(/^duration: /, '') });
    return z.NEVER;
  }
});

const fileMode = z
  .string()
  .regex(/^0?[0-7]{3}$/, 'must be an octal file mode such as "0600"')
  .transform((s) => parseInt(s, 8));

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');

const pkcs11KeyManager = z
  .object({
    type: z.literal('pkcs11'),
    module: z.string().min(1),
    token_label: z.string().min(1).max(32),
    pin_env: envName.optional(),
    pin_file: z.string().min(1).optional(),
    sessions: z.number().int().min(1).max(64).default(4),
  })
  .strict()
  .refine((v) => (v.pin_env === undefined) !== (v.pin_file === undefined), {
    message: 'exactly one of pin_env or pin_file is required',
  });

// The connection string is checked here so a bad one fails at load, naming
// the key; the message never repeats it (it might hold a password).
const pgConnectionString = z.string().superRefine((text, ctx) => {
  try {
    parseConnectionString(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: errorMessage(err) });
  }
});

const postgresDataStore = z
  .object({
    type: z.literal('postgres'),
    connection_string: pgConnectionString,
    // Neither: the server authenticates without one (peer or cert auth).
    password_env: envName.optional(),
    password_file: z.string().min(1).optional(),
    // Bounds on what the server may ask of the database (ca/datastore/postgres/store.ts).
    max_connections: z.number().int().min(1).max(100).default(10),
    connect_timeout: duration.default(parseDuration('10s')),
    statement_timeout: duration.default(parseDuration('30s')),
    // Several servers on one database: how often the change counter is checked
    // for missed notifications (ca/cluster/); unset: 30s.
    change_reconcile_interval: duration.refine((s) => s >= 1 && s <= 3600, { message: 'must be from 1s to 1h' }).optional(),
  })
  .strict()
  .refine((v) => v.password_env === undefined || v.password_file === undefined, {
    message: 'give at most one of password_env or password_file',
  });

const keyManager = z.discriminatedUnion('type', [
  pkcs11KeyManager,
  z.object({ type: z.literal('disk'), dir: z.string().min(1).optional() }).strict(),
  z.object({ type: z.literal('memory') }).strict(),
]);

const root = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('self-signed'),
      ttl: duration.default(parseDuration('3650d')),
      key_label: z.string().min(1).max(128).optional(),
      key_type: z.enum(KEY_TYPES as [KeyType, ...KeyType[]]).optional(),
      key_manager: keyManager.optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal('upstream'),
      cert_file: z.string().min(1),
      key_file: z.string().min(1).optional(),
      key_label: z.string().min(1).max(128).optional(),
      key_manager: keyManager.optional(),
    })
    .strict()
    .refine((v) => (v.key_file === undefined) !== (v.key_label === undefined), {
      message: 'exactly one of key_file or key_label is required',
    }),
]);

/**
 * Limits of a TLS listener (common/tcp-guard.ts): how long a connection may
 * sit in the TLS handshake, and how many connections may be open, in all and
 * per remote address. The defaults keep both listeners together far below the
 * process's file descriptor limit, so a flood on TCP cannot starve the admin
 * socket.
 */
function listenerLimitFields(defaults: { handshake_timeout: number; max_connections: number; max_connections_per_ip: number }) {
  return {
    handshake_timeout: duration.default(defaults.handshake_timeout),
    max_connections: z.number().int().min(1).max(65536).default(defaults.max_connections),
    max_connections_per_ip: z.number().int().min(1).max(65536).default(defaults.max_connections_per_ip),
  };
}

function checkListenerLimits(
  v: { handshake_timeout: number; max_connections: number; max_connections_per_ip: number },
  ctx: z.RefinementCtx,
): void {
  if (v.handshake_timeout < 1 || v.handshake_timeout > 120) {
    ctx.addIssue({ code: 'custom', path: ['handshake_timeout'], message: 'must be between 1s and 2m' });
  }
  // zod runs this even when a cap failed its own check; one line per problem.
  if (Number.isInteger(v.max_connections) && v.max_connections >= 1 && v.max_connections_per_ip > v.max_connections) {
    ctx.addIssue({ code: 'custom', path: ['max_connections_per_ip'], message: 'must not be more than max_connections' });
  }
}

/** A listener section of the config (seconds) as the limits the listeners take (milliseconds). */
export function tcpLimits(v: { handshake_timeout: number; max_connections: number; max_connections_per_ip: number }): TcpLimits {
  return { handshakeTimeoutMs: v.handshake_timeout * 1000, maxConnections: v.max_connections, maxConnectionsPerIp: v.max_connections_per_ip };
}

/** Defaults of `agent_api`: agents keep one long-lived connection each. */
export const AGENT_API_LIMITS = { handshake_timeout: 10, max_connections: 1024, max_connections_per_ip: 128 } as const;
/** Defaults of the bundle endpoint's limits: peers fetch now and then, briefly. */
export const BUNDLE_ENDPOINT_LIMITS = { handshake_timeout: 10, max_connections: 256, max_connections_per_ip: 32 } as const;

/** A required value: "is required" when absent, `message` when present but wrong. */
const requiredError = (message: string) => (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : message);

export const BUNDLE_ENDPOINT_PROFILES = ['https_spiffe', 'https_web'] as const;
export type BundleEndpointProfile = (typeof BUNDLE_ENDPOINT_PROFILES)[number];

/** The SPIFFE bundle endpoint this server serves (ca/federation/endpoint.ts). */
const bundleEndpoint = z
  .object({
    address: z.string({ error: requiredError('must be host:port') }).pipe(hostPort),
    profile: z.enum(BUNDLE_ENDPOINT_PROFILES, { error: requiredError('must be https_spiffe or https_web') }),
    refresh_hint: duration.optional(),
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    ...listenerLimitFields(BUNDLE_ENDPOINT_LIMITS),
  })
  .strict()
  .superRefine((v, ctx) => {
    checkListenerLimits(v, ctx);
    for (const key of ['cert_file', 'key_file'] as const) {
      if (v.profile === 'https_spiffe' && v[key] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'only for profile https_web (https_spiffe serves the server SVID)' });
      }
      if (v.profile === 'https_web' && v[key] === undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'is required for profile https_web' });
      }
    }
  });

/** How often the federation client fetches peers' bundles (ca/federation/client.ts). */
const federationRefresh = z
  .object({
    min_interval: duration.default(30),
    max_interval: duration.default(3600),
    /** Default: 5m, moved into [min_interval, max_interval] when those exclude it. */
    default_interval: duration.optional(),
    fetch_timeout: duration.default(10),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.min_interval < 1) ctx.addIssue({ code: 'custom', path: ['min_interval'], message: 'must be at least 1s' });
    if (v.max_interval > 86400) ctx.addIssue({ code: 'custom', path: ['max_interval'], message: 'must be at most 24h' });
    if (v.min_interval > v.max_interval) {
      ctx.addIssue({ code: 'custom', path: ['min_interval'], message: 'must not be longer than max_interval' });
    } else if (v.default_interval !== undefined && (v.default_interval < v.min_interval || v.default_interval > v.max_interval)) {
      ctx.addIssue({ code: 'custom', path: ['default_interval'], message: 'must be between min_interval and max_interval' });
    }
    if (v.fetch_timeout < 1 || v.fetch_timeout > 300) ctx.addIssue({ code: 'custom', path: ['fetch_timeout'], message: 'must be between 1s and 5m' });
  })
  .transform((v) => ({ ...v, default_interval: v.default_interval ?? Math.min(v.max_interval, Math.max(v.min_interval, 300)) }));

/** `node_attestors` as a list of types: the older form, for attestors without settings. */
const nodeAttestorList = z
  .array(z.enum(NODE_ATTESTOR_TYPES as unknown as [NodeAttestorType, ...NodeAttestorType[]], { message: `unknown node attestor (known: ${NODE_ATTESTOR_TYPES.join(', ')})` }))
  .min(1, 'list at least one node attestor')
  .refine((l) => new Set(l).size === l.length, 'a node attestor is listed twice')
  .superRefine((l, ctx) => {
    l.forEach((t, i) => {
      if (t !== 'join_token') ctx.addIssue({ code: 'custom', path: [i], message: `${t} needs settings: give node_attestors as a mapping, e.g. { ${t}: { ... } }` });
    });
  })
  .transform((l): NodeAttestorsConfig => Object.fromEntries(l.map((t) => [t, {}])));

/** A PCR selection of `node_attestors.tpm.pcrs`: indices sorted, each once. */
const pcrSelection = pcrSelectionWire.superRefine((p, ctx) => {
  if (new Set(p.indices).size !== p.indices.length) ctx.addIssue({ code: 'custom', path: ['indices'], message: 'lists a PCR twice' });
}).transform((p) => ({ ...p, indices: [...p.indices].sort((a, b) => a - b) }));

/** `node_attestors` as a mapping of type to settings. */
const nodeAttestorMap = z
  .object({
    join_token: z.object({}).strict().nullable().transform(() => ({}) as Record<string, never>).optional(),
    tpm: z
      .object({
        ek_ca_dir: z.string().min(1).optional(),
        ek_hashes: z.array(z.string().regex(EK_HASH, 'must be the SHA-256 (64 lower-case hex digits) of an EK public key (DER SubjectPublicKeyInfo)')).min(1).max(100_000).optional(),
        pcrs: z
          .array(pcrSelection, { error: requiredError('must be a list such as [{ bank: sha256, indices: [0, 7] }]') })
          .min(1, 'name at least one PCR bank')
          .max(4)
          .refine((l) => new Set(l.map((p) => p.bank)).size === l.length, 'lists a bank twice'),
      })
      .strict()
      .refine((t) => t.ek_ca_dir !== undefined || t.ek_hashes !== undefined, 'give ek_ca_dir, ek_hashes or both')
      .optional(),
    x509pop: z.object({ ca_bundle_file: z.string({ error: requiredError('must be a file name') }).min(1) }).strict().optional(),
  })
  .strict();

/** `node_attestors`: a mapping of type to settings, or the older list of types. */
const nodeAttestors = z
  .unknown()
  .optional()
  .transform((v, ctx): NodeAttestorsConfig => {
    if (v === undefined) return Object.fromEntries(DEFAULT_NODE_ATTESTORS.map((t) => [t, {}]));
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0) {
      ctx.addIssue({ code: 'custom', message: 'enable at least one node attestor' });
      return z.NEVER;
    }
    const r = (Array.isArray(v) ? nodeAttestorList : nodeAttestorMap).safeParse(v);
    if (r.success) return r.data;
    for (const issue of r.error.issues) ctx.addIssue({ ...issue, code: 'custom', message: issue.code === 'unrecognized_keys' ? `unknown key(s): ${issue.keys.join(', ')}` : issue.message });
    return z.NEVER;
  });

const serverSchema = z
  .object({
    trust_domain: z.string().transform((s, ctx) => {
      try {
        return TrustDomain.parse(s);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: errorMessage(err) });
        return z.NEVER;
      }
    }),
    data_dir: z.string().min(1),
    // Several servers on one PostgreSQL: each owns its intermediates and JWT
    // keys under this id (default: one made at first start, kept in data_dir).
    server_id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be 1–63 lower-case letters, digits or hyphens, starting with a letter or digit')
      .optional(),
    admin_socket: z.string().min(1).optional(),
    admin_socket_mode: fileMode.default(0o600),
    bind_address: hostPort.default('127.0.0.1:8081'),
    agent_api: z
      .object(listenerLimitFields(AGENT_API_LIMITS))
      .strict()
      .superRefine(checkListenerLimits)
      .prefault({}),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    // Unset: text on a terminal, JSON lines otherwise (common/log.ts).
    log_format: z.enum(LOG_FORMATS, { message: 'must be text or json' }).optional(),
    // /metrics, /live, /ready (common/metrics-http.ts); no listener unless configured.
    metrics: metricsConfig.optional(),
    // Which node attestors agents may use, and their settings (ca/nodeattestor/registry.ts).
    node_attestors: nodeAttestors,
    key_manager: keyManager,
    ca: z
      .object({
        ttl: duration.default(parseDuration('24h')),
        key_type: z.enum(KEY_TYPES as [KeyType, ...KeyType[]]).default('ec-p256'),
        root: root.default({ type: 'self-signed', ttl: parseDuration('3650d') }),
      })
      .strict()
      .default({ ttl: parseDuration('24h'), key_type: 'ec-p256', root: { type: 'self-signed', ttl: parseDuration('3650d') } }),
    x509_svid_ttl: duration.default(parseDuration('1h')),
    jwt_svid_ttl: duration.default(parseDuration('5m')),
    agent_svid_ttl: duration.default(parseDuration('1h')),
    bundle_refresh_hint: duration.default(parseDuration('5m')),
    // A union on `type` so that an unknown type is refused with the list of
    // known ones, as for key_manager; each member matches an opener in
    // ca/datastore/registry.ts.
    datastore: z
      .discriminatedUnion('type', [z.object({ type: z.literal('sqlite'), path: z.string().min(1).optional() }).strict(), postgresDataStore])
      .default({ type: 'sqlite' }),
    federation: z
      .object({ bundle_endpoint: bundleEndpoint.optional(), refresh: federationRefresh.prefault({}) })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    if (cfg.x509_svid_ttl >= cfg.ca.ttl) {
      ctx.addIssue({ code: 'custom', path: ['x509_svid_ttl'], message: 'must be shorter than ca.ttl' });
    }
    if (cfg.agent_svid_ttl >= cfg.ca.ttl) {
      ctx.addIssue({ code: 'custom', path: ['agent_svid_ttl'], message: 'must be shorter than ca.ttl' });
    }
    if (cfg.jwt_svid_ttl >= cfg.ca.ttl) {
      ctx.addIssue({ code: 'custom', path: ['jwt_svid_ttl'], message: 'must be shorter than ca.ttl' });
    }
    if (cfg.ca.root.type === 'self-signed' && cfg.ca.root.ttl <= cfg.ca.ttl) {
      ctx.addIssue({ code: 'custom', path: ['ca', 'root', 'ttl'], message: 'must be longer than ca.ttl' });
    }
  });

export type RawServerConfig = z.output<typeof serverSchema>;
export type KeyManagerConfig = z.output<typeof keyManager>;
export type RootConfig = z.output<typeof root>;
/** `datastore` of type postgres, password_file absolute. */
export type PostgresDataStoreConfig = z.output<typeof postgresDataStore>;

/** `federation.bundle_endpoint` with its defaults applied and its paths absolute. */
export interface BundleEndpointConfig {
  address: string;
  profile: BundleEndpointProfile;
  /** spiffe_refresh_hint of the served document, seconds. */
  refresh_hint: number;
  /** https_web only. */
  cert_file?: string;
  key_file?: string;
  /** Seconds; see {@link AGENT_API_LIMITS} for the meaning of the three limits. */
  handshake_timeout: number;
  max_connections: number;
  max_connections_per_ip: number;
}

/** `federation.refresh`, in seconds. */
export interface FederationRefreshConfig {
  min_interval: number;
  max_interval: number;
  default_interval: number;
  fetch_timeout: number;
}

/** Server configuration with every path absolute and every default applied. */
export interface ServerConfig extends RawServerConfig {
  admin_socket: string;
  datastore: { type: 'sqlite'; path: string } | PostgresDataStoreConfig;
  federation: { bundle_endpoint?: BundleEndpointConfig; refresh: FederationRefreshConfig };
  /** Where the file came from, for messages. */
  source: string;
}


/** Validates an already-parsed YAML document. Relative paths resolve against `baseDir`. */
export function parseServerConfig(doc: unknown, source: string, baseDir: string): ServerConfig {
  const result = serverSchema.safeParse(doc ?? {});
  if (!result.success) throw invalid(`config: ${formatIssues(source, result.error)}`);
  const cfg = result.data;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const dataDir = abs(cfg.data_dir);
  const fixKm = (km: KeyManagerConfig): KeyManagerConfig => {
    if (km.type === 'pkcs11') return { ...km, module: abs(km.module), pin_file: km.pin_file && abs(km.pin_file) };
    if (km.type === 'disk') return { ...km, dir: abs(km.dir ?? join(dataDir, 'keys')) };
    return km;
  };
  const rootCfg = cfg.ca.root;
  const fixedRoot: RootConfig =
    rootCfg.type === 'upstream'
      ? {
          ...rootCfg,
          cert_file: abs(rootCfg.cert_file),
          key_file: rootCfg.key_file && abs(rootCfg.key_file),
          key_manager: rootCfg.key_manager && fixKm(rootCfg.key_manager),
        }
      : { ...rootCfg, key_manager: rootCfg.key_manager && fixKm(rootCfg.key_manager) };
  const be = cfg.federation?.bundle_endpoint;
  return {
    ...cfg,
    source,
    data_dir: dataDir,
    admin_socket: abs(cfg.admin_socket ?? DEFAULT_ADMIN_SOCKET),
    key_manager: fixKm(cfg.key_manager),
    ca: { ...cfg.ca, root: fixedRoot },
    datastore:
      cfg.datastore.type === 'sqlite'
        ? { type: 'sqlite', path: abs(cfg.datastore.path ?? join(dataDir, 'datastore.sqlite3')) }
        : { ...cfg.datastore, password_file: cfg.datastore.password_file && abs(cfg.datastore.password_file) },
    node_attestors: {
      ...cfg.node_attestors,
      tpm: cfg.node_attestors.tpm && { ...cfg.node_attestors.tpm, ek_ca_dir: cfg.node_attestors.tpm.ek_ca_dir && abs(cfg.node_attestors.tpm.ek_ca_dir) },
      x509pop: cfg.node_attestors.x509pop && { ca_bundle_file: abs(cfg.node_attestors.x509pop.ca_bundle_file) },
    },
    federation: {
      refresh: cfg.federation.refresh,
      bundle_endpoint: be && {
        ...be,
        refresh_hint: be.refresh_hint ?? cfg.bundle_refresh_hint,
        cert_file: be.cert_file && abs(be.cert_file),
        key_file: be.key_file && abs(be.key_file),
      },
    },
  };
}

/** Reads and validates a server.yaml. Every failure names the file and, where it can, the key. */
export function loadServerConfig(path: string): ServerConfig {
  return parseServerConfig(readYamlConfig(path), path, dirname(resolve(path)));
}

/**
 * Reads the token PIN named by the config. Kept out of the config object so
 * the PIN is never part of anything that might be printed or logged.
 */
export function resolvePin(km: Extract<KeyManagerConfig, { type: 'pkcs11' }>, path = 'key_manager'): string {
  return resolveSecret({ env: km.pin_env, file: km.pin_file }, `${path}.pin`)!;
}

/**
 * Reads a secret given as `<key>_env` (an environment variable's name) or
 * `<key>_file` (a file only its owner may read); undefined if neither is set.
 * Messages name the key and the file, never the secret.
 */
export function resolveSecret(src: { env?: string | undefined; file?: string | undefined }, key: string): string | undefined {
  if (src.env !== undefined) {
    const secret = process.env[src.env];
    if (secret === undefined || secret === '') {
      throw new AnchorageError('failed_precondition', `config: ${key}_env: environment variable ${src.env} is not set`);
    }
    return secret;
  }
  const file = src.file;
  if (file === undefined) return undefined;
  let text: string;
  try {
    const st = statSync(file);
    if ((st.mode & 0o077) !== 0) {
      throw new AnchorageError(
        'failed_precondition',
        `config: ${key}_file: ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof AnchorageError) throw err;
    throw new AnchorageError(
      'failed_precondition',
      `config: ${key}_file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new AnchorageError('failed_precondition', `config: ${key}_file: ${file} is empty`);
  return secret;
}
