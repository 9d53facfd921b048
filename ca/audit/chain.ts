// The audit chain: the record format, its canonical encoding, the hash that
// links each record to the one before it, and the signed checkpoints. Pure
// functions, so the same code builds the chain (log.ts) and checks it (verify).
import { createPublicKey, hash as oneShotHash, verify as verifySignature } from 'node:crypto';
import type { AuditActor, AuditEvent } from './event.js';

/** A record as stored: the event, its place in the chain, and the links. */
export interface AuditRecord extends AuditEvent {
  /** 1, 2, 3, … with no gaps. */
  seq: number;
  /** Milliseconds since the epoch, when record() was called. */
  time: number;
  /** Hex SHA-256: the `hash` of record seq − 1 ({@link GENESIS_HASH} for seq 1). */
  prevHash: string;
  /** Hex SHA-256 of the UTF-8 text prevHash (64 hex digits) followed by {@link canonicalEncoding} of this record. */
  hash: string;
}

/** The prev_hash of the first record: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

/** The type of the signed checkpoint records. */
export const CHECKPOINT_TYPE = 'audit.checkpoint';
/** The type of the record a server appends when it starts. */
export const STARTED_TYPE = 'audit.started';

/**
 * The writer puts a checkpoint after every 1,000 records and refuses to
 * append more than this many records after the last one (log.ts); verify
 * refuses a longer stretch without one, so the chain cannot be rewritten by
 * dropping the checkpoints and recomputing the hashes.
 */
export const MAX_UNCHECKPOINTED = 4096;

/** Version tag at the head of every canonical encoding. */
const ENCODING_VERSION = 'anchorage.audit.v1';

/**
 * The canonical encoding of a record (everything but `hash`): the UTF-8 bytes
 * of a JSON array whose elements are, in this fixed order,
 *
 *   0 "anchorage.audit.v1"          6 spiffeId  (string or null)
 *   1 seq      (integer)            7 serial    (string or null)
 *   2 time     (integer, ms)        8 jti       (string or null)
 *   3 type     (string)             9 expiresAt (integer or null)
 *   4 actor    ([uid, gid, pid] or null)      10 authority (string or null)
 *   5 agent    (string or null)    11 outcome   (string or null)
 *                                  12 details   (null, or [[key, value], …] sorted by key)
 *
 * JSON.stringify of arrays, strings, integers, booleans and null has exactly
 * one output for one input, so the bytes depend on the values only. A field
 * that is absent and a field that is present are always told apart (null
 * versus a value), and no field can move into another's place.
 */
export function canonicalEncoding(r: Omit<AuditRecord, 'hash' | 'prevHash'>): string {
  const details = r.details === undefined ? null : Object.keys(r.details).sort().map((k) => [k, r.details![k]!]);
  const actor = r.actor === undefined ? null : [r.actor.uid, r.actor.gid, r.actor.pid];
  return JSON.stringify([
      ENCODING_VERSION,
      r.seq,
      r.time,
      r.type,
      actor,
      r.agent ?? null,
      r.spiffeId ?? null,
      r.serial ?? null,
      r.jti ?? null,
      r.expiresAt ?? null,
      r.authority ?? null,
      r.outcome ?? null,
      details,
    ]);
}

/**
 * hash = SHA-256 of the UTF-8 bytes of prev_hash (64 lowercase hex digits)
 * followed by the canonical encoding, as 64 lowercase hex digits.
 */
export function recordHash(prevHash: string, r: Omit<AuditRecord, 'hash' | 'prevHash'>): string {
  return oneShotHash('sha256', prevHash + canonicalEncoding(r), 'hex');
}

/** Makes the next record of a chain whose head is (seq − 1, prevHash). */
export function chainRecord(event: AuditEvent, seq: number, time: number, prevHash: string): AuditRecord {
  const r = cleanEvent(event) as AuditRecord;
  r.seq = seq;
  r.time = time;
  r.prevHash = prevHash;
  r.hash = recordHash(prevHash, r);
  return r;
}

/** An event with the time record() was called (ms). */
export interface TimedEvent {
  event: AuditEvent;
  time: number;
}

/** The head a batch is chained to: the seq and hash of the last stored record (0 and {@link GENESIS_HASH} for an empty log). */
export interface ChainHead {
  seq: number;
  hash: string;
}

/** The records that follow `prev` for these events, in order. */
export function chainEvents(prev: ChainHead, events: readonly TimedEvent[]): AuditRecord[] {
  const out: AuditRecord[] = [];
  let seq = prev.seq;
  let hash = prev.hash;
  for (const e of events) {
    const r = chainRecord(e.event, ++seq, e.time, hash);
    out.push(r);
    hash = r.hash;
  }
  return out;
}

/** Only the known fields, without undefined values: what is stored is exactly what is hashed. */
export function cleanEvent(e: AuditEvent): AuditEvent {
  const out: AuditEvent = { type: e.type };
  if (e.actor !== undefined) out.actor = { uid: e.actor.uid, gid: e.actor.gid, pid: e.actor.pid } satisfies AuditActor;
  if (e.agent !== undefined) out.agent = e.agent;
  if (e.spiffeId !== undefined) out.spiffeId = e.spiffeId;
  if (e.serial !== undefined) out.serial = e.serial;
  if (e.jti !== undefined) out.jti = e.jti;
  if (e.expiresAt !== undefined) out.expiresAt = e.expiresAt;
  if (e.authority !== undefined) out.authority = e.authority;
  if (e.outcome !== undefined) out.outcome = e.outcome;
  if (e.details !== undefined) {
    const d: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(e.details)) if (v !== undefined) d[k] = v;
    out.details = d;
  }
  return out;
}

/**
 * What a checkpoint signs: the trust domain, and the seq, hash and time of
 * the record the checkpoint follows, as the UTF-8 JSON array
 * `["anchorage.audit.checkpoint.v1", trustDomain, seq, hash, time]`.
 */
export function checkpointMessage(trustDomain: string, seq: number, hash: string, time: number): Buffer {
  return Buffer.from(JSON.stringify(['anchorage.audit.checkpoint.v1', trustDomain, seq, hash, time]), 'utf8');
}

/** The HSM label of a trust domain's audit checkpoint key. */
export function auditKeyLabel(trustDomain: string): string {
  return `anchorage-audit-${trustDomain}`;
}

/** The checkpoint event that follows `prev`, signed with `sign` (IEEE P1363 r||s). */
export async function checkpointEvent(
  trustDomain: string,
  keyId: string,
  prev: { seq: number; hash: string; time: number },
  sign: (data: Uint8Array) => Promise<Uint8Array>,
): Promise<AuditEvent> {
  const sig = await sign(checkpointMessage(trustDomain, prev.seq, prev.hash, prev.time));
  return {
    type: CHECKPOINT_TYPE,
    details: { seq: prev.seq, hash: prev.hash, time: prev.time, key: keyId, sig: Buffer.from(sig).toString('base64url') },
  };
}

/** What verify found. */
export interface VerifyResult {
  ok: boolean;
  recordsChecked: number;
  checkpointsChecked: number;
  /** The head: the last record's seq (0 for an empty log). */
  headSeq: number;
  /** The first record found wrong (0 when ok, or when the whole log is too short). */
  firstBadSeq: number;
  /** Why, in one sentence ('' when ok). */
  reason: string;
}

/**
 * Checks a chain incrementally, record by record in the order the store
 * returns them (ascending seq): contiguous seq from 1, each prev_hash the
 * previous hash, each hash recomputed, each checkpoint's claim about the
 * record before it, and its signature with `publicKeySpki` (the key manager's
 * key, never one the record names).
 */
export class ChainVerifier {
  private prev: AuditRecord | undefined;
  private expectSeq = 1;
  /** Records since the last checkpoint (or the start). */
  private sinceCheckpoint = 0;
  recordsChecked = 0;
  checkpointsChecked = 0;
  /** Set at the first bad record; feeding stops mattering then. */
  bad: { seq: number; reason: string } | undefined;

  constructor(
    private readonly trustDomain: string,
    private readonly publicKeySpki: Uint8Array | undefined,
    private readonly opts: {
      /** Records known from outside the datastore (the server's memory, the head file): each must be there, with this hash. */
      anchors?: Array<{ seq: number; hash: string; what: string }>;
    } = {},
  ) {}

  /** Checks the next record; false once the chain is found bad. */
  feed(r: AuditRecord): boolean {
    if (this.bad) return false;
    const fail = (reason: string): false => {
      this.bad = { seq: this.expectSeq, reason };
      return false;
    };
    if (r.seq !== this.expectSeq) {
      return fail(
        r.seq > this.expectSeq
          ? `record ${this.expectSeq} is missing (the next stored record is ${r.seq})`
          : `record ${r.seq} appears where record ${this.expectSeq} belongs (out of order or duplicated)`,
      );
    }
    const prevHash = this.prev?.hash ?? GENESIS_HASH;
    if (r.prevHash !== prevHash) {
      return fail(`prev_hash does not match the hash of record ${r.seq - 1} (a record before it was changed, removed or reordered)`);
    }
    const { hash: _h, prevHash: _p, ...body } = r;
    if (recordHash(prevHash, body) !== r.hash) return fail('its hash does not match its contents (the record was edited)');
    if (r.type === CHECKPOINT_TYPE) {
      const why = this.checkCheckpoint(r);
      if (why) return fail(why);
      this.checkpointsChecked++;
      this.sinceCheckpoint = 0;
    } else if (++this.sinceCheckpoint > MAX_UNCHECKPOINTED) {
      // The writer refuses to go further without a checkpoint; a longer run
      // means checkpoints were removed and the hashes recomputed.
      return fail(`more than ${MAX_UNCHECKPOINTED} records without a signed checkpoint (checkpoints were removed and the chain rewritten)`);
    }
    for (const a of this.opts.anchors ?? []) {
      if (r.seq === a.seq && r.hash !== a.hash) return fail(`its hash differs from the one ${a.what} recorded for it (the chain was rewritten)`);
    }
    this.prev = r;
    this.expectSeq++;
    this.recordsChecked++;
    return true;
  }

  private checkCheckpoint(r: AuditRecord): string | undefined {
    const d = r.details ?? {};
    const p = this.prev;
    if (!p) return 'a checkpoint cannot be the first record';
    if (d.seq !== p.seq || d.hash !== p.hash || d.time !== p.time) return `the checkpoint does not describe record ${p.seq} before it`;
    if (!this.publicKeySpki) return 'the audit checkpoint key is not in the key manager, so the checkpoint signature cannot be checked';
    if (typeof d.sig !== 'string') return 'the checkpoint carries no signature';
    let ok = false;
    try {
      const key = createPublicKey({ key: Buffer.from(this.publicKeySpki), format: 'der', type: 'spki' });
      ok = verifySignature('sha256', checkpointMessage(this.trustDomain, p.seq, p.hash, p.time), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(d.sig, 'base64url'));
    } catch {
      ok = false;
    }
    return ok ? undefined : 'the checkpoint signature does not verify with the audit key in the key manager';
  }

  /** The last good record, if any. */
  get last(): AuditRecord | undefined {
    return this.prev;
  }

  /**
   * The verdict once every record has been fed. `minHead`: the highest seq
   * this server is known to have written (its memory, the head anchor file);
   * a shorter log was truncated.
   */
  result(minHead: { seq: number; what: string } | undefined, headSeq: number): VerifyResult {
    const base = { recordsChecked: this.recordsChecked, checkpointsChecked: this.checkpointsChecked, headSeq };
    if (this.bad) return { ...base, ok: false, firstBadSeq: this.bad.seq, reason: this.bad.reason };
    const last = this.prev?.seq ?? 0;
    if (minHead && last < minHead.seq) {
      return {
        ...base,
        ok: false,
        firstBadSeq: last + 1,
        reason: `the log ends at record ${last} but ${minHead.what} says record ${minHead.seq} was written (records ${last + 1}..${minHead.seq} were removed: truncated)`,
      };
    }
    return { ...base, ok: true, firstBadSeq: 0, reason: '' };
  }
}
