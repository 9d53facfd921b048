import { invalid } from '@anchorage/client/errors';
import type { SpiffeId } from '@anchorage/client/spiffe/id';

/**
 * The namespace anchorage keeps for its own identities: the server
 * (`/anchorage/server`, the SVID agents authenticate the server by) and the
 * agents (`/anchorage/agent/...`, made only by attestation). A workload
 * holding one of these IDs could stand in for the server towards a new agent,
 * or for an agent towards the server, so no entry, mint or node alias may
 * name one. Parent IDs are another matter: an entry's parent is an agent ID
 * (or the server ID, for node aliases) by design.
 */
export const RESERVED_PATH = '/anchorage';

/** True for `/anchorage` itself and every path under `/anchorage/`. Paths are case-sensitive (SPIFFE-ID.md). */
export function isReservedPath(path: string): boolean {
  return path === RESERVED_PATH || path.startsWith(`${RESERVED_PATH}/`);
}

/** {@link isReservedPath} of an ID in any trust domain. */
export function isReservedId(id: SpiffeId): boolean {
  return isReservedPath(id.path);
}

/** The one wording of the refusal; `module` prefixes it (`entry`, `x509svid`, `admin`...). */
export function reservedMessage(module: string, id: SpiffeId | string): string {
  return `${module}: spiffe id ${id.toString()} is in the namespace reserved for anchorage itself (${RESERVED_PATH}/...)`;
}

/** Refuses an ID in the reserved namespace with `invalid_argument`. */
export function checkNotReserved(id: SpiffeId, module: string): SpiffeId {
  if (isReservedId(id)) throw invalid(reservedMessage(module, id));
  return id;
}
