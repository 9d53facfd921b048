import { z } from 'zod';
import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import type { WorkloadAttestor } from '../../workload-api/WorkloadAttestor.js';
import { UnionAttestor } from './union.js';
import { UnixWorkloadAttestor } from './unix.js';

/**
 * The workload attestors the agent knows, chosen by `type` in the agent
 * config's `workload_attestors` list. Adding a kind of attestor means adding
 * one `kind(...)` below: its options schema (validated with the rest of the
 * config, so a bad key fails at load with its path) and how to build it.
 */

/** What every attestor may use, besides its own options. */
export interface WorkloadAttestorDeps {
  logger: Logger;
}

/** The agent's default for `max_hash_bytes` (the attestor's own default, 64 MiB, is smaller than Node itself). */
export const DEFAULT_CONFIG_MAX_HASH_BYTES = 256 * 1024 * 1024;

/** Options of a `unix` entry (and of the older `attestor:` block, which means one `unix` entry). */
export const unixAttestorOptions = z
  .object({
    hash_binary: z.boolean({ message: 'must be true or false' }).default(true),
    max_hash_bytes: z
      .number({ message: 'must be a whole number of bytes' })
      .int('must be a whole number of bytes')
      .min(0, 'must not be negative')
      .max(Number.MAX_SAFE_INTEGER, 'is too large')
      .default(DEFAULT_CONFIG_MAX_HASH_BYTES),
  })
  .strict();

/** One kind of attestor: the schema of its config entry (`type` and its options) and its constructor. */
function kind<T extends string, S extends z.ZodRawShape>(type: T, options: z.ZodObject<S>, create: (options: z.output<z.ZodObject<S>>, deps: WorkloadAttestorDeps) => WorkloadAttestor) {
  return { type, schema: z.object({ type: z.literal(type), ...options.shape }).strict(), create };
}

const KINDS = [
  kind('unix', unixAttestorOptions, (o, { logger }) => new UnixWorkloadAttestor({ logger, hashBinary: o.hash_binary, maxHashBytes: o.max_hash_bytes })),
] as const;

/** One validated entry of `workload_attestors`: its `type` and that type's options, defaults applied. */
export type WorkloadAttestorConfig = z.output<(typeof KINDS)[number]['schema']>;

/** The `type`s an agent config may name, in registration order. */
export const WORKLOAD_ATTESTOR_TYPES: readonly string[] = KINDS.map((k) => k.type);

const byType = new Map<string, (typeof KINDS)[number]>(KINDS.map((k) => [k.type, k]));

/**
 * Schema of one `workload_attestors` entry. An unknown `type` is reported on
 * `type` with the known ones listed, instead of one complaint per known
 * schema; a known one is then checked against that type's options.
 */
export const workloadAttestorEntry = z
  .object({ type: z.string({ message: 'must be a string naming the kind of attestor' }) }, { message: 'must be a mapping such as { type: unix }' })
  .loose()
  .superRefine((entry, ctx) => {
    if (byType.has(entry.type)) return;
    const shown = JSON.stringify(entry.type.length > 64 ? `${entry.type.slice(0, 64)}…` : entry.type);
    ctx.addIssue({ code: 'custom', path: ['type'], message: `unknown workload attestor type ${shown}; known types: ${WORKLOAD_ATTESTOR_TYPES.join(', ')}` });
  })
  .pipe(z.discriminatedUnion('type', KINDS.map((k) => k.schema) as unknown as [(typeof KINDS)[number]['schema']]));

/** Builds one attestor from its validated config entry. */
export function createWorkloadAttestor(config: WorkloadAttestorConfig, deps: WorkloadAttestorDeps): WorkloadAttestor {
  const k = byType.get(config.type);
  if (k === undefined) {
    throw new AnchorageError('invalid_argument', `attestor: unknown workload attestor type "${config.type}"; known types: ${WORKLOAD_ATTESTOR_TYPES.join(', ')}`);
  }
  // Each kind's create takes its own entry type; byType keyed by that type guarantees the match.
  return (k.create as (options: WorkloadAttestorConfig, deps: WorkloadAttestorDeps) => WorkloadAttestor)(config, deps);
}

/**
 * Builds every configured attestor, in config order, behind one
 * {@link UnionAttestor}: the single attestor the Workload API server takes.
 */
export function createWorkloadAttestors(configs: readonly WorkloadAttestorConfig[], deps: WorkloadAttestorDeps): UnionAttestor {
  return new UnionAttestor(configs.map((c) => createWorkloadAttestor(c, deps)));
}
