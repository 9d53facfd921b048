import { status, type ServiceError, Metadata, type handleUnaryCall, type ServerUnaryCall } from '@grpc/grpc-js';
import { AnchorageError, type ErrorCode } from './errors.js';
import type { Logger } from './log.js';

const STATUS_FOR: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  failed_precondition: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  internal: status.INTERNAL,
};

/**
 * Trailer naming the AnchorageError code of a status our own handler returned.
 * A client tells "the server answered UNAVAILABLE" (a token outage, a full
 * disk) from "no server answered" (grpc-js makes those statuses locally,
 * without trailers) by its presence.
 */
export const ERROR_CODE_TRAILER = 'anchorage-error-code';

/** True when a status came from one of our handlers rather than from the transport. */
export function answeredByServer(err: Pick<ServiceError, 'metadata'>): boolean {
  return (err.metadata?.get(ERROR_CODE_TRAILER).length ?? 0) > 0;
}

/**
 * The one place errors become gRPC statuses. Anything that is not an
 * AnchorageError is a bug: it is logged with its stack and the caller sees a
 * generic INTERNAL, never the internals.
 */
export function toServiceError(err: unknown, log: Logger, method: string): Partial<ServiceError> {
  if (err instanceof AnchorageError) {
    if (err.code === 'internal' || err.code === 'unavailable') log.error({ err, method }, 'request failed');
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_TRAILER, err.code);
    return { code: STATUS_FOR[err.code], details: err.message, metadata };
  }
  log.error({ err, method }, 'unexpected error');
  return { code: status.INTERNAL, details: `internal error in ${method}`, metadata: new Metadata() };
}

/** The gRPC status of an error code (for results that carry one per item, like BatchCreateEntry's). */
export function statusFor(code: ErrorCode): status {
  return STATUS_FOR[code];
}

/** The reverse mapping, for clients that want to rethrow a status as our error type. */
export function codeForStatus(code: number): ErrorCode {
  for (const [k, v] of Object.entries(STATUS_FOR)) if (v === code) return k as ErrorCode;
  return 'internal';
}

/**
 * Adapts an async handler to grpc-js: every error goes through the one
 * status mapping above.
 */
export function unaryHandler<Req, Res>(
  log: Logger,
  method: string,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err, log, method)),
    );
  };
}
