// Row mapping of audit records, shared by the SQLite and PostgreSQL stores.
// The columns that queries filter on (time, type, spiffe_id, serial, jti) are
// columns; the rest of the event is one JSON text, `body`. A record read back
// is rebuilt from all of them, so an edit to any column changes what verify
// hashes. A body that is not valid JSON still maps (to a record whose hash
// cannot match), so verify names that record instead of failing as a whole.
import type { AuditRecord } from '../audit/chain.js';
import type { AuditEvent } from '../audit/event.js';

export interface AuditRow {
  seq: number;
  time_ms: number;
  type: string;
  spiffe_id: string | null;
  serial: string | null;
  jti: string | null;
  body: string;
  prev_hash: string;
  hash: string;
}

type Body = Pick<AuditEvent, 'actor' | 'agent' | 'expiresAt' | 'authority' | 'outcome' | 'details'>;

/** The values of one record, in the column order of the INSERT statements. */
export function auditRowValues(r: AuditRecord): unknown[] {
  const body: Body = {};
  if (r.actor !== undefined) body.actor = r.actor;
  if (r.agent !== undefined) body.agent = r.agent;
  if (r.expiresAt !== undefined) body.expiresAt = r.expiresAt;
  if (r.authority !== undefined) body.authority = r.authority;
  if (r.outcome !== undefined) body.outcome = r.outcome;
  if (r.details !== undefined) body.details = r.details;
  return [r.seq, r.time, r.type, r.spiffeId ?? null, r.serial ?? null, r.jti ?? null, JSON.stringify(body), r.prevHash, r.hash];
}

export const AUDIT_COLUMNS = 'seq, time_ms, type, spiffe_id, serial, jti, body, prev_hash, hash';

export function auditFromRow(row: AuditRow): AuditRecord {
  const r: AuditRecord = { seq: Number(row.seq), time: Number(row.time_ms), type: row.type, prevHash: row.prev_hash, hash: row.hash };
  if (row.spiffe_id !== null) r.spiffeId = row.spiffe_id;
  if (row.serial !== null) r.serial = row.serial;
  if (row.jti !== null) r.jti = row.jti;
  let body: Body;
  try {
    const parsed: unknown = JSON.parse(row.body);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    body = parsed as Body;
  } catch {
    return { ...r, details: { unreadable_body: row.body.slice(0, 200) } };
  }
  if (body.actor !== undefined) r.actor = body.actor;
  if (body.agent !== undefined) r.agent = body.agent;
  if (body.expiresAt !== undefined) r.expiresAt = body.expiresAt;
  if (body.authority !== undefined) r.authority = body.authority;
  if (body.outcome !== undefined) r.outcome = body.outcome;
  if (body.details !== undefined) r.details = body.details;
  return r;
}

/** The WHERE clause and parameters of a query, with `$n` or `?` placeholders. */
export function auditWhere(
  q: { afterSeq?: number; sinceMs?: number; spiffeId?: string; serial?: string },
  placeholder: (n: number) => string,
): { where: string; params: unknown[] } {
  const conds: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return placeholder(params.length);
  };
  if (q.afterSeq !== undefined) conds.push(`seq > ${p(q.afterSeq)}`);
  if (q.sinceMs !== undefined) conds.push(`time_ms >= ${p(q.sinceMs)}`);
  if (q.spiffeId !== undefined) conds.push(`spiffe_id = ${p(q.spiffeId)}`);
  if (q.serial !== undefined) {
    // Serials are stored in lowercase hex; a jti is base64url, where case matters.
    const a = p(q.serial.toLowerCase());
    const b = p(q.serial);
    conds.push(`(serial = ${a} OR jti = ${b})`);
  }
  return { where: conds.length ? `WHERE ${conds.join(' AND ')}` : '', params };
}
