/**
 * Stable error codes. Callers branch on `code`, never on message text; the
 * service edge maps codes to gRPC status (see {@link grpcStatusFor}).
 */
export type ErrorCode =
  | 'invalid_argument' // the caller sent something malformed or out of policy
  | 'not_found'
  | 'already_exists'
  | 'unauthenticated' // no (valid) credentials at all
  | 'permission_denied'
  | 'failed_precondition' // the system is not in a state that allows this
  | 'unavailable' // a dependency (HSM, datastore) cannot be reached right now
  | 'internal';

/**
 * The one error type of the project. Messages are lower-case and prefixed by
 * the module that raised them (`x509svid: leaf must not be a CA`).
 */
export class AnchorageError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AnchorageError';
    this.code = code;
  }
}

/** Shorthand for the most common case: bad input from a caller. */
export function invalid(message: string, cause?: unknown): AnchorageError {
  return new AnchorageError('invalid_argument', message, cause === undefined ? undefined : { cause });
}

export function isAnchorageError(err: unknown, code?: ErrorCode): err is AnchorageError {
  return err instanceof AnchorageError && (code === undefined || err.code === code);
}

/** Renders an unknown thrown value as a one-line message. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
