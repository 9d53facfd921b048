import type { ErrorCode } from './errors.js';

// The gRPC status codes our errors map to, as the numbers of the gRPC spec
// (doc/statuscodes.md): a module of its own so that a client can map
// statuses without loading @grpc/grpc-js (the CLI's start time, issue 17).

export const STATUS_FOR: Record<ErrorCode, number> = {
  invalid_argument: 3,
  not_found: 5,
  already_exists: 6,
  unauthenticated: 16,
  permission_denied: 7,
  failed_precondition: 9,
  unavailable: 14,
  internal: 13,
};

/**
 * Trailer naming the AnchorageError code of a status our own handler returned.
 * A client tells "the server answered UNAVAILABLE" (a token outage, a full
 * disk) from "no server answered" (grpc-js makes those statuses locally,
 * without trailers) by its presence.
 */
export const ERROR_CODE_TRAILER = 'anchorage-error-code';

/** The reverse mapping, for clients that want to rethrow a status as our error type. */
export function codeForStatus(code: number): ErrorCode {
  for (const [k, v] of Object.entries(STATUS_FOR)) if (v === code) return k as ErrorCode;
  return 'internal';
}
