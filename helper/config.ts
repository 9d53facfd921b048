import { constants } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { formatIssues, readYamlConfig } from '../common/config-file.js';
import { parseDuration } from '../common/duration.js';
import { errorMessage, invalid } from '../common/errors.js';
import { CONTROL_CLASS } from '../common/text.js';
import { ENDPOINT_SOCKET_ENV, parseWorkloadApiAddress } from '../workload-api/client/address.js';
import { CURRENT_LINK, LOCK_FILE } from './generations.js';

/**
 * helper.yaml: what `anchorage helper` fetches, where it writes it and whom
 * it tells. The key names follow spiffe-helper's where the meaning is the
 * same, so its users recognize them.
 */

/** NUL, newlines, escapes and bidi overrides: names an operator reads in `ls` and in logs. */
const CONTROL = new RegExp(`[${CONTROL_CLASS}]`, 'u');

/** A plain file name inside cert_dir: no path, nothing the generation layout uses itself. */
const fileName = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'must be at most 255 bytes')
  .superRefine((s, ctx) => {
    if (s.includes('/') || s === '.' || s === '..') ctx.addIssue({ code: 'custom', message: 'must be a plain file name (no "/", not "." or "..")' });
    else if (CONTROL.test(s)) ctx.addIssue({ code: 'custom', message: 'must not hold control or bidirectional formatting characters' });
    else if (s === CURRENT_LINK || s === LOCK_FILE || s.startsWith('.')) ctx.addIssue({ code: 'custom', message: `must not start with "." nor be "${CURRENT_LINK}" or "${LOCK_FILE}" (the helper's own names)` });
  });

const duration = (min: number, max: number) =>
  z.string().transform((s, ctx) => {
    try {
      const secs = parseDuration(s, 'duration');
      if (secs < min || secs > max) {
        ctx.addIssue({ code: 'custom', message: `must be between ${min}s and ${max}s` });
        return z.NEVER;
      }
      return secs * 1000;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: errorMessage(err).replace(/^duration: /, '') });
      return z.NEVER;
    }
  });

/** Signals a server can be asked to reload with; SIGKILL and SIGSTOP cannot be caught, so they reload nothing. */
const SIGNAL_NAMES = Object.keys(constants.signals).filter((s) => s !== 'SIGKILL' && s !== 'SIGSTOP');

const jwtSvid = z
  .object({
    jwt_audience: z.string().min(1, 'must not be empty').max(1024, 'must be at most 1024 bytes'),
    jwt_extra_audiences: z.array(z.string().min(1, 'must not be empty').max(1024, 'must be at most 1024 bytes')).max(31, 'at most 31 (32 audiences a request)').default([]),
    jwt_svid_file_name: fileName,
  })
  .strict();

const helperSchema = z
  .object({
    agent_address: z.string().min(1).optional(),
    cert_dir: z.string().min(1, 'must not be empty'),
    svid_file_name: fileName.default('svid.pem'),
    svid_key_file_name: fileName.default('svid_key.pem'),
    svid_bundle_file_name: fileName.default('bundle.pem'),
    federated_bundles_dir_name: fileName.default('federated'),
    include_federated_domains: z.boolean().default(false),
    add_intermediates_to_bundle: z.boolean().default(false),
    hint: z.string().max(1024).optional(),
    jwt_svids: z.array(jwtSvid).max(16, 'at most 16 JWT-SVIDs').default([]),
    cmd: z.string().min(1, 'must not be empty').optional(),
    cmd_args: z.array(z.string(), { message: 'must be a list of strings (no shell parses it)' }).max(256).default([]),
    cmd_timeout: duration(1, 600).default(30_000),
    pid_file_name: z.string().min(1, 'must not be empty').optional(),
    renew_signal: z
      .string()
      .transform((s, ctx) => {
        if (SIGNAL_NAMES.includes(s)) return s as NodeJS.Signals;
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s.slice(0, 32))} is not a signal name such as SIGHUP or SIGUSR1 (SIGKILL and SIGSTOP reload nothing)` });
        return z.NEVER;
      })
      .optional(),
    retry_initial: duration(1, 60).default(1000),
    retry_max: duration(1, 3600).default(60_000),
    startup_timeout: duration(1, 3600).default(60_000),
    daemon_mode: z.boolean().default(true),
    keep_generations: z.number().int('must be a whole number').min(2, 'must be at least 2').max(100, 'must be at most 100').default(3),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.cmd !== undefined && c.pid_file_name !== undefined) ctx.addIssue({ code: 'custom', message: 'give cmd or pid_file_name, not both' });
    if (c.pid_file_name !== undefined && c.renew_signal === undefined) ctx.addIssue({ code: 'custom', path: ['renew_signal'], message: 'is required with pid_file_name' });
    if (c.renew_signal !== undefined && c.pid_file_name === undefined) ctx.addIssue({ code: 'custom', path: ['pid_file_name'], message: 'is required with renew_signal' });
    if (c.cmd === undefined && c.cmd_args.length > 0) ctx.addIssue({ code: 'custom', path: ['cmd_args'], message: 'needs cmd' });
    if (c.retry_max < c.retry_initial) ctx.addIssue({ code: 'custom', path: ['retry_max'], message: 'must not be less than retry_initial' });
    // Every name lands in the same generation directory.
    const names = [c.svid_file_name, c.svid_key_file_name, c.svid_bundle_file_name, c.federated_bundles_dir_name, ...c.jwt_svids.map((j) => j.jwt_svid_file_name)];
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) ctx.addIssue({ code: 'custom', message: `the file name "${n}" is used twice` });
      seen.add(n);
    }
    if (c.agent_address !== undefined) {
      try {
        parseWorkloadApiAddress(c.agent_address, { allowBarePath: true });
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['agent_address'], message: errorMessage(err) });
      }
    }
  });

export type HelperConfig = z.output<typeof helperSchema> & { source: string };

/** Validates a parsed helper.yaml; relative paths are taken from `baseDir` (the file's directory). */
export function parseHelperConfig(doc: unknown, source: string, baseDir: string): HelperConfig {
  const r = helperSchema.safeParse(doc ?? {});
  if (!r.success) throw invalid(`config: ${formatIssues(source, r.error)}`);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const c = r.data;
  if (c.agent_address === undefined && !process.env[ENDPOINT_SOCKET_ENV]) {
    throw invalid(`config: ${source}: agent_address: is required when ${ENDPOINT_SOCKET_ENV} is not set`);
  }
  return {
    ...c,
    source,
    cert_dir: abs(c.cert_dir),
    pid_file_name: c.pid_file_name && abs(c.pid_file_name),
  };
}

export function loadHelperConfig(path: string): HelperConfig {
  return parseHelperConfig(readYamlConfig(path), path, dirname(resolve(path)));
}
