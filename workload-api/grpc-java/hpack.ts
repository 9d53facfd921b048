// HPACK (RFC 7541) for the grpc-java `:authority` workaround (see route.ts):
// a decoder for a client's header blocks, bounded so that a few octets cannot
// expand into megabytes, and an encoder that writes the fields back as
// literals without indexing, so the server's decoder never needs our table.
import { createRequire } from 'node:module';
import { HeaderLimitError, HpackError } from './errors.js';

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
