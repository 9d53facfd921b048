// Property-based fuzzing of the only parser of raw client bytes in the
// Workload API: workload-api/grpc-java/, which reads a connection's HTTP/2 frames and
// HPACK-decodes its header blocks before nghttp2 does (issue 10). Random and
// adversarial header blocks and frame sequences, split at random points, go
// to the decoder, the first-look sniffer and the slow-path rewriter. Promised
// for every input: no crash and no hang, memory bounded by the limits (every
// decoded list within MAX_HEADER_LIST_SIZE), and every failure a clear
// HpackError or ClientProtocolError (HeaderLimitError for a limit) that stays.
//
// Seeded and bounded: FUZZ_SEED=<n> reruns another seed, FUZZ_RUNS=<n> scales
// the number of runs (fast-check prints the seed and path of a failure).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAcceptableAuthority } from '../../workload-api/grpc-java/authority-check.js';
import { ClientProtocolError, HeaderLimitError, HpackError } from '../../workload-api/grpc-java/errors.js';
import { CLIENT_PREFACE, frame, FrameFlag, FrameType, Http2ErrorCode } from '../../workload-api/grpc-java/frames.js';
import { HeaderBlockDecoder, MAX_HEADER_FIELDS, MAX_HEADER_LIST_SIZE, type HeaderField } from '../../workload-api/grpc-java/hpack.js';
import { ClientHeaderRewriter } from '../../workload-api/grpc-java/rewriter.js';
import { ConnectionSniffer } from '../../workload-api/grpc-java/sniffer.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261205);
const RUNS = Number(process.env.FUZZ_RUNS ?? 1);
const runs = (n: number) => ({ seed: SEED, numRuns: Math.max(1, Math.round(n * RUNS)) });

// --- HPACK encoding of arbitrary representations (RFC 7541 section 6) ------------------

function int(out: number[], value: number, prefixBits: number, first: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) return void out.push(first | value);
  out.push(first | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function str(out: number[], octets: Uint8Array, huffman: boolean): void {
  int(out, octets.length, 7, huffman ? 0x80 : 0x00);
  for (const o of octets) out.push(o);
}

type Rep =
  | { kind: 'indexed'; index: number; repeat: number }
  | { kind: 'literal'; mode: number; nameIndex: number; name: Uint8Array; value: Uint8Array; huffman: boolean }
  | { kind: 'big'; valueLength: number; refs: number }
  | { kind: 'size'; size: number }
  | { kind: 'garbage'; bytes: Uint8Array };

const octets = (max: number) => fc.uint8Array({ maxLength: max });

/** One field representation: mostly valid, sometimes out of range, sometimes a decompression bomb. */
const repArb: fc.Arbitrary<Rep> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('indexed' as const),
      // mostly the static table (1..61) and the first dynamic entries, sometimes out of range
      index: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 64 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 300 }) }),
      repeat: fc.integer({ min: 1, max: 40 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('literal' as const),
      mode: fc.constantFrom(0x00, 0x10, 0x40), // without indexing, never indexed, incremental indexing
      nameIndex: fc.integer({ min: 0, max: 70 }),
      name: fc.oneof(octets(12), fc.constantFrom(':authority', ':path', 'x-a').map((s) => new Uint8Array(Buffer.from(s, 'latin1')))),
      value: fc.oneof(octets(64), fc.integer({ min: 0, max: 5000 }).map((n) => new Uint8Array(n).fill(0x2f))),
      huffman: fc.boolean(),
    }),
  },
  // the attack of issue 10: a big entry in the table, then many one-octet references to it
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('big' as const), valueLength: fc.integer({ min: 1, max: 4064 }), refs: fc.integer({ min: 0, max: 30_000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('size' as const), size: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 2 ** 28 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: octets(12) }) },
);

function encodeRep(r: Rep): Buffer {
  const out: number[] = [];
  switch (r.kind) {
    case 'indexed':
      int(out, r.index, 7, 0x80);
      return Buffer.from(out).length === 1 ? Buffer.alloc(r.repeat, out[0]!) : Buffer.concat(Array.from({ length: r.repeat }, () => Buffer.from(out)));
    case 'literal':
      int(out, r.nameIndex, r.mode === 0x40 ? 6 : 4, r.mode);
      if (r.nameIndex === 0) str(out, r.name, false);
      str(out, r.value, r.huffman); // random octets under H=1: mostly invalid Huffman
      return Buffer.from(out);
    case 'big': {
      int(out, 0, 6, 0x40);
      str(out, Buffer.from('x-bomb'), false);
      const head = Buffer.from(out);
      const len: number[] = [];
      int(len, r.valueLength, 7, 0x00);
      return Buffer.concat([head, Buffer.from(len), Buffer.alloc(r.valueLength, 0x61), Buffer.alloc(r.refs, 0x80 | 62)]);
    }
    case 'size':
      int(out, r.size, 5, 0x20);
      return Buffer.from(out);
    case 'garbage':
      return Buffer.from(r.bytes);
  }
}

const blockArb = fc.array(repArb, { minLength: 0, maxLength: 12 }).map((reps) => Buffer.concat(reps.map(encodeRep)));

/** A well-formed request block, as clients send them: pseudo-headers, an :authority of any kind, some metadata. */
const requestBlockArb = fc
  .record({
    authority: fc.constantFrom('localhost', '/run/spire/api.sock', '%2Frun%2Fapi.sock', 'a b', ''),
    index: fc.boolean(),
    extra: fc.array(fc.tuple(fc.constantFrom('x-a', 'workload.spiffe.io', 'grpc-timeout'), fc.string({ maxLength: 40 })), { maxLength: 4 }),
    refs: fc.integer({ min: 0, max: 3 }),
  })
  .map((r) => {
    const out: number[] = [0x83, 0x86]; // :method POST, :scheme http (static table)
    const lit = (name: string, value: string) => {
      int(out, 0, r.index ? 6 : 4, r.index ? 0x40 : 0x00);
      str(out, Buffer.from(name, 'latin1'), false);
      str(out, Buffer.from(value, 'latin1'), false);
    };
    lit(':path', '/SpiffeWorkloadAPI/FetchX509SVID');
    lit(':authority', r.authority);
    for (const [n, v] of r.extra) lit(n, v);
    if (r.index) for (let i = 0; i < r.refs; i++) out.push(0x80 | 62); // the last field added, again
    return Buffer.from(out);
  });

/** A clear failure: one of ours, with a message naming the layer. */
function expectClearError(err: unknown): void {
  // a JavaScript engine message (a TypeError from reading past the end) is not a clear error
  if (err instanceof Error) expect(err.message).not.toMatch(/Cannot read|undefined|is not a function/);
  if (err instanceof HpackError) expect(err.message).toMatch(/^hpack: \S/);
  else if (err instanceof HeaderLimitError) expect(err.message).toMatch(/^authority: \S/);
  else if (err instanceof ClientProtocolError) expect(err.message).toMatch(/\S/);
  else throw new Error(`not a clear error: ${String(err)}`, { cause: err });
}

/** Asserts the memory promise on a decoded list: within the size and count limits. */
function expectBounded(fields: HeaderField[]): void {
  let size = 0;
  for (const f of fields) size += f.name.length + f.value.length + 32;
  expect(size).toBeLessThanOrEqual(MAX_HEADER_LIST_SIZE);
  expect(fields.length).toBeLessThanOrEqual(MAX_HEADER_FIELDS);
}

/** Peak RSS growth over a property, in MB: decoding must never follow what a block expands to. */
function rssMb(): number {
  return process.memoryUsage.rss() / (1024 * 1024);
}

// --- frame sequences ----------------------------------------------------------------------

/** Frames a client might send, well-formed or not; header blocks split over CONTINUATION frames. */
const frameArb: fc.Arbitrary<Buffer> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({
        stream: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(1, 3, 5, 7) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 8 }) }),
        endStream: fc.boolean(),
        padded: fc.boolean(),
        priority: fc.boolean(),
        block: fc.oneof({ weight: 2, arbitrary: requestBlockArb }, { weight: 1, arbitrary: blockArb }),
        pieces: fc.integer({ min: 1, max: 4 }),
        endHeaders: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      })
      .map((h) => {
        const size = Math.ceil(h.block.length / h.pieces) || 1;
        const parts: Buffer[] = [];
        for (let i = 0; i < h.block.length || i === 0; i += size) parts.push(h.block.subarray(i, i + size));
        const out: Buffer[] = [];
        parts.forEach((p, i) => {
          const last = i === parts.length - 1 && h.endHeaders;
          if (i === 0) {
            const flags = (h.endStream ? FrameFlag.END_STREAM : 0) | (last ? FrameFlag.END_HEADERS : 0) | (h.padded ? FrameFlag.PADDED : 0) | (h.priority ? FrameFlag.PRIORITY : 0);
            const payload = Buffer.concat([h.padded ? Buffer.from([3]) : Buffer.alloc(0), h.priority ? Buffer.alloc(5) : Buffer.alloc(0), p, h.padded ? Buffer.alloc(3) : Buffer.alloc(0)]);
            out.push(frame(FrameType.HEADERS, flags, h.stream, payload));
          } else out.push(frame(FrameType.CONTINUATION, last ? FrameFlag.END_HEADERS : 0, h.stream, p));
        });
        return Buffer.concat(out);
      }),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ type: fc.integer({ min: 0, max: 12 }), flags: fc.integer({ min: 0, max: 255 }), stream: fc.integer({ min: 0, max: 7 }), payload: octets(48) })
      .map((f) => frame(f.type, f.flags, f.stream, Buffer.from(f.payload))),
  },
  { weight: 2, arbitrary: fc.constant(frame(FrameType.SETTINGS, FrameFlag.ACK, 0)) },
  { weight: 1, arbitrary: fc.constant(frame(FrameType.SETTINGS, 0, 0)) },
  { weight: 1, arbitrary: octets(20).map((b) => Buffer.from(b)) }, // torn or garbage framing
);

/** A connection's client bytes: usually the preface first, then frames; and where it is cut into reads. */
const connectionArb = fc
  .record({
    preface: fc.oneof({ weight: 9, arbitrary: fc.constant(CLIENT_PREFACE) }, { weight: 1, arbitrary: octets(30).map((b) => Buffer.from(b)) }),
    frames: fc.array(frameArb, { maxLength: 8 }),
    cuts: fc.array(fc.integer({ min: 1, max: 70_000 }), { maxLength: 6 }),
  })
  .map(({ preface, frames, cuts }) => {
    const bytes = Buffer.concat([preface, ...frames]);
    const chunks: Buffer[] = [];
    let at = 0;
    for (const c of [...cuts].sort((a, b) => a - b)) {
      if (c <= at || c >= bytes.length) continue;
      chunks.push(bytes.subarray(at, c));
      at = c;
    }
    chunks.push(bytes.subarray(at));
    return { bytes, chunks };
  });

/** Complete frames of a byte stream after the client preface. */
function framesOf(buf: Buffer): { type: number; flags: number; payload: Buffer }[] {
  const out: { type: number; flags: number; payload: Buffer }[] = [];
  let o = CLIENT_PREFACE.length;
  while (o + 9 <= buf.length) {
    const len = buf.readUIntBE(o, 3);
    if (o + 9 + len > buf.length) break;
    out.push({ type: buf[o + 3]!, flags: buf[o + 4]!, payload: buf.subarray(o + 9, o + 9 + len) });
    o += 9 + len;
  }
  return out;
}

describe('fuzz: grpc-java/ HPACK and framing (issue 10)', () => {
  it('HeaderBlockDecoder: any block decodes within the limits or fails with a clear error, for good', () => {
    const before = rssMb();
    let peak = before;
    fc.assert(
      fc.property(fc.array(fc.oneof(blockArb, octets(200).map((b) => Buffer.from(b))), { minLength: 1, maxLength: 6 }), (blocks) => {
        const d = new HeaderBlockDecoder();
        let failure: unknown;
        for (const block of blocks) {
          try {
            const fields = d.decode(block);
            expect(failure, 'a failed decoder stays failed').toBeUndefined();
            expectBounded(fields);
          } catch (err) {
            if (failure !== undefined) expect(err).toBe(failure);
            else {
              expectClearError(err);
              failure = err;
            }
          }
        }
        peak = Math.max(peak, rssMb());
      }),
      runs(1000),
    );
    expect(peak - before).toBeLessThan(300);
  });

  it('the decompression bomb of issue 10 is stopped within the limit, whatever the entry size and count', () => {
    fc.assert(
      // up to 4058 octets the entry fits the 4096-octet table (name 6 + value + 32); a larger one empties it
      fc.property(fc.integer({ min: 1, max: 4058 }), fc.integer({ min: 0, max: 100_000 }), (valueLength, refs) => {
        const block = encodeRep({ kind: 'big', valueLength, refs });
        try {
          expectBounded(new HeaderBlockDecoder().decode(block));
          expect((refs + 1) * (valueLength + 6 + 32)).toBeLessThanOrEqual(MAX_HEADER_LIST_SIZE);
        } catch (err) {
          expect(err).toBeInstanceOf(HeaderLimitError);
          expect((err as Error).message).toMatch(/^authority: (the header list exceeds 65536 octets|more than 1024 header fields)/);
        }
      }),
      runs(200),
    );
  });

  it('ClientHeaderRewriter: any byte stream, in any chunks, is rewritten into bounded, decodable blocks or ends with a clear error', () => {
    const before = rssMb();
    let peak = before;
    fc.assert(
      fc.property(connectionArb, ({ bytes, chunks }) => {
        const rewriter = new ClientHeaderRewriter();
        const out: Buffer[] = [];
        let failure: unknown;
        for (const chunk of chunks) {
          try {
            out.push(...rewriter.push(chunk));
          } catch (err) {
            if (failure !== undefined) expect(err).toBe(failure);
            else {
              expectClearError(err);
              failure = err;
            }
          }
        }
        if (failure !== undefined) expect(() => rewriter.push(Buffer.alloc(1)), 'stays failed').toThrow(failure as Error);
        peak = Math.max(peak, rssMb());
        if (!bytes.subarray(0, CLIENT_PREFACE.length).equals(CLIENT_PREFACE)) return;
        // What reaches nghttp2: every header block complete, literal-only, within the limits,
        // and without an :authority nghttp2 would refuse.
        const written = Buffer.concat(out);
        let block: Buffer[] | undefined;
        for (const f of framesOf(written)) {
          if (f.type === FrameType.HEADERS) {
            let p = f.payload;
            if (f.flags & FrameFlag.PRIORITY) p = p.subarray(5);
            expect(f.flags & FrameFlag.PADDED).toBe(0);
            block = [p];
          } else if (f.type === FrameType.CONTINUATION) block!.push(f.payload);
          else continue;
          if (f.flags & FrameFlag.END_HEADERS) {
            const fields = new HeaderBlockDecoder().decode(Buffer.concat(block!));
            expectBounded(fields);
            for (const field of fields) if (field.name === ':authority') expect(isAcceptableAuthority(field.value)).toBe(true);
            block = undefined;
          }
        }
      }),
      runs(800),
    );
    expect(peak - before).toBeLessThan(300);
  });

  it('ConnectionSniffer: never throws, decides one of its five ways, and refuses only what the rewriter would fail on', () => {
    fc.assert(
      fc.property(connectionArb, ({ bytes, chunks }) => {
        const sniffer = new ConnectionSniffer();
        let d: ReturnType<ConnectionSniffer['push']> = { kind: 'pending' };
        for (const chunk of chunks) {
          d = sniffer.push(chunk);
          if (d.kind !== 'pending') break;
        }
        expect(['pending', 'fast', 'slow', 'raw', 'refuse']).toContain(d.kind);
        if (d.kind === 'refuse') {
          expect([Http2ErrorCode.ENHANCE_YOUR_CALM, Http2ErrorCode.COMPRESSION_ERROR]).toContain(d.errorCode);
          expect(d.reason).toMatch(/^(hpack|authority): \S/);
          // The same bytes through the slow path fail too: a refusal never costs a client the rewriter would have served.
          expect(() => new ClientHeaderRewriter().push(bytes)).toThrow(d.errorCode === Http2ErrorCode.ENHANCE_YOUR_CALM ? HeaderLimitError : HpackError);
        }
        if (d.kind === 'fast') {
          // only our SETTINGS ACK is taken out
          const read = Buffer.concat(sniffer.chunks);
          expect(d.data.length).toBe(read.length - 9);
        }
        if (d.kind === 'raw') expect(d.data.equals(Buffer.concat(sniffer.chunks))).toBe(true);
      }),
      runs(1000),
    );
  });
});
