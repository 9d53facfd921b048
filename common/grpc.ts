import { status, type ServiceError, Metadata, type handleUnaryCall, type ServerUnaryCall } from '@grpc/grpc-js';
import { AnchorageError, type ErrorCode } from '@anchorage/client/errors';
import { ERROR_CODE_TRAILER, STATUS_FOR } from '@anchorage/client/grpc-status';
import type { Logger } from './log.js';

export { ERROR_CODE_TRAILER, codeForStatus } from '@anchorage/client/grpc-status';

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
