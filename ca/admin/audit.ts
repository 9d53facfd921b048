// The admin API's side of the audit log: every admin call is recorded (who,
// what, outcome) before its answer goes out, and the two audit RPCs.
import * as grpc from '@grpc/grpc-js';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import { SpiffeId } from '@anchorage/client/spiffe/id';
import { toServiceError, unaryHandler } from '../../common/grpc.js';
import type { Logger } from '../../common/log.js';
import type { AdminHandlers } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { AuditRecord as AuditRecordProto } from '../../proto/gen/anchorage/admin/v1/AuditRecord.js';
import type { ListAuditRecordsRequest__Output } from '../../proto/gen/anchorage/admin/v1/ListAuditRecordsRequest.js';
import type { AuditRecord } from '../audit/chain.js';
import type { AuditActor, AuditEvent, AuditSink } from '../audit/event.js';
import type { AuditLog } from '../audit/log.js';
import { checkRequestText } from './text.js';

/** Existing records per datastore read while streaming. */
const PAGE = 500;
/** Longest filter value accepted (a SPIFFE ID may be 2,048 bytes). */
const MAX_FILTER = 2048;

export interface AdminAuditDeps {
  audit: AuditSink;
  /** The caller of a call, from the admin socket (ca/admin/listener.ts). */
  actorOf?: (call: { getPeer(): string }) => AuditActor | undefined;
  logger: Logger;
}

/**
 * Calls that change nothing: if their record cannot be written (the log is
 * damaged or the datastore down), the answer still goes out, and the failure
 * is logged. Every other call answers UNAVAILABLE then.
 */
const READ_ONLY = /^(Get|List|VerifyAudit$)/;

/**
 * Calls whose success has a record of its own, naming the caller, committed
 * before the answer: the SVID's `x509_svid.issued` / `jwt_svid.issued`. Their
 * `admin.<Method>` record adds nothing that must be durable first, so a
 * successful one is written without holding up the answer, and shares a
 * commit with others (at API mint rates, a second commit wait per call cost
 * about a tenth of the throughput: bench api-mint). A refused one is
 * recorded before its answer, as any other call.
 */
const SELF_RECORDED = new Set(['MintX509SVID', 'MintJWTSVID']);

/** How long a self-recorded call's `admin.<Method>` record may wait to share a commit (capped by the log). */
const SELF_RECORDED_HOLD_MS = 20;

type AnyUnary = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/** The request fields worth keeping with the record of an admin call. */
function requestFields(req: unknown): Pick<AuditEvent, 'spiffeId' | 'details'> {
  const out: Pick<AuditEvent, 'spiffeId' | 'details'> = {};
  if (req === null || typeof req !== 'object') return out;
  const r = req as Record<string, unknown>;
  const entry = r.entry as Record<string, unknown> | null | undefined;
  const id = typeof r.spiffe_id === 'string' && r.spiffe_id ? r.spiffe_id : typeof entry?.spiffe_id === 'string' ? entry.spiffe_id : '';
  if (id) out.spiffeId = id.slice(0, MAX_FILTER);
  const details: Record<string, string | number | boolean> = {};
  for (const k of ['id', 'trust_domain', 'kind', 'serial'] as const) {
    if (typeof r[k] === 'string' && r[k]) details[k] = (r[k] as string).slice(0, 256);
  }
  if (typeof r.force === 'boolean' && r.force) details.force = true;
  if (Array.isArray(r.entries)) details.entries = r.entries.length;
  if (Object.keys(details).length > 0) out.details = details;
  return out;
}

function statusName(code: number | undefined): string {
  return grpc.status[code ?? grpc.status.UNKNOWN] ?? String(code);
}

/**
 * Wraps every unary handler: once it has its answer, `admin.<Method>` is
 * recorded with the caller's uid/gid/pid and the outcome (`ok` or the status
 * name), and only then does the answer go out (but see SELF_RECORDED). If
 * the record cannot be written, a successful call answers UNAVAILABLE saying
 * so (the change was made: the operator must know it is not in the log).
 */
export function withAuditRecords(handlers: AdminHandlers, deps: AdminAuditDeps): AdminHandlers {
  const wrapped: Record<string, AnyUnary> = {};
  const unrecorded = (method: string, auditErr: unknown) =>
    deps.logger.error({ method, err: auditErr instanceof Error ? auditErr.message : String(auditErr) }, 'admin: the audit record of a call could not be written');
  for (const [method, handler] of Object.entries(handlers) as Array<[string, AnyUnary]>) {
    wrapped[method] = (call, callback) => {
      const actor = deps.actorOf?.(call);
      handler(call, (err, value, trailer, flags) => {
        const event: AuditEvent = {
          type: `admin.${method}`,
          outcome: err ? statusName(err.code) : 'ok',
          ...requestFields(call.request),
          ...(actor && { actor }),
        };
        if (!err && SELF_RECORDED.has(method)) {
          deps.audit.record(event, { withinMs: SELF_RECORDED_HOLD_MS }).catch((auditErr: unknown) => unrecorded(method, auditErr));
          return callback(err, value, trailer, flags);
        }
        deps.audit.record(event).then(
          () => callback(err, value, trailer, flags),
          (auditErr: unknown) => {
            if (err || READ_ONLY.test(method)) {
              unrecorded(method, auditErr);
              return callback(err, value, trailer, flags);
            }
            const e = new AnchorageError(
              'unavailable',
              `admin: ${method} was carried out, but its audit record could not be written: ${auditErr instanceof Error ? auditErr.message : String(auditErr)}`,
            );
            callback(toServiceError(e, deps.logger, method));
          },
        );
      });
    };
  }
  return wrapped as unknown as AdminHandlers;
}

function toProto(r: AuditRecord): AuditRecordProto {
  return { seq: r.seq, time_ms: r.time, type: r.type, json: JSON.stringify(r) };
}

/** The audit RPCs. `audit` undefined: the server runs without an audit log (tests), and they say so. */
export function auditHandlers(deps: AdminAuditDeps & { log?: AuditLog }): Pick<AdminHandlers, 'ListAuditRecords' | 'VerifyAudit'> {
  const log = deps.logger;
  const need = (): AuditLog => {
    if (!deps.log) throw new AnchorageError('failed_precondition', 'admin: this server has no audit log');
    return deps.log;
  };
  return {
    VerifyAudit: unaryHandler(log, 'VerifyAudit', async () => {
      const v = await need().verify();
      return {
        ok: v.ok,
        records_checked: v.recordsChecked,
        checkpoints_checked: v.checkpointsChecked,
        head_seq: v.headSeq,
        first_bad_seq: v.firstBadSeq,
        reason: v.reason,
      };
    }),
    ListAuditRecords: (call: grpc.ServerWritableStream<ListAuditRecordsRequest__Output, AuditRecordProto>) => {
      const actor = deps.actorOf?.(call);
      let query: ReturnType<typeof checkQuery>;
      let audit: AuditLog;
      try {
        checkRequestText(call.request);
        audit = need();
        query = checkQuery(call.request);
      } catch (err) {
        const se = toServiceError(err, log, 'ListAuditRecords');
        void deps.audit
          .record({ type: 'admin.ListAuditRecords', outcome: statusName(se.code), ...(actor && { actor }) })
          .catch(() => undefined)
          .finally(() => call.destroy(se as grpc.ServiceError));
        return;
      }
      void stream(call, audit, query, deps, actor).catch((err: unknown) => {
        call.destroy(toServiceError(err, log, 'ListAuditRecords') as grpc.ServiceError);
      });
    },
  };
}

interface Query {
  afterSeq: number;
  sinceMs?: number;
  spiffeId?: string;
  serial?: string;
  limit: number;
  follow: boolean;
}

function checkQuery(req: ListAuditRecordsRequest__Output): Query {
  if (!Number.isSafeInteger(req.since_ms) || req.since_ms < 0) throw invalid('admin: since_ms must be a time in Unix milliseconds, 0 or more');
  if (!Number.isSafeInteger(req.after_seq) || req.after_seq < 0) throw invalid('admin: after_seq must be 0 or more');
  if (!Number.isInteger(req.limit) || req.limit < 0) throw invalid('admin: limit must be 0 (all) or more');
  if (req.spiffe_id.length > MAX_FILTER) throw invalid(`admin: spiffe_id is longer than ${MAX_FILTER} bytes`);
  if (req.serial !== '' && !/^[0-9A-Za-z_-]{1,128}$/.test(req.serial)) {
    throw invalid('admin: serial must be a serial number in hex or a JWT jti (letters, digits, - and _), at most 128 characters');
  }
  return {
    afterSeq: req.after_seq,
    ...(req.since_ms > 0 && { sinceMs: req.since_ms }),
    ...(req.spiffe_id !== '' && { spiffeId: SpiffeId.parse(req.spiffe_id).toString() }),
    ...(req.serial !== '' && { serial: req.serial }),
    limit: req.limit === 0 ? Number.MAX_SAFE_INTEGER : req.limit,
    follow: req.follow,
  };
}

async function stream(
  call: grpc.ServerWritableStream<ListAuditRecordsRequest__Output, AuditRecordProto>,
  audit: AuditLog,
  q: Query,
  deps: AdminAuditDeps,
  actor: AuditActor | undefined,
): Promise<void> {
  await deps.audit.record({
    type: 'admin.ListAuditRecords',
    outcome: 'ok',
    ...(q.spiffeId && { spiffeId: q.spiffeId }),
    details: { follow: q.follow, ...(q.serial && { serial: q.serial }), ...(q.sinceMs && { since_ms: q.sinceMs }) },
    ...(actor && { actor }),
  });
  let cancelled = false;
  let closed = false;
  let dirty = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    cancelled = true;
    wake?.();
  };
  call.on('cancelled', stop);
  call.on('close', stop);
  const unsubscribe = audit.onCommit((head) => {
    if (head < 0) closed = true;
    dirty = true;
    wake?.();
  });
  let after = q.afterSeq;
  let left = q.limit;
  try {
    for (let first = true; ; first = false) {
      dirty = false;
      for (;;) {
        const n = first ? Math.min(PAGE, left) : PAGE;
        if (n <= 0) break;
        const page = await audit.list({ afterSeq: after, sinceMs: q.sinceMs, spiffeId: q.spiffeId, serial: q.serial, limit: n });
        for (const r of page) {
          if (cancelled) return;
          after = r.seq;
          if (!call.write(toProto(r))) await new Promise<void>((resolve) => {
            wake = resolve;
            call.once('drain', resolve);
          });
        }
        if (first) left -= page.length;
        if (page.length < n) break;
      }
      // Following goes on from the last record sent, whatever the limit.
      if (!q.follow || cancelled || closed) break;
      // The limit was reached before the head: follow from the head.
      if (first && left <= 0) after = Math.max(after, audit.headSeq);
      if (!dirty) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      if (cancelled || closed) break;
    }
  } finally {
    unsubscribe();
  }
  if (!cancelled) call.end();
}
