/**
 * A minimal DER writer and reader, just enough for the certificates the CA
 * issues and the PKCS#10 requests it accepts. asn1js (behind @peculiar/x509)
 * builds an object graph per field and was the whole cost of minting an SVID
 * (ARCHITECTURE §3); this module writes bytes directly.
 *
 * Writer: primitives (`integer`, `oid`, `bitString`, …) return their finished
 * TLV as a Buffer. Constructed values (`seq`, `set`, `explicit`, …) return a
 * {@link Constructed} node that only records its children and total length;
 * {@link encode} then allocates the whole output once and writes every byte
 * exactly once, instead of re-copying each nesting level.
 *
 * Reader: offset-based, allocation-light, and strict: every length is checked
 * against what remains of its parent, indefinite and non-minimal lengths are
 * rejected, and callers say when a value must end exactly at its parent's end.
 */
import { invalid } from './errors.js';

// ---------------------------------------------------------------------------
// Tags

/** Universal tag bytes used by this project's certificates and CSRs. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------------------
// Writer

/** Anything that can be placed inside a constructed value. */
export type Der = Uint8Array | Constructed;

/**
 * A constructed value whose bytes are not written yet. Its encoded size is
 * known at construction, so parents can compute their own lengths without
 * serializing children first.
 */
export class Constructed {
  /** Total encoded size (tag + length + contents). */
  readonly size: number;
  /** Size of the contents alone. */
  readonly contentSize: number;

  constructor(
    readonly tag: number,
    readonly children: readonly Der[],
  ) {
    let n = 0;
    for (const c of children) n += c instanceof Constructed ? c.size : c.length;
    this.contentSize = n;
    this.size = 1 + lengthSize(n) + n;
  }
}

/** Number of bytes the DER length field for `n` occupies. */
export function lengthSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x100) return 2;
  if (n < 0x10000) return 3;
  if (n < 0x1000000) return 4;
  return 5;
}

function writeHeader(out: Uint8Array, off: number, tag: number, n: number): number {
  out[off++] = tag;
  if (n < 0x80) {
    out[off++] = n;
  } else if (n < 0x100) {
    out[off++] = 0x81;
    out[off++] = n;
  } else if (n < 0x10000) {
    out[off++] = 0x82;
    out[off++] = n >>> 8;
    out[off++] = n & 0xff;
  } else if (n < 0x1000000) {
    out[off++] = 0x83;
    out[off++] = n >>> 16;
    out[off++] = (n >>> 8) & 0xff;
    out[off++] = n & 0xff;
  } else {
    out[off++] = 0x84;
    out[off++] = n >>> 24;
    out[off++] = (n >>> 16) & 0xff;
    out[off++] = (n >>> 8) & 0xff;
    out[off++] = n & 0xff;
  }
  return off;
}

function writeNode(out: Uint8Array, off: number, node: Der): number {
  if (!(node instanceof Constructed)) {
    out.set(node, off);
    return off + node.length;
  }
  off = writeHeader(out, off, node.tag, node.contentSize);
  for (const c of node.children) off = writeNode(out, off, c);
  return off;
}

/** Serializes a value tree into one freshly allocated Buffer. */
export function encode(node: Der): Buffer {
  if (!(node instanceof Constructed)) return Buffer.from(node);
  const out = Buffer.allocUnsafe(node.size);
  const end = writeNode(out, 0, node);
  /* c8 ignore next */
  if (end !== out.length) throw new Error('der: internal size mismatch');
  return out;
}

/** Encoded size of a value tree. */
export function sizeOf(node: Der): number {
  return node instanceof Constructed ? node.size : node.length;
}

/** A primitive TLV with the given tag around `content` (one copy). */
export function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  const out = Buffer.allocUnsafe(1 + lengthSize(n) + n);
  out.set(content, writeHeader(out, 0, tag, n));
  return out;
}

/** SEQUENCE of the given children (lazy; see {@link encode}). */
export function seq(...children: Der[]): Constructed {
  return new Constructed(TAG.SEQUENCE, children);
}

/**
 * SET OF the given children. DER orders SET OF elements by their encoding;
 * every SET this project writes has one element (an RDN), so a SET with more
 * than one child is refused rather than silently mis-ordered.
 */
export function set(...children: Der[]): Constructed {
  if (children.length > 1) throw new Error('der: set with more than one element is not supported');
  return new Constructed(TAG.SET, children);
}

/** Explicitly tagged `[n]` (constructed context tag wrapping the child). */
export function explicit(n: number, child: Der): Constructed {
  return new Constructed(0xa0 | n, [child]);
}

/** Implicitly tagged constructed `[n]` holding the given children. */
export function implicitConstructed(n: number, ...children: Der[]): Constructed {
  return new Constructed(0xa0 | n, children);
}

/** Implicitly tagged primitive `[n]` (e.g. GeneralName dNSName = `[2]`). */
export function implicitPrimitive(n: number, content: Uint8Array): Buffer {
  return tlv(0x80 | n, content);
}

/** Pre-encoded DER NULL. */
export const NULL: Buffer = Buffer.from([0x05, 0x00]);

/** BOOLEAN; DER mandates 0xff for TRUE. */
export function boolean(v: boolean): Buffer {
  return Buffer.from([TAG.BOOLEAN, 0x01, v ? 0xff : 0x00]);
}

/**
 * INTEGER from an unsigned big-endian magnitude. Redundant leading zero bytes
 * are dropped and a 0x00 is prepended when the top bit is set, so the result
 * is the minimal two's-complement encoding of a non-negative number.
 */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const body = magnitude.length === 0 ? ZERO_BYTE : magnitude.subarray(i);
  const pad = (body[0]! & 0x80) !== 0 ? 1 : 0;
  const n = body.length + pad;
  const out = Buffer.allocUnsafe(1 + lengthSize(n) + n);
  let off = writeHeader(out, 0, TAG.INTEGER, n);
  if (pad) out[off++] = 0;
  out.set(body, off);
  return out;
}
const ZERO_BYTE = new Uint8Array(1);

/** INTEGER from a small non-negative JavaScript number. */
export function smallInteger(v: number): Buffer {
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`der: integer out of range: ${v}`);
  const bytes: number[] = [];
  do {
    bytes.unshift(v % 256);
    v = Math.floor(v / 256);
  } while (v > 0);
  return unsignedInteger(Uint8Array.from(bytes));
}

/**
 * OBJECT IDENTIFIER from dotted notation. Meant for module-level constants,
 * computed once; the hot path only copies the finished bytes.
 */
export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map((p) => {
    if (!/^(0|[1-9][0-9]*)$/.test(p)) throw new Error(`der: bad oid ${dotted}`);
    return BigInt(p);
  });
  if (parts.length < 2 || parts[0]! > 2n || (parts[0]! < 2n && parts[1]! > 39n)) {
    throw new Error(`der: bad oid ${dotted}`);
  }
  const arcs = [parts[0]! * 40n + parts[1]!, ...parts.slice(2)];
  const out: number[] = [];
  for (let arc of arcs) {
    const groups = [Number(arc & 0x7fn)];
    arc >>= 7n;
    while (arc > 0n) {
      groups.unshift(Number(arc & 0x7fn) | 0x80);
      arc >>= 7n;
    }
    out.push(...groups);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

/** Decodes OID content bytes (without tag/length) to dotted notation. */
export function oidToString(content: Uint8Array): string {
  const arcs: bigint[] = [];
  let v = 0n;
  for (let i = 0; i < content.length; i++) {
    const b = content[i]!;
    if (v === 0n && b === 0x80) throw new Error('non-minimal oid arc');
    v = (v << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
    } else if (i === content.length - 1) {
      throw new Error('truncated oid');
    }
  }
  if (arcs.length === 0) throw new Error('empty oid');
  const first = arcs[0]!;
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** BIT STRING with the given number of unused bits in the last byte. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  if (unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    throw new Error('der: bad bit string');
  }
  const n = bytes.length + 1;
  const out = Buffer.allocUnsafe(1 + lengthSize(n) + n);
  const off = writeHeader(out, 0, TAG.BIT_STRING, n);
  out[off] = unusedBits;
  out.set(bytes, off + 1);
  return out;
}

/**
 * BIT STRING for an ASN.1 NamedBitList (KeyUsage): bit 0 is the most
 * significant bit of the first byte, and DER (X.690 §11.2.2) requires trailing
 * zero bits to be dropped, which fixes both the length and the unused-bits
 * count.
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return bitString(new Uint8Array(0));
  const highest = Math.max(...bits);
  const bytes = new Uint8Array((highest >> 3) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return bitString(bytes, 7 - (highest & 7));
}

/** OCTET STRING around `content`. */
export function octetString(content: Uint8Array | Der): Der {
  return content instanceof Constructed
    ? new Constructed(TAG.OCTET_STRING, [content])
    : tlv(TAG.OCTET_STRING, content);
}

/** UTF8String. */
export function utf8String(s: string): Buffer {
  return tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** PrintableString; refuses characters outside its repertoire. */
export function printableString(s: string): Buffer {
  if (!PRINTABLE.test(s)) throw new Error('der: not a printable string');
  return tlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'latin1'));
}

/** IA5String (ASCII); refuses non-ASCII characters. */
export function ia5String(s: string): Buffer {
  return tlv(TAG.IA5_STRING, ia5Bytes(s));
}

/** The IA5 (ASCII) bytes of `s`, for implicitly tagged IA5 fields like SAN entries. */
export function ia5Bytes(s: string): Buffer {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(s)) throw new Error('der: not an ia5 string');
  return Buffer.from(s, 'latin1');
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * Time as RFC 5280 §4.1.2.5 wants it: UTCTime for 1950–2049, GeneralizedTime
 * otherwise, always UTC with seconds and no fractions (milliseconds are
 * truncated).
 */
export function time(d: Date): Buffer {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw new Error('der: invalid date');
  const y = d.getUTCFullYear();
  const rest =
    two(d.getUTCMonth() + 1) +
    two(d.getUTCDate()) +
    two(d.getUTCHours()) +
    two(d.getUTCMinutes()) +
    two(d.getUTCSeconds()) +
    'Z';
  if (y >= 1950 && y <= 2049) return tlv(TAG.UTC_TIME, Buffer.from(two(y % 100) + rest, 'latin1'));
  if (y < 0 || y > 9999) throw new Error('der: year out of range');
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(String(y).padStart(4, '0') + rest, 'latin1'));
}

/**
 * Converts an IEEE P1363 ECDSA signature (r || s, each padded to the curve
 * size, what PKCS#11 `CKM_ECDSA` and WebCrypto return) to the DER
 * `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` that X.509 carries.
 */
export function p1363ToDer(sig: Uint8Array): Buffer {
  if (sig.length === 0 || sig.length % 2 !== 0 || sig.length > 264) {
    throw invalid(`x509: ecdsa signature has odd or bad length ${sig.length}`);
  }
  const half = sig.length / 2;
  const r = sig.subarray(0, half);
  const s = sig.subarray(half);
  if (r.every((b) => b === 0) || s.every((b) => b === 0)) throw invalid('x509: ecdsa signature has a zero component');
  return encode(seq(unsignedInteger(r), unsignedInteger(s)));
}

// ---------------------------------------------------------------------------
// Reader

/** One parsed TLV: positions are absolute offsets into the input buffer. */
export interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset just past the last content byte. */
  readonly end: number;
}

/** Thrown by the reader; callers translate it into their own `invalid()` message. */
export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

/**
 * Reads one TLV at `off`, which must end at or before `limit`. Only the
 * single-byte tag form is accepted (nothing X.509 or PKCS#10 uses needs more);
 * indefinite lengths, non-minimal length encodings and lengths past `limit`
 * are errors.
 */
export function readTlv(buf: Uint8Array, off: number, limit: number = buf.length): Tlv {
  if (limit > buf.length || off < 0) throw new DerError('bounds');
  if (off + 2 > limit) throw new DerError(`truncated header at ${off}`);
  const tag = buf[off]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`high tag number at ${off}`);
  let p = off + 1;
  let len = buf[p++]!;
  if (len & 0x80) {
    const k = len & 0x7f;
    if (k === 0) throw new DerError(`indefinite length at ${off}`);
    if (k > 4) throw new DerError(`length too large at ${off}`);
    if (p + k > limit) throw new DerError(`truncated length at ${off}`);
    if (buf[p] === 0) throw new DerError(`non-minimal length at ${off}`);
    len = 0;
    for (let i = 0; i < k; i++) len = len * 256 + buf[p++]!;
    if (len < 0x80) throw new DerError(`non-minimal length at ${off}`);
  }
  if (len > limit - p) throw new DerError(`length exceeds input at ${off}`);
  return { tag, start: off, contentStart: p, end: p + len };
}

/** Reads a TLV that must have tag `tag`. */
export function expect(buf: Uint8Array, off: number, limit: number, tag: number, what: string): Tlv {
  const t = readTlv(buf, off, limit);
  if (t.tag !== tag) throw new DerError(`expected ${what} at ${off}`);
  return t;
}

/** Reads a TLV that must span exactly the whole of `buf` (no trailing bytes). */
export function readWhole(buf: Uint8Array, tag: number, what: string): Tlv {
  const t = expect(buf, 0, buf.length, tag, what);
  if (t.end !== buf.length) throw new DerError('trailing bytes after ' + what);
  return t;
}

/** Iterates the direct children of a constructed TLV. */
export function* children(buf: Uint8Array, parent: Tlv): Generator<Tlv> {
  let off = parent.contentStart;
  while (off < parent.end) {
    const t = readTlv(buf, off, parent.end);
    yield t;
    off = t.end;
  }
}

/** Collects the direct children of a constructed TLV into an array. */
export function childList(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let off = parent.contentStart;
  while (off < parent.end) {
    const t = readTlv(buf, off, parent.end);
    out.push(t);
    off = t.end;
  }
  return out;
}

/** The content bytes of a TLV (a view, not a copy). */
export function content(buf: Uint8Array, t: Tlv): Uint8Array {
  return buf.subarray(t.contentStart, t.end);
}

/** The full TLV bytes (a view, not a copy). */
export function whole(buf: Uint8Array, t: Tlv): Uint8Array {
  return buf.subarray(t.start, t.end);
}

/** True when the two byte ranges are equal. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The magnitude of a DER INTEGER that must be positive, with the sign-padding
 * zero removed. Rejects negative values and non-minimal encodings.
 */
export function positiveIntegerContent(buf: Uint8Array, t: Tlv): Uint8Array {
  const c = content(buf, t);
  if (c.length === 0) throw new DerError('empty integer');
  if (c.length > 1 && c[0] === 0 && (c[1]! & 0x80) === 0) throw new DerError('non-minimal integer');
  if (c.length > 1 && c[0] === 0xff && (c[1]! & 0x80) !== 0) throw new DerError('non-minimal integer');
  if (c[0]! & 0x80) throw new DerError('negative integer');
  const m = c[0] === 0 && c.length > 1 ? c.subarray(1) : c;
  if (m.length === 1 && m[0] === 0) throw new DerError('zero integer');
  return m;
}
