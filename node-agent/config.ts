import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { errorMessage, invalid } from '@anchorage/client/errors';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { formatIssues, readYamlConfig } from '../common/config-file.js';
import { LOG_FORMATS } from '../common/log.js';
import { metricsConfig } from '../common/metrics-http.js';
import { DEFAULT_JWT_CACHE_MAX_BYTES } from './cache.js';
import { unixAttestorOptions, workloadAttestorEntry } from './attestor/registry.js';
import { DEFAULT_SDS_NAMES } from '../workload-api/sds/resources.js';

/**
 * An SDS resource name an operator may choose. It must not look like a SPIFFE
 * ID (those name SVIDs and bundles by themselves) and, since it appears in
 * Envoy's config and our logs, carries no control characters.
 */
const sdsResourceName = z
  .string()
  .min(1, 'must not be empty')
  .max(256, 'must be at most 256 characters')
  .refine((s) => !/^spiffe:/i.test(s), 'must not start with "spiffe:" (SPIFFE IDs name SVIDs and bundles already)')
  .refine((s) => !/[\x00-\x1f\x7f]/.test(s), 'must not contain control characters');

// Envoy SDS on the Workload API socket (workload-api/sds/): the names of the
// default SVID, the own bundle and all bundles, SPIRE's unless set.
const sdsSchema = z
  .object({
    default_svid_name: sdsResourceName.default(DEFAULT_SDS_NAMES.defaultSvidName),
    default_bundle_name: sdsResourceName.default(DEFAULT_SDS_NAMES.defaultBundleName),
    default_all_bundles_name: sdsResourceName.default(DEFAULT_SDS_NAMES.defaultAllBundlesName),
    disable_spiffe_cert_validation: z.boolean().default(DEFAULT_SDS_NAMES.disableSpiffeCertValidation),
  })
  .strict()
  .refine((c) => new Set([c.default_svid_name, c.default_bundle_name, c.default_all_bundles_name]).size === 3, {
    message: 'default_svid_name, default_bundle_name and default_all_bundles_name must differ',
  })
  .transform((c) => ({
    defaultSvidName: c.default_svid_name,
    defaultBundleName: c.default_bundle_name,
    defaultAllBundlesName: c.default_all_bundles_name,
    disableSpiffeCertValidation: c.disable_spiffe_cert_validation,
  }))
  .default(DEFAULT_SDS_NAMES);
import { AGENT_NODE_ATTESTOR_TYPES, DEFAULT_TCTI, EK_ALGORITHMS } from './nodeattestor/registry.js';
import type { EkAlgorithm } from './nodeattestor/tpm.js';

/**
 * A tpm2-tools TCTI: the kernel's TPM device (`device:/dev/tpmrm0`), or a
 * software TPM over TCP (`swtpm:host=…,port=…`, or the reference simulator's
 * `mssim:`). Nothing else, so the string cannot carry other tool options.
 */
const tcti = z
  .string()
  .regex(
    /^(device:\/[A-Za-z0-9._\/-]+|(swtpm|mssim):host=[A-Za-z0-9.:\-]+,port=\d{1,5})$/,
    'must be device:/dev/<tpm device> or swtpm:host=<host>,port=<port> (or mssim:host=…,port=…)',
  );

/** The most servers an agent is given in `server_address`. */
export const MAX_SERVER_ADDRESSES = 16;

/** "host:port" with host a DNS name, an IPv4 address or a bracketed IPv6 address; port 1..65535. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/;
const hostPort = z
  .string()
  .regex(HOST_PORT, 'must be host:port')
  .refine((s) => {
    // One message per address: the port is judged only once the form is right.
    if (!HOST_PORT.test(s)) return true;
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'must be host:port with a port from 1 to 65535');

/** A list of servers: 1..16 items, each host:port, no duplicates (case-insensitive). */
const hostPortList = z
  .array(hostPort)
  .min(1, 'must list at least one host:port')
  .max(MAX_SERVER_ADDRESSES, `must list at most ${MAX_SERVER_ADDRESSES} servers`)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((a, i) => {
      const key = a.toLowerCase();
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [i], message: `"${a}" is listed more than once` });
      seen.add(key);
    });
  });

/**
 * `server_address`: one "host:port" or a list of them. Typed as either form
 * (code that builds a config by hand may give a string); read it through
 * {@link serverAddressesOf}.
 */
const serverAddress = z.unknown().transform((v, ctx): string | string[] => {
  const copy = (issues: z.core.$ZodIssue[]) => {
    for (const i of issues) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
    return z.NEVER;
  };
  if (typeof v === 'string') {
    const r = hostPort.safeParse(v);
    return r.success ? r.data : copy(r.error.issues);
  }
  if (Array.isArray(v)) {
    const r = hostPortList.safeParse(v);
    return r.success ? r.data : copy(r.error.issues);
  }
  ctx.addIssue({ code: 'custom', message: v === undefined ? 'is required' : 'must be host:port or a list of host:port' });
  return z.NEVER;
});

/** The configured servers as a list, in the order given. */
export function serverAddressesOf(config: { server_address: string | readonly string[] }): string[] {
  return typeof config.server_address === 'string' ? [config.server_address] : [...config.server_address];
}

/** A required string: "is required" when absent. */
const requiredError = (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : 'must be a file name');

const agentSchema = z
  .object({
    trust_domain: z.string().transform((s, ctx) => {
      try {
        return TrustDomain.parse(s);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: errorMessage(err) });
        return z.NEVER;
      }
    }),
    // One "host:port", or a list of them tried in turn when the current one fails (node-agent/servers.ts).
    // A host name with several A/AAAA records stands for each of its addresses.
    server_address: serverAddress,
    data_dir: z.string().min(1),
    socket_path: z.string().min(1).optional(),
    socket_mode: z
      .string()
      .regex(/^0?[0-7]{3}$/, 'must be an octal file mode such as "0777"')
      .transform((s) => parseInt(s, 8))
      .default(0o777),
    join_token: z.string().regex(/^[0-9a-f]{32}$/, 'must be a join token from "anchorage token create"').optional(),
    // How the agent proves its node to the server (node-agent/nodeattestor/).
    // join_token reads the top-level join_token above.
    node_attestor: z
      .discriminatedUnion(
        'type',
        [
          z.object({ type: z.literal('join_token') }).strict(),
          z
            .object({
              type: z.literal('tpm'),
              tcti: tcti.default(DEFAULT_TCTI),
              ek_algorithm: z.enum(Object.keys(EK_ALGORITHMS) as [EkAlgorithm, ...EkAlgorithm[]], { error: 'must be rsa or ecc384' }).default('rsa'),
            })
            .strict(),
          z.object({ type: z.literal('x509pop'), cert_file: z.string({ error: requiredError }).min(1), key_file: z.string({ error: requiredError }).min(1) }).strict(),
        ],
        { error: (issue) => (issue.code === 'invalid_union' ? { message: `must be one of: ${AGENT_NODE_ATTESTOR_TYPES.join(', ')}` } : undefined) },
      )
      .default({ type: 'join_token' }),
    trust_bundle_file: z.string().min(1).optional(),
    insecure_bootstrap: z.boolean().default(false),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    // Unset: text on a terminal, JSON lines otherwise (common/log.ts).
    log_format: z.enum(LOG_FORMATS, { message: 'must be text or json' }).optional(),
    // /metrics, /live, /ready (common/metrics-http.ts); no listener unless configured.
    metrics: metricsConfig.optional(),
    jwt_cache_max_bytes: z.number({ message: 'must be a whole number of bytes' }).int('must be a whole number of bytes').min(0, 'must not be negative').max(Number.MAX_SAFE_INTEGER, 'is too large').default(DEFAULT_JWT_CACHE_MAX_BYTES),
    // Workload API connection caps: every connection costs file descriptors,
    // and any local uid may connect. Unset, workload-api/server.ts decides
    // (4096 and 1024, fewer if the open-files limit is low).
    workload_api: z
      .object({
        max_connections: z.number().int().min(1).max(1_000_000).optional(),
        max_connections_per_uid: z.number().int().min(1).max(1_000_000).optional(),
      })
      .strict()
      .refine((w) => w.max_connections === undefined || w.max_connections_per_uid === undefined || w.max_connections_per_uid <= w.max_connections, {
        message: 'max_connections_per_uid must not exceed max_connections',
      })
      .default({}),
    sds: sdsSchema,
    // Every caller is attested by each of these, and its selectors are the
    // union of theirs (node-agent/attestor/registry.ts has the types).
    // Unset: one unix attestor with its defaults.
    workload_attestors: z
      .array(workloadAttestorEntry, { message: 'must be a list of attestors such as [{ type: unix }]' })
      .min(1, 'must name at least one attestor')
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        list.forEach((a, i) => {
          if (seen.has(a.type)) ctx.addIssue({ code: 'custom', path: [i, 'type'], message: `"${a.type}" is configured more than once; each type runs once` });
          seen.add(a.type);
        });
      })
      .optional(),
    // The older form, kept working: the options of one unix attestor.
    attestor: unixAttestorOptions.optional(),
  })
  .strict()
  .refine((c) => !(c.trust_bundle_file !== undefined && c.insecure_bootstrap), {
    message: 'give trust_bundle_file or insecure_bootstrap, not both',
  })
  .refine((c) => !(c.workload_attestors !== undefined && c.attestor !== undefined), {
    message: 'give workload_attestors or attestor, not both (attestor is the older form of workload_attestors: [{ type: unix }])',
  })
  .transform(({ attestor, workload_attestors, ...rest }) => ({
    ...rest,
    workload_attestors: workload_attestors ?? [{ type: 'unix' as const, ...unixAttestorOptions.parse(attestor ?? {}) }],
  }));

/**
 * Outside data_dir on purpose: data_dir is 0700 (it holds keys), and every
 * workload, whatever its uid, must reach the socket. The Workload API refuses
 * a socket directory that anyone but us or root could write to. Under /run,
 * not /tmp: the systemd unit (deploy/systemd) makes /run/anchorage-agent its
 * RuntimeDirectory and gives the agent a private /tmp, and no other user can
 * claim the directory before the agent starts, as anyone can in /tmp.
 */
export const DEFAULT_SOCKET_PATH = '/run/anchorage-agent/public/api.sock';

export type AgentConfig = Omit<z.output<typeof agentSchema>, 'socket_path'> & { socket_path: string; source: string };

export function parseAgentConfig(doc: unknown, source: string, baseDir: string): AgentConfig {
  const r = agentSchema.safeParse(doc ?? {});
  if (!r.success) throw invalid(`config: ${formatIssues(source, r.error)}`);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const dataDir = abs(r.data.data_dir);
  const na = r.data.node_attestor;
  return {
    ...r.data,
    source,
    data_dir: dataDir,
    socket_path: abs(r.data.socket_path ?? DEFAULT_SOCKET_PATH),
    trust_bundle_file: r.data.trust_bundle_file && abs(r.data.trust_bundle_file),
    node_attestor: na.type === 'x509pop' ? { ...na, cert_file: abs(na.cert_file), key_file: abs(na.key_file) } : na,
  };
}

export function loadAgentConfig(path: string): AgentConfig {
  return parseAgentConfig(readYamlConfig(path), path, dirname(resolve(path)));
}
