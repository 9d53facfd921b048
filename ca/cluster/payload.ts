// The NOTIFY payload of one change: who sent it, its sequence number, and
// what changed. Encoded as a small JSON object, kept under PostgreSQL's
// 8000-byte limit: a change whose IDs do not fit is sent as "all entries
// changed", which makes every receiving agent stream do a full pass.

/** What a change says; mirrors the events of ca/changes.ts. */
export type Change =
  | { kind: 'entries'; ids: string[] }
  | { kind: 'evicted'; id: string }
  | { kind: 'bundles' }
  | { kind: 'ca' }
  | { kind: 'all' };

/** A change as received: the sending server's instance id and the change counter it raised. */
export interface ChangeMessage {
  origin: string;
  sequence: number;
  change: Change;
}

/** Version of the payload layout; a payload of another version is read as "all changed". */
const VERSION = 1;

/** Most IDs in one payload before it becomes "all" (the byte limit usually comes first). */
const MAX_IDS = 1000;

/**
 * The payload for `change`, at most `maxBytes` bytes of UTF-8: a change that
 * does not fit becomes `{kind: 'all'}` (and says so in `widened`).
 */
export function encodeChange(origin: string, sequence: number, change: Change, maxBytes: number): { payload: string; widened: boolean } {
  const body = (c: Change): string => {
    const base = { v: VERSION, o: origin, s: sequence, k: c.kind };
    if (c.kind === 'entries') return JSON.stringify({ ...base, ids: c.ids });
    if (c.kind === 'evicted') return JSON.stringify({ ...base, id: c.id });
    return JSON.stringify(base);
  };
  const fits = (p: string): boolean => Buffer.byteLength(p, 'utf8') <= maxBytes;
  if (!(change.kind === 'entries' && change.ids.length > MAX_IDS)) {
    const payload = body(change);
    if (fits(payload)) return { payload, widened: false };
  }
  const payload = body({ kind: 'all' });
  if (!fits(payload)) throw new Error(`cluster: a change payload cannot fit in ${maxBytes} bytes (origin id too long)`);
  return { payload, widened: true };
}

/**
 * Reads a payload. Anything that is not a well-formed payload of this
 * version throws, with a message saying what is wrong; the bridge then
 * treats it as "all changed" (a newer server may send kinds this one does
 * not know, and a full pass is always correct).
 */
export function decodeChange(payload: string): ChangeMessage {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    throw new Error('payload is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('payload is not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.v !== VERSION) throw new Error(`payload version ${JSON.stringify(o.v)} is not ${VERSION}`);
  if (typeof o.o !== 'string' || o.o === '') throw new Error('payload origin must be a non-empty string');
  if (typeof o.s !== 'number' || !Number.isSafeInteger(o.s) || o.s < 1) throw new Error('payload sequence must be a positive whole number');
  const head = { origin: o.o, sequence: o.s };
  switch (o.k) {
    case 'entries': {
      if (!Array.isArray(o.ids) || o.ids.length === 0 || o.ids.length > MAX_IDS || !o.ids.every((id) => typeof id === 'string' && id !== '')) {
        throw new Error(`payload ids must be 1 to ${MAX_IDS} non-empty strings`);
      }
      return { ...head, change: { kind: 'entries', ids: o.ids as string[] } };
    }
    case 'evicted':
      if (typeof o.id !== 'string' || o.id === '') throw new Error('payload id must be a non-empty string');
      return { ...head, change: { kind: 'evicted', id: o.id } };
    case 'bundles':
      return { ...head, change: { kind: 'bundles' } };
    case 'ca':
      return { ...head, change: { kind: 'ca' } };
    case 'all':
      return { ...head, change: { kind: 'all' } };
    default:
      throw new Error(`payload kind ${JSON.stringify(o.k)} is not known`);
  }
}
