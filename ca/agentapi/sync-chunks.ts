// Splits one pass of SyncAuthorizedEntries into messages of bounded encoded
// size, so an agent authorized for any number of entries never meets gRPC's
// message-size limit (4 MiB by default; SPIRE met it at about 17k entries,
// spire#2675). Sizes are computed from the protobuf wire format, not
// estimated: the exact length `responseSerialize` would produce.
import type { AuthorizedEntry } from '../../proto/gen/anchorage/agent/v1/AuthorizedEntry.js';
import type { SyncAuthorizedEntriesResponse } from '../../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';

/** The largest encoded message of a pass: 1 MiB, a quarter of gRPC's default receive limit. */
export const SYNC_MESSAGE_LIMIT = 1024 * 1024;
/** The range a configured limit must be in: room for an entry or two, and under gRPC's default 4 MiB. */
export const MIN_SYNC_MESSAGE_LIMIT = 4096;
export const MAX_SYNC_MESSAGE_LIMIT = 4 * 1024 * 1024 - 1024;

/** Bytes of a varint holding `n` (a non-negative safe integer; a negative int32/int64 takes 10). */
export function varintSize(n: number): number {
  if (n < 0) return 10;
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** A length-delimited field of `len` bytes with a one-byte tag (field numbers 1 to 15). */
function delimited(len: number): number {
  return 1 + varintSize(len) + len;
}

// protobufjs (behind @grpc/proto-loader) writes every field that is set on
// the object, even to its default value ('' , 0, false): only an absent
// (undefined or null) field costs nothing.
function stringField(s: string | undefined | null): number {
  return s == null ? 0 : delimited(Buffer.byteLength(s));
}

function repeatedStrings(list: string[] | undefined | null): number {
  let n = 0;
  for (const s of list ?? []) n += delimited(Buffer.byteLength(s)); // every element, even empty
  return n;
}

function intField(v: number | string | undefined | null): number {
  return v == null ? 0 : 1 + varintSize(Number(v));
}

function boolField(v: boolean | undefined | null): number {
  return v == null ? 0 : 2;
}

/** Encoded size of an AuthorizedEntry as field 1 of the response (tag and length included). */
export function entryFieldSize(e: AuthorizedEntry): number {
  const body =
    stringField(e.id) +
    stringField(e.spiffe_id) +
    repeatedStrings(e.selectors) +
    intField(e.x509_svid_ttl) +
    intField(e.jwt_svid_ttl) +
    repeatedStrings(e.dns_names) +
    repeatedStrings(e.federates_with) +
    stringField(e.hint) +
    intField(e.revision == null ? undefined : Number(e.revision));
  return delimited(body);
}

/** Encoded size of a removed entry ID as field 5 of the response. */
export function removedFieldSize(id: string): number {
  return delimited(Buffer.byteLength(id));
}

/** Encoded size of a whole response (what `responseSerialize` produces). */
export function responseSize(m: SyncAuthorizedEntriesResponse): number {
  let n = stringField(m.bundle) + boolField(m.full) + boolField(m.has_tainted) + boolField(m.more);
  for (const e of m.entries ?? []) n += entryFieldSize(e);
  for (const [k, v] of Object.entries(m.federated_bundles ?? {})) n += delimited(stringField(k) + stringField(v));
  for (const id of m.removed_entry_ids ?? []) n += removedFieldSize(id);
  n += repeatedStrings(m.tainted_x509_authorities) + repeatedStrings(m.tainted_jwt_authorities);
  return n;
}

/**
 * One pass as messages of at most `limit` encoded bytes each: `head` (the
 * bundles, the tainted sets) goes in the first message, then the entries,
 * then the removed IDs, in order. Every message but the last has more =
 * true; all have the pass's `full`. A message holds at least one entry or
 * ID, so a single item larger than the limit (none is: entries are bounded
 * by validation) goes alone rather than stalling the pass; likewise bundles
 * larger than the limit make the first message larger.
 */
export function splitPass(
  head: Omit<SyncAuthorizedEntriesResponse, 'entries' | 'removed_entry_ids' | 'full' | 'more'>,
  full: boolean,
  entries: AuthorizedEntry[],
  removed: string[],
  limit = SYNC_MESSAGE_LIMIT,
): SyncAuthorizedEntriesResponse[] {
  const out: SyncAuthorizedEntriesResponse[] = [];
  // Every message is sized as if it had full and more set (2 bytes each).
  let current: SyncAuthorizedEntriesResponse = { ...head, full, entries: [], removed_entry_ids: [] };
  let size = responseSize({ ...current, full: true, more: true });
  let items = 0;
  const next = (itemSize: number) => {
    if (items > 0 && size + itemSize > limit) {
      out.push({ ...current, more: true });
      current = { full, entries: [], removed_entry_ids: [] };
      size = responseSize({ ...current, full: true, more: true });
      items = 0;
    }
    size += itemSize;
    items++;
  };
  for (const e of entries) {
    next(entryFieldSize(e));
    current.entries!.push(e);
  }
  for (const id of removed) {
    next(removedFieldSize(id));
    current.removed_entry_ids!.push(id);
  }
  out.push({ ...current, more: false });
  return out;
}
