// gRPC server reflection for the Workload API: the fix for @grpc/reflection's
// names of a proto file without a package (the Workload API's, by spec). The
// package definition it serves is @anchorage/client/proto's.
import type { ReflectionService } from '@grpc/reflection';
import type { Logger } from '../common/log.js';

/** The indexes @grpc/reflection keeps per protocol version (private fields, checked before use). */
interface ReflectionIndex {
  services: Record<string, unknown>;
  symbols: Record<string, unknown>;
}

function isReflectionIndex(v: unknown): v is ReflectionIndex {
  const o = v as Partial<ReflectionIndex> | undefined;
  return typeof o?.services === 'object' && o.services !== null && typeof o.symbols === 'object' && o.symbols !== null;
}

/**
 * @grpc/reflection 1.0 indexes symbols of a file without a `package` line
 * under a leading dot (`.SpiffeWorkloadAPI`), so it lists a service name no
 * client can call and cannot find `SpiffeWorkloadAPI` by its real name
 * (related: grpc-node#2934). The Workload API has no package by spec, so the
 * names are fixed here; the dotted symbols stay as aliases. If a later
 * version changes its internals, reflection keeps its upstream behaviour and
 * we only warn.
 */
export function fixUnscopedReflectionNames(reflection: ReflectionService, log: Logger): void {
  const impls = reflection as unknown as Record<string, unknown>;
  for (const version of ['v1', 'v1Alpha']) {
    const index = impls[version];
    if (!isReflectionIndex(index)) {
      log.warn({ version }, 'workloadapi: unexpected @grpc/reflection internals; reflection may list ".SpiffeWorkloadAPI"');
      continue;
    }
    for (const [name, service] of Object.entries(index.services)) {
      if (!name.startsWith('.')) continue;
      delete index.services[name];
      index.services[name.slice(1)] = service;
    }
    for (const [name, file] of Object.entries(index.symbols)) {
      if (name.startsWith('.') && !(name.slice(1) in index.symbols)) index.symbols[name.slice(1)] = file;
    }
  }
}
