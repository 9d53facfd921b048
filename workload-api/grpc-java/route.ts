// Why this file exists: grpc-java (and so java-spiffe) sends the Unix socket's
// PATH as the HTTP/2 `:authority` of every call, e.g. `/run/spire/api.sock`.
// Node's HTTP/2 server is nghttp2 with HTTP messaging checks on, and nghttp2
// accepts in `:authority` only ALPHA DIGIT and -._~!$&'()*+,;=:@[]% — a `/`
// gets the stream reset with PROTOCOL_ERROR before grpc-js ever sees the
// call (grpc-go sends `localhost`, grpcio `%2Frun%2F...`: both fine). Node
// has no switch for that check, so the Workload API looks at what a client
// sends before nghttp2 does:
//
//  - Fast path: the bytes up to the client's first header block are read
//    here, that block is HPACK-decoded once, and when its `:authority` is
//    acceptable (or absent) the bytes are put back (`socket.unshift`) and
//    the raw socket goes to grpc-js exactly as before. Node's HTTP/2 layer
//    then reads the socket natively: no per-byte cost afterwards.
//  - Slow path (grpc-java): the connection is served through a Duplex that
//    passes server→client bytes untouched and re-encodes every client header
//    block, an unacceptable `:authority` replaced by `localhost` (grpc-js
//    routes by `:path` only). The client's HPACK encoder state spans
//    the connection, so one decoder decodes every block, and the blocks are
//    re-encoded as literals without indexing: the server's decoder never
//    needs its dynamic table, and client dynamic table size updates are left
//    out. The caller carries that Duplex to grpc-js over a real socket
//    (hop.ts), so the call's peer is named like any other connection's.
//
// One wrinkle decides the shape of the fast path: gRPC clients (grpc-js for
// one, as checked) send no HEADERS until they have the server's SETTINGS, so
// the server must speak first, before we know which path to take. We send
// an empty SETTINGS frame (every setting at its protocol default) as the
// server's connection preface right at accept; Node's own SETTINGS follow
// when the connection is handed over, which HTTP/2 allows. The client's ACK of
// our frame must not reach nghttp2 (an ACK it did not ask for is a connection
// error), so the first client SETTINGS ACK is always removed: from the peeked
// bytes on the fast path, by the rewriter on the slow path.
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';

// --- HTTP/2 framing (RFC 9113) ------------------------------------------------------

/** The client connection preface. */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** An empty SETTINGS frame: the server's connection preface with every setting at its default. */
export const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
/** SETTINGS_MAX_FRAME_SIZE's initial value: every peer accepts frames this large. */
export const MIN_MAX_FRAME_SIZE = 16384;
/**
 * SETTINGS_HEADER_TABLE_SIZE's initial value; Node's server advertises it
 * unchanged, so it is also the largest dynamic table a client may ask our
 * decoder to keep (RFC 7541 section 6.3): a larger size update is an error.
 */
export const HEADER_TABLE_SIZE = 4096;
/**
 * The largest header list a client block may decode to, counted as RFC 9113
 * section 6.5.2 does (name + value + 32 octets per field). Node's HTTP/2
 * server behind us refuses lists above 65535 octets anyway (its default
 * maxHeaderListSize), so no working request is larger; the point is to stop
 * decoding there. HPACK lets a few octets expand enormously (a one-octet
 * reference to a 4 KB table entry), and the decoded list, not the block on
 * the wire, is what costs memory.
 */
export const MAX_HEADER_LIST_SIZE = 64 * 1024;
/** The most fields one block may decode to (Node's server stops at 128 pairs by default). */
export const MAX_HEADER_FIELDS = 1024;
/**
 * A header block larger than this on the wire (across CONTINUATION frames)
 * ends the connection before it is decoded. An honest encoding is never
 * larger than its decoded list (every representation takes fewer than
 * name + value + 32 octets); the slack covers padding and priority fields.
 */
const MAX_HEADER_BLOCK = MAX_HEADER_LIST_SIZE + 1024;

const FRAME_HEADER_SIZE = 9;
export const FrameType = { DATA: 0x0, HEADERS: 0x1, PRIORITY: 0x2, RST_STREAM: 0x3, SETTINGS: 0x4, PUSH_PROMISE: 0x5, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 } as const;
export const FrameFlag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
/** HTTP/2 error codes (RFC 9113 section 7) this file sends. */
export const Http2ErrorCode = { PROTOCOL_ERROR: 0x1, COMPRESSION_ERROR: 0x9, ENHANCE_YOUR_CALM: 0xb } as const;

/** Serializes one frame. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/**
 * A GOAWAY frame saying no stream was processed, with `reason` as its debug
 * data, so that a refused client can tell why.
 */
export function goawayFrame(errorCode: number, reason: string): Buffer {
  const payload = Buffer.alloc(8 + Buffer.byteLength(reason, 'latin1'));
  payload.writeUInt32BE(0, 0); // last stream ID: none
  payload.writeUInt32BE(errorCode, 4);
  payload.write(reason, 8, 'latin1');
  return frame(FrameType.GOAWAY, 0, 0, payload);
}

// --- errors -----------------------------------------------------------------------------

/** The client broke HTTP/2 framing in a way that ends the connection. */
export class ClientProtocolError extends Error {}

/**
 * A client header block went over one of our limits (header list size,
 * field count, block size on the wire). The connection ends; HTTP/2's name
 * for this is ENHANCE_YOUR_CALM.
 */
export class HeaderLimitError extends ClientProtocolError {}

/** A header block the client's HPACK encoder produced cannot be decoded. */
export class HpackError extends Error {}

/** The HTTP/2 error code that goes with an error thrown by this file's parsers. */
export function http2ErrorCodeOf(err: unknown): number {
  if (err instanceof HeaderLimitError) return Http2ErrorCode.ENHANCE_YOUR_CALM;
  if (err instanceof HpackError) return Http2ErrorCode.COMPRESSION_ERROR;
  return Http2ErrorCode.PROTOCOL_ERROR;
}

interface FrameHeader {
  type: number;
  flags: number;
  streamId: number;
  length: number;
  /** Offset of the frame's first byte in the client's byte stream. */
  offset: number;
}

/** What {@link FrameReader} reports, in stream order. */
interface FrameSink {
  preface(bytes: Buffer): void;
  frameStart(h: FrameHeader, raw: Buffer): void;
  /** Part of the current frame's payload (a view of the input, never empty). */
  payload(data: Buffer): void;
  frameEnd(): void;
}

/** The stream does not start with the client preface. */
class NotHttp2 extends Error {}

/** Splits a client's byte stream, fed in arbitrary chunks, into preface and frames. */
class FrameReader {
  #prefaceSeen = 0;
  #header = Buffer.alloc(FRAME_HEADER_SIZE);
  #headerFill = 0;
  /** Payload bytes still to come of the current frame, or -1 between frames. */
  #remaining = -1;
  #offset = 0;
  #frameOffset = 0;

  constructor(private readonly sink: FrameSink) {}

  /** Total bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  push(chunk: Buffer): void {
    let i = 0;
    if (this.#prefaceSeen < CLIENT_PREFACE.length) {
      const n = Math.min(CLIENT_PREFACE.length - this.#prefaceSeen, chunk.length);
      if (!chunk.subarray(0, n).equals(CLIENT_PREFACE.subarray(this.#prefaceSeen, this.#prefaceSeen + n))) throw new NotHttp2('not an HTTP/2 client preface');
      this.#prefaceSeen += n;
      this.#offset += n;
      i = n;
      if (this.#prefaceSeen === CLIENT_PREFACE.length) this.sink.preface(CLIENT_PREFACE);
    }
    while (i < chunk.length) {
      if (this.#remaining < 0) {
        if (this.#headerFill === 0) this.#frameOffset = this.#offset;
        const n = Math.min(FRAME_HEADER_SIZE - this.#headerFill, chunk.length - i);
        chunk.copy(this.#header, this.#headerFill, i, i + n);
        this.#headerFill += n;
        this.#offset += n;
        i += n;
        if (this.#headerFill < FRAME_HEADER_SIZE) return;
        this.#headerFill = 0;
        const raw = Buffer.from(this.#header);
        const h: FrameHeader = {
          length: raw.readUIntBE(0, 3),
          type: raw[3]!,
          flags: raw[4]!,
          streamId: raw.readUInt32BE(5) & 0x7fffffff,
          offset: this.#frameOffset,
        };
        this.#remaining = h.length;
        this.sink.frameStart(h, raw);
        if (this.#remaining === 0) this.#endFrame();
        continue;
      }
      const n = Math.min(this.#remaining, chunk.length - i);
      this.sink.payload(chunk.subarray(i, i + n));
      this.#remaining -= n;
      this.#offset += n;
      i += n;
      if (this.#remaining === 0) this.#endFrame();
    }
  }

  #endFrame(): void {
    this.#remaining = -1;
    this.sink.frameEnd();
  }
}

// --- HPACK (RFC 7541) -----------------------------------------------------------------

/** One decoded header field; name and value hold one char per octet (latin1). */
export interface HeaderField {
  name: string;
  value: string;
  neverIndex: boolean;
}

/**
 * The parts of hpack.js 2.x we use (it ships no types): its bit-level
 * decoder (integers, raw and Huffman strings) and its header table (static
 * entries, dynamic entries with eviction). Its stream-based Decompressor is
 * not used: building a readable-stream per connection cost more than the
 * decoding itself on the fast path.
 */
interface HpackBitDecoder {
  push(chunk: Buffer): void;
  isEmpty(): boolean;
  decodeBit(): number;
  decodeInt(): number;
  /** The octets of a (possibly Huffman-coded) string literal. */
  decodeStr(): number[];
}
interface HpackTable {
  lookup(index: number): { name: string; value: string; nameSize: number };
  add(name: string, value: string, nameSize: number, valueSize: number): void;
  updateSize(size: number): void;
}
interface HpackModule {
  decoder: { create(): HpackBitDecoder };
  table: { create(options: { maxSize: number }): HpackTable };
  utils: { stringify(octets: number[]): string };
}
const hpack = createRequire(import.meta.url)('hpack.js') as HpackModule;

/** Limits of {@link HeaderBlockDecoder}; the defaults are the exported constants. */
export interface HeaderLimits {
  /** Largest decoded header list per block, name + value + 32 octets per field. Default {@link MAX_HEADER_LIST_SIZE}. */
  maxHeaderListSize?: number;
  /** Most fields per block. Default {@link MAX_HEADER_FIELDS}. */
  maxHeaderFields?: number;
}

/**
 * Decodes a client's header blocks in order, keeping the dynamic table the
 * client's encoder assumes (initially 4096 octets, the size Node's server
 * advertises). Field representations per RFC 7541 section 6.
 *
 * Bounded as nghttp2 is: the decoded list is counted field by field and
 * decoding stops at the first field past the limit, so memory never grows
 * with what a block expands to; a dynamic table size update must come at the
 * start of a block and may not exceed {@link HEADER_TABLE_SIZE}. Any failure
 * is final (the client's encoder state is lost): {@link HeaderLimitError}
 * for a limit, {@link HpackError} for anything undecodable.
 */
export class HeaderBlockDecoder {
  readonly #bits = hpack.decoder.create();
  readonly #table = hpack.table.create({ maxSize: HEADER_TABLE_SIZE });
  readonly #maxListSize: number;
  readonly #maxFields: number;
  #error: Error | undefined;

  constructor(limits: HeaderLimits = {}) {
    this.#maxListSize = limits.maxHeaderListSize ?? MAX_HEADER_LIST_SIZE;
    this.#maxFields = limits.maxHeaderFields ?? MAX_HEADER_FIELDS;
  }

  decode(block: Buffer): HeaderField[] {
    if (this.#error) throw this.#error;
    const out: HeaderField[] = [];
    let listSize = 0;
    try {
      this.#bits.push(block);
      while (!this.#bits.isEmpty()) {
        const f = this.#field(out.length === 0);
        if (f === undefined) continue; // a dynamic table size update
        // Strings here hold one char per octet, so length is the octet count.
        listSize += f.name.length + f.value.length + 32;
        if (listSize > this.#maxListSize) {
          throw new HeaderLimitError(`authority: the header list exceeds ${this.#maxListSize} octets (name + value + 32 per field)`);
        }
        if (out.length >= this.#maxFields) throw new HeaderLimitError(`authority: more than ${this.#maxFields} header fields in one block`);
        out.push(f);
      }
    } catch (err) {
      // hpack.js asserts with plain Errors (and obuf throws TypeErrors past
      // the end of a truncated block); the decoder state is lost for good.
      this.#error =
        err instanceof HeaderLimitError || err instanceof HpackError
          ? err
          : err instanceof TypeError
            ? new HpackError('hpack: the header block ends inside a field', { cause: err })
            : new HpackError(`hpack: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      throw this.#error;
    }
    return out;
  }

  /** The next field, or undefined for a dynamic table size update (allowed only while `atStart`). */
  #field(atStart: boolean): HeaderField | undefined {
    const bits = this.#bits;
    if (bits.decodeBit()) {
      // 1xxxxxxx: indexed field
      const e = this.#table.lookup(bits.decodeInt());
      return { name: e.name, value: e.value, neverIndex: false };
    }
    const incremental = bits.decodeBit() === 1; // 01xxxxxx: literal with incremental indexing
    let never = false;
    if (!incremental) {
      if (bits.decodeBit()) {
        // 001xxxxx: dynamic table size update (RFC 7541 sections 4.2 and 6.3)
        const size = bits.decodeInt();
        if (!atStart) throw new HpackError('hpack: dynamic table size update after the first field of a block');
        if (size > HEADER_TABLE_SIZE) throw new HpackError(`hpack: dynamic table size update to ${size} octets, above the ${HEADER_TABLE_SIZE} allowed`);
        this.#table.updateSize(size);
        return undefined;
      }
      never = bits.decodeBit() === 1; // 0001xxxx never indexed, 0000xxxx without indexing
    }
    const index = bits.decodeInt();
    let name: string;
    let nameSize: number;
    if (index === 0) {
      const octets = bits.decodeStr();
      name = hpack.utils.stringify(octets);
      nameSize = octets.length;
    } else {
      const e = this.#table.lookup(index);
      name = e.name;
      nameSize = e.nameSize;
    }
    const valueOctets = bits.decodeStr();
    const value = hpack.utils.stringify(valueOctets);
    if (incremental) this.#table.add(name, value, nameSize, valueOctets.length);
    return { name, value, neverIndex: never };
  }
}

function encodeInt(out: number[], value: number, prefixBits: number, first: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

/**
 * Encodes fields as literals with a literal name, without indexing (or never
 * indexed, where the client said so): the decoder's dynamic table is neither
 * read nor changed. The strings are raw octets (one char per octet), written
 * straight into the output buffer.
 */
export function encodeHeaderBlock(fields: readonly HeaderField[]): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  for (const f of fields) {
    const prefix: number[] = [f.neverIndex ? 0x10 : 0x00];
    encodeInt(prefix, f.name.length, 7, 0x00); // H = 0: raw octets
    const head = Buffer.from(prefix);
    const lenValue: number[] = [];
    encodeInt(lenValue, f.value.length, 7, 0x00);
    const mid = Buffer.from(lenValue);
    parts.push(head, Buffer.from(f.name, 'latin1'), mid, Buffer.from(f.value, 'latin1'));
    size += head.length + f.name.length + mid.length + f.value.length;
  }
  return Buffer.concat(parts, size);
}

// --- :authority -----------------------------------------------------------------------

/** The octets nghttp2's authority check (nghttp2_check_authority) lets through. */
const AUTHORITY_OCTETS = (() => {
  const ok = new Uint8Array(256);
  for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@[]%") ok[c.charCodeAt(0)] = 1;
  return ok;
})();

/** Whether Node's HTTP/2 server (nghttp2) accepts `value` as `:authority`. */
export function isAcceptableAuthority(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 0xff || AUTHORITY_OCTETS[c] !== 1) return false;
  }
  return true;
}

/** What an unacceptable `:authority` becomes. */
export const REPLACEMENT_AUTHORITY = 'localhost';

/** The block's fields with an unacceptable `:authority` replaced; `changed` tells whether one was. */
function fixAuthority(fields: HeaderField[]): { fields: HeaderField[]; changed: boolean } {
  let changed = false;
  const out = fields.map((f) => {
    if (f.name !== ':authority' || isAcceptableAuthority(f.value)) return f;
    changed = true;
    return { ...f, value: REPLACEMENT_AUTHORITY };
  });
  return { fields: out, changed };
}

// --- header frames --------------------------------------------------------------------

/** A header block being collected: HEADERS, then CONTINUATION until END_HEADERS. */
interface PendingBlock {
  streamId: number;
  endStream: boolean;
  /** The 5 octets of the PRIORITY flag's fields, when the HEADERS frame had them. */
  priority: Buffer | undefined;
  fragments: Buffer[];
  size: number;
}

/** The header block fragment of a complete HEADERS frame payload (padding and priority fields removed). */
function headersFragment(flags: number, payload: Buffer): { fragment: Buffer; priority: Buffer | undefined } {
  let p = payload;
  let pad = 0;
  if (flags & FrameFlag.PADDED) {
    if (p.length < 1) throw new ClientProtocolError('HEADERS: PADDED without a pad length');
    pad = p[0]!;
    p = p.subarray(1);
  }
  let priority: Buffer | undefined;
  if (flags & FrameFlag.PRIORITY) {
    if (p.length < 5) throw new ClientProtocolError('HEADERS: PRIORITY fields truncated');
    priority = Buffer.from(p.subarray(0, 5));
    p = p.subarray(5);
  }
  if (pad > p.length) throw new ClientProtocolError('HEADERS: padding longer than the payload');
  return { fragment: p.subarray(0, p.length - pad), priority };
}

/**
 * Collects header blocks from frames and reports each complete one. Shared by
 * the sniffer (which only looks) and the rewriter (which replaces the frames).
 */
class HeaderBlockCollector {
  #pending: PendingBlock | undefined;
  #payload: Buffer[] = [];
  #payloadSize = 0;
  #current: FrameHeader | undefined;

  constructor(private readonly onBlock: (block: PendingBlock, data: Buffer) => void) {}

  get inBlock(): boolean {
    return this.#pending !== undefined;
  }

  /** Starts a frame; true if it belongs to a header block (its payload must be fed here). */
  start(h: FrameHeader): boolean {
    if (this.#pending !== undefined && (h.type !== FrameType.CONTINUATION || h.streamId !== this.#pending.streamId)) {
      throw new ClientProtocolError(`frame type ${h.type} on stream ${h.streamId} inside the header block of stream ${this.#pending.streamId}`);
    }
    if (h.type === FrameType.PUSH_PROMISE) throw new ClientProtocolError('PUSH_PROMISE from a client');
    if (h.type === FrameType.CONTINUATION && this.#pending === undefined) throw new ClientProtocolError('CONTINUATION without HEADERS');
    if (h.type !== FrameType.HEADERS && h.type !== FrameType.CONTINUATION) return false;
    if (h.streamId === 0) throw new ClientProtocolError('HEADERS on stream 0');
    if ((this.#pending?.size ?? 0) + h.length > MAX_HEADER_BLOCK) throw new HeaderLimitError(`authority: a header block larger than ${MAX_HEADER_BLOCK} octets`);
    this.#current = h;
    this.#payload = [];
    this.#payloadSize = 0;
    return true;
  }

  payload(data: Buffer): void {
    this.#payload.push(data);
    this.#payloadSize += data.length;
  }

  end(): void {
    const h = this.#current!;
    this.#current = undefined;
    const payload = this.#payload.length === 1 ? this.#payload[0]! : Buffer.concat(this.#payload, this.#payloadSize);
    this.#payload = [];
    if (h.type === FrameType.HEADERS) {
      const { fragment, priority } = headersFragment(h.flags, payload);
      this.#pending = { streamId: h.streamId, endStream: (h.flags & FrameFlag.END_STREAM) !== 0, priority, fragments: [fragment], size: fragment.length };
    } else {
      this.#pending!.fragments.push(payload);
      this.#pending!.size += payload.length;
    }
    if (h.flags & FrameFlag.END_HEADERS) {
      const block = this.#pending!;
      this.#pending = undefined;
      this.onBlock(block, block.fragments.length === 1 ? block.fragments[0]! : Buffer.concat(block.fragments, block.size));
    }
  }
}

/** HEADERS (+ CONTINUATION) frames carrying `block`, none larger than the minimum max frame size. */
export function headerFrames(streamId: number, endStream: boolean, priority: Buffer | undefined, block: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const prio = priority ?? Buffer.alloc(0);
  const firstRoom = MIN_MAX_FRAME_SIZE - prio.length;
  const first = block.subarray(0, firstRoom);
  let rest = block.subarray(first.length);
  let flags = (endStream ? FrameFlag.END_STREAM : 0) | (priority ? FrameFlag.PRIORITY : 0) | (rest.length === 0 ? FrameFlag.END_HEADERS : 0);
  out.push(frame(FrameType.HEADERS, flags, streamId, Buffer.concat([prio, first])));
  while (rest.length > 0) {
    const part = rest.subarray(0, MIN_MAX_FRAME_SIZE);
    rest = rest.subarray(part.length);
    flags = rest.length === 0 ? FrameFlag.END_HEADERS : 0;
    out.push(frame(FrameType.CONTINUATION, flags, streamId, part));
  }
  return out;
}

export interface RewriterOptions {
  /** Remove the client's first SETTINGS ACK (it acknowledges our {@link EMPTY_SETTINGS}, not nghttp2's). Default true. */
  dropFirstSettingsAck?: boolean;
}

/**
 * The slow path's client→server transformation, without I/O: feed it the
 * client's bytes in any chunks, get the bytes for nghttp2. Every header block
 * is re-encoded (see the file comment); all other frames pass unchanged,
 * except the first SETTINGS ACK. A stream that does not start with the
 * client preface passes unchanged. Throws {@link ClientProtocolError} or
 * {@link HpackError} when the connection cannot go on.
 */
export class ClientHeaderRewriter implements FrameSink {
  readonly #reader = new FrameReader(this);
  readonly #decoder = new HeaderBlockDecoder();
  readonly #collector = new HeaderBlockCollector((block, data) => this.#rewriteBlock(block, data));
  #dropAck: boolean;
  #mode: 'forward' | 'collect' | 'drop' = 'forward';
  #out: Buffer[] = [];
  #passthrough = false;
  #failed: Error | undefined;
  /** Header blocks whose `:authority` was replaced. */
  rewritten = 0;

  /** Whether the whole client connection preface has arrived. */
  get sawPreface(): boolean {
    return this.#reader.offset >= CLIENT_PREFACE.length;
  }

  constructor(opts: RewriterOptions = {}) {
    this.#dropAck = opts.dropFirstSettingsAck ?? true;
  }

  push(chunk: Buffer): Buffer[] {
    if (this.#failed) throw this.#failed;
    if (this.#passthrough) return [chunk];
    this.#out = [];
    try {
      this.#reader.push(chunk);
    } catch (err) {
      if (err instanceof NotHttp2) {
        // Not HTTP/2 at all (only the preface throws this): let nghttp2
        // answer it as it would have, with the part of the preface that
        // matched and was held back.
        this.#passthrough = true;
        return [CLIENT_PREFACE.subarray(0, this.#reader.offset), chunk];
      }
      this.#failed = err as Error;
      throw this.#failed;
    }
    return this.#out;
  }

  preface(bytes: Buffer): void {
    this.#out.push(bytes);
  }

  frameStart(h: FrameHeader, raw: Buffer): void {
    if (this.#collector.start(h)) {
      this.#mode = 'collect';
    } else if (this.#dropAck && h.type === FrameType.SETTINGS && (h.flags & FrameFlag.ACK) !== 0 && h.length === 0) {
      this.#dropAck = false;
      this.#mode = 'drop';
    } else {
      this.#mode = 'forward';
      this.#out.push(raw);
    }
  }

  payload(data: Buffer): void {
    if (this.#mode === 'forward') this.#out.push(data);
    else if (this.#mode === 'collect') this.#collector.payload(data);
  }

  frameEnd(): void {
    if (this.#mode === 'collect') this.#collector.end();
    this.#mode = 'forward';
  }

  #rewriteBlock(block: PendingBlock, data: Buffer): void {
    const { fields, changed } = fixAuthority(this.#decoder.decode(data));
    if (changed) this.rewritten++;
    this.#out.push(...headerFrames(block.streamId, block.endStream, block.priority, encodeHeaderBlock(fields)));
  }
}

// --- the first look at a connection ---------------------------------------------------

/** Bytes read before giving up on finding a complete first header block. */
export const PEEK_LIMIT = 64 * 1024;

export type SniffDecision =
  /** Keep reading. */
  | { kind: 'pending' }
  /** Hand the raw socket over after unshifting `data` (what was read, first SETTINGS ACK removed). */
  | { kind: 'fast'; data: Buffer }
  /** Serve the connection through the rewriter, which is fed everything read so far. */
  | { kind: 'slow'; reason: string }
  /** Not HTTP/2: hand the raw socket over with `data` unshifted unchanged. */
  | { kind: 'raw'; data: Buffer }
  /**
   * Close the connection, telling the client why in a GOAWAY: a header
   * block over our limits or undecodable. Nothing reaches grpc-js, so nothing
   * is attested; the rewriter would only fail the same way, later.
   */
  | { kind: 'refuse'; reason: string; errorCode: number };

/**
 * Reads the start of a client's byte stream and decides between the fast and
 * slow path. Fast needs: the preface, the client's SETTINGS ACK of our empty
 * SETTINGS, at least one complete header block, and no unacceptable
 * `:authority` in any block seen. An unacceptable one, a PING (the client
 * wants an answer now), malformed framing, or {@link PEEK_LIMIT} bytes
 * without a decision mean slow: the rewriter handles every case correctly,
 * only with a per-byte cost. A header block over the limits or that does not
 * decode means refuse.
 */
export class ConnectionSniffer implements FrameSink {
  readonly #reader = new FrameReader(this);
  readonly #decoder = new HeaderBlockDecoder();
  readonly #collector = new HeaderBlockCollector((_block, data) => this.#onBlock(data));
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #collecting = false;
  #ackOffset = -1;
  #blocks = 0;
  #verdict: SniffDecision | undefined;

  /** Everything read so far, unchanged. */
  get chunks(): readonly Buffer[] {
    return this.#chunks;
  }

  /** Whether the whole client connection preface has arrived (the client speaks HTTP/2, or at least began to). */
  get sawPreface(): boolean {
    return this.#reader.offset >= CLIENT_PREFACE.length;
  }

  push(chunk: Buffer): SniffDecision {
    if (this.#verdict) throw new Error('authority: sniffer already decided');
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    try {
      this.#reader.push(chunk);
    } catch (err) {
      if (err instanceof NotHttp2) return this.#decide({ kind: 'raw', data: this.#all() });
      const reason = err instanceof Error ? err.message : String(err);
      if (err instanceof HeaderLimitError || err instanceof HpackError) return this.#decide({ kind: 'refuse', reason, errorCode: http2ErrorCodeOf(err) });
      return this.#decide({ kind: 'slow', reason });
    }
    if (this.#verdict) return this.#verdict;
    if (this.#ackOffset >= 0 && this.#blocks > 0 && !this.#collector.inBlock) {
      const all = this.#all();
      return this.#decide({ kind: 'fast', data: Buffer.concat([all.subarray(0, this.#ackOffset), all.subarray(this.#ackOffset + FRAME_HEADER_SIZE)]) });
    }
    // A header block being collected is read to its end (it is bounded on
    // its own), so that an oversized one is refused here, not by the rewriter.
    if (this.#size >= PEEK_LIMIT && !this.#collecting && !this.#collector.inBlock) {
      return this.#decide({ kind: 'slow', reason: `no decision after ${this.#size} bytes` });
    }
    return { kind: 'pending' };
  }

  preface(): void {}

  frameStart(h: FrameHeader): void {
    if (this.#verdict) return;
    this.#collecting = this.#collector.start(h);
    if (h.type === FrameType.SETTINGS && (h.flags & FrameFlag.ACK) !== 0 && this.#ackOffset < 0) {
      if (h.length !== 0) this.#decide({ kind: 'slow', reason: 'SETTINGS ACK with a payload' });
      else this.#ackOffset = h.offset;
    } else if (h.type === FrameType.PING && (h.flags & FrameFlag.ACK) === 0) {
      this.#decide({ kind: 'slow', reason: 'PING before a decision' });
    }
  }

  payload(data: Buffer): void {
    if (this.#collecting && !this.#verdict) this.#collector.payload(data);
  }

  frameEnd(): void {
    if (this.#collecting && !this.#verdict) this.#collector.end();
    this.#collecting = false;
  }

  #onBlock(data: Buffer): void {
    this.#blocks++;
    for (const f of this.#decoder.decode(data)) {
      if (f.name === ':authority' && !isAcceptableAuthority(f.value)) {
        this.#decide({ kind: 'slow', reason: 'unacceptable :authority' });
        return;
      }
    }
  }

  #decide(d: SniffDecision): SniffDecision {
    this.#verdict ??= d;
    return this.#verdict;
  }

  #all(): Buffer {
    return this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
  }
}

// --- the slow path's stream -------------------------------------------------------------

/**
 * What grpc-js gets instead of the socket on the slow path: reads are the
 * client's bytes through {@link ClientHeaderRewriter}, writes go to the
 * socket unchanged. Backpressure both ways (the socket is paused while
 * nghttp2 does not read; a write completes when the socket took it); end,
 * errors and close propagate both ways.
 */
export class AuthorityRewritingStream extends Duplex {
  readonly #socket: Socket;
  readonly #rewriter: ClientHeaderRewriter;

  constructor(socket: Socket, opts: { initial?: readonly Buffer[]; ended?: boolean } & RewriterOptions = {}) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#rewriter = new ClientHeaderRewriter(opts);
    socket.pause();
    for (const chunk of opts.initial ?? []) this.#feed(chunk);
    if (opts.ended) this.push(null);
    else {
      socket.on('data', (chunk: Buffer) => this.#feed(chunk));
      socket.once('end', () => this.push(null));
    }
    socket.on('error', (err) => this.destroy(err));
    socket.once('close', () => this.destroy());
  }

  /** Header blocks whose `:authority` was replaced so far. */
  get rewritten(): number {
    return this.#rewriter.rewritten;
  }

  /** Whether the whole client connection preface has arrived. */
  get sawPreface(): boolean {
    return this.#rewriter.sawPreface;
  }

  #feed(chunk: Buffer): void {
    if (this.destroyed) return;
    let out: Buffer[];
    try {
      out = this.#rewriter.push(chunk);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    if (out.length === 0) return;
    if (!this.push(out.length === 1 ? out[0] : Buffer.concat(out))) this.#socket.pause();
  }

  override _read(): void {
    if (!this.#socket.destroyed) this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#socket.write(chunk, (err) => cb(err ?? null));
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.#socket.cork();
    for (let i = 0; i < chunks.length - 1; i++) this.#socket.write(chunks[i]!.chunk);
    this.#socket.write(chunks[chunks.length - 1]!.chunk, (err) => cb(err ?? null));
    this.#socket.uncork();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#socket.destroy();
    cb(err);
  }
}

// --- routing a new connection ---------------------------------------------------------

/** How long a connection may go without a decision before it takes the slow path. */
export const PEEK_TIMEOUT_MS = 2000;
/**
 * How long a connection may take to send the HTTP/2 client preface (24
 * octets every client sends at once) before it is closed: a connection that
 * says nothing must not hold one of its uid's connection slots forever.
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a refused connection gets to take our GOAWAY before it is cut. */
const REFUSE_LINGER_MS = 1000;

export interface RouteOptions {
  /**
   * Hands a connection to the HTTP/2 server: the raw socket (fast path), or
   * the rewriting stream (`rewritten`), which the caller must carry to
   * grpc-js on a socket that names the peer (see hop.ts).
   */
  inject(stream: Duplex, rewritten: boolean): void;
  /** Called when a connection takes the slow path. */
  onSlowPath?(reason: string): void;
  /**
   * Called when a connection is closed for what its client sent (a header
   * block over the limits or undecodable, on either path) or did not send
   * (no preface in time). Never called for an ordinary close.
   */
  onRefused?(reason: string): void;
  timeoutMs?: number;
  /** Default {@link HANDSHAKE_TIMEOUT_MS}. */
  handshakeTimeoutMs?: number;
}

/**
 * Ends a connection nobody else has read from yet: sends `frames` (a GOAWAY
 * with the reason), discards whatever the client still sends, and closes the
 * socket once the frames are written, or after {@link REFUSE_LINGER_MS}.
 */
export function refuseConnection(socket: Socket, frames: Buffer): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), REFUSE_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.on('error', () => {}); // EPIPE/ECONNRESET from a client that went first: nothing to do
  socket.end(frames, () => socket.destroy());
  socket.resume();
}

/**
 * Sends our empty SETTINGS, reads the connection's first bytes and hands it
 * to `inject` on the fast or the slow path (see the file comment), or
 * refuses it. A socket that closes before a decision is never handed over.
 */
export function routeConnection(socket: Socket, opts: RouteOptions): void {
  const sniffer = new ConnectionSniffer();
  const peekMs = opts.timeoutMs ?? PEEK_TIMEOUT_MS;
  const handshakeMs = Math.max(opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS, peekMs);
  let done = false;
  const cleanup = (): void => {
    done = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.off('close', onClose);
    socket.pause();
  };
  let rewriting: AuthorityRewritingStream | undefined;
  const handOver = (data: Buffer): void => {
    cleanup();
    clearTimeout(handshake); // the fast path saw the preface; raw is not HTTP/2 and nghttp2 answers it at once
    if (socket.destroyed) return;
    if (data.length > 0) socket.unshift(data);
    opts.inject(socket, false);
  };
  const slow = (reason: string, ended = false): void => {
    cleanup();
    if (socket.destroyed) return;
    opts.onSlowPath?.(reason);
    const stream = new AuthorityRewritingStream(socket, { initial: sniffer.chunks, ended });
    rewriting = stream;
    // The rewriter fails only on what the client sent; say so once.
    stream.once('error', (err) => {
      if (err instanceof ClientProtocolError || err instanceof HpackError) opts.onRefused?.(err.message);
    });
    opts.inject(stream, true);
  };
  const refuse = (reason: string, errorCode: number): void => {
    cleanup();
    clearTimeout(handshake);
    if (socket.destroyed) return;
    opts.onRefused?.(reason);
    refuseConnection(socket, goawayFrame(errorCode, reason));
  };
  const onData = (chunk: Buffer): void => {
    if (done) return;
    const d = sniffer.push(chunk);
    if (d.kind === 'fast' || d.kind === 'raw') handOver(d.data);
    else if (d.kind === 'slow') slow(d.reason);
    else if (d.kind === 'refuse') refuse(d.reason, d.errorCode);
  };
  const onEnd = (): void => slow('client ended before a decision', true);
  const onError = (): void => cleanup(); // the socket closes; nothing to hand over
  const onClose = (): void => cleanup();
  const timer = setTimeout(() => slow('no decision in time'), peekMs).unref();
  // The handshake deadline outlives the first look: a silent connection
  // takes the slow path after peekMs like any other, and is closed here if
  // the preface still has not come.
  const handshake = setTimeout(() => {
    if (sniffer.sawPreface || rewriting?.sawPreface) return;
    const reason = `authority: no HTTP/2 client preface within ${handshakeMs} ms`;
    if (rewriting === undefined) return refuse(reason, Http2ErrorCode.PROTOCOL_ERROR);
    // nghttp2 may be writing on this connection: no frame of ours, only the close.
    opts.onRefused?.(reason);
    rewriting.destroy();
  }, handshakeMs).unref();
  socket.once('close', () => clearTimeout(handshake));
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('error', onError);
  socket.once('close', onClose);
  socket.write(EMPTY_SETTINGS);
}
