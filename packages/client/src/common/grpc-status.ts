import { status } from '@grpc/grpc-js';
import type { ErrorCode } from './errors.js';

/**
 * The one mapping between error codes and gRPC statuses, both ways: the
 * server's service edge turns codes into statuses with it, clients turn
 * statuses back into codes.
 */
export const STATUS_FOR: Readonly<Record<ErrorCode, status>> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  failed_precondition: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  internal: status.INTERNAL,
};

/** The reverse mapping, for clients that want to rethrow a status as our error type. */
export function codeForStatus(code: number): ErrorCode {
  for (const [k, v] of Object.entries(STATUS_FOR)) if (v === code) return k as ErrorCode;
  return 'internal';
}
