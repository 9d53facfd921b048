// The bounds on the Workload API's connections: the defaults of the global
// and per-uid caps, the file-descriptor budget they follow when unset, and
// the log that reports refused connections without being flooded by them.
// The accept guard that applies them is in server.ts.
import { readFileSync } from 'node:fs';
import { AnchorageError } from '../common/errors.js';
import type { Logger } from '../common/log.js';

/** Default of {@link WorkloadApiOptions.maxConnections}: 8,192 to 16,384 descriptors, far below Node's usual limit. */
export const DEFAULT_MAX_CONNECTIONS = 4096;
/**
 * Default of {@link WorkloadApiOptions.maxConnectionsPerUid}. A workload
 * holds one connection per gRPC channel, usually one; 1,024 leaves room for
 * many processes sharing a uid (containers all running as root, a test
 * driver holding 1,000 streams), while one uid can take at most a quarter of
 * the global cap.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_UID = 1024;
/** Descriptors one connection may cost at most (socket, pidfd, the hop pair on the slow path). */
export const FDS_PER_CONNECTION = 4;
/** Descriptors kept for everything else (the server connection, files read while attesting, libuv). */
export const SPARE_FDS = 512;
/** Refusals of one kind are logged at most once per this interval, with a count of those not logged. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Logs repeated refusals without letting a flood of them flood the log: the
 * first of a kind (key) is logged, later ones within the interval are only
 * counted, and the next one logged after it carries that count. O(1) per
 * event, no timers; the key map is reset if it ever grows large.
 */
export class RefusalLog {
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly msg = 'workloadapi: connection refused',
  ) {}

  note(key: string, fields: Record<string, unknown>, reason: string): void {
    const now = Date.now();
    const e = this.#last.get(key);
    if (e !== undefined && now - e.at < this.intervalMs) {
      e.suppressed++;
      return;
    }
    if (this.#last.size >= 1024) this.#last.clear();
    this.#last.set(key, { at: now, suppressed: 0 });
    this.log.warn({ ...fields, reason, suppressed: e?.suppressed ?? 0 }, this.msg);
  }
}

/** The soft RLIMIT_NOFILE of this process, from /proc/self/limits; undefined if unknown or unlimited. */
export function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new AnchorageError('invalid_argument', `workloadapi: ${name} must be a positive integer, not ${v}`);
  return v;
}
