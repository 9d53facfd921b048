import { status } from '@grpc/grpc-js';
import { AnchorageError, type ErrorCode } from './common/errors.js';
import { codeForStatus } from './common/grpc-status.js';

/** Statuses that mean "try again later" without being UNAVAILABLE itself. */
const TRANSIENT = new Set<number>([status.OK, status.CANCELLED, status.DEADLINE_EXCEEDED, status.ABORTED, status.RESOURCE_EXHAUSTED]);

function codeFor(s: status): ErrorCode {
  return TRANSIENT.has(s) ? 'unavailable' : codeForStatus(s);
}

/**
 * A Workload API call that ended with a non-OK status (or a stream the
 * server closed with OK, which for the never-ending Fetch streams is just
 * as much a disconnection). `status` is the gRPC code, for callers that
 * must tell PERMISSION_DENIED from INVALID_ARGUMENT; `code` is the project's
 * error code for everyone else.
 */
export class WorkloadApiError extends AnchorageError {
  /** The gRPC status code (`grpc.status.PERMISSION_DENIED`…). */
  readonly status: status;
  /** The server's status message, as sent. */
  readonly details: string;
  /** The RPC, e.g. `FetchX509SVID`. */
  readonly method: string;

  constructor(method: string, grpcStatus: status, details: string, options?: { cause?: unknown }) {
    const what = grpcStatus === status.OK ? 'the server ended the stream' : `${status[grpcStatus] ?? grpcStatus}: ${details}`;
    super(codeFor(grpcStatus), `workloadapi: ${method}: ${what}`, options);
    this.name = 'WorkloadApiError';
    this.status = grpcStatus;
    this.details = details;
    this.method = method;
  }
}

export function isWorkloadApiError(err: unknown, grpcStatus?: status): err is WorkloadApiError {
  return err instanceof WorkloadApiError && (grpcStatus === undefined || err.status === grpcStatus);
}

/** Where the client logs what it does in the background (retries, dropped messages). pino loggers fit. */
export interface WorkloadApiLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

const nop = (): void => undefined;

/** The default: a library logs nothing unless asked to. */
export const NOOP_LOGGER: WorkloadApiLogger = Object.freeze({ debug: nop, info: nop, warn: nop, error: nop });
