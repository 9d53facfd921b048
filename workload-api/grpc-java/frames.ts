// HTTP/2 framing (RFC 9113) for the grpc-java `:authority` workaround (see
// route.ts): the constants and the frames we send ourselves (our empty
// SETTINGS, GOAWAY), and FrameReader, which splits a client's byte stream
// into preface and frames for the sniffer and the rewriter. Only as much of
// HTTP/2 as the workaround needs; nghttp2 behind us does the rest.

/** The client connection preface. */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** An empty SETTINGS frame: the server's connection preface with every setting at its default. */
export const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
/** SETTINGS_MAX_FRAME_SIZE's initial value: every peer accepts frames this large. */
export const MIN_MAX_FRAME_SIZE = 16384;

/** Octets of a frame header. */
export const FRAME_HEADER_SIZE = 9;
export const FrameType = { DATA: 0x0, HEADERS: 0x1, PRIORITY: 0x2, RST_STREAM: 0x3, SETTINGS: 0x4, PUSH_PROMISE: 0x5, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 } as const;
export const FrameFlag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
/** HTTP/2 error codes (RFC 9113 section 7) the workaround sends. */
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

export interface FrameHeader {
  type: number;
  flags: number;
  streamId: number;
  length: number;
  /** Offset of the frame's first byte in the client's byte stream. */
  offset: number;
}

/** What {@link FrameReader} reports, in stream order. */
export interface FrameSink {
  preface(bytes: Buffer): void;
  frameStart(h: FrameHeader, raw: Buffer): void;
  /** Part of the current frame's payload (a view of the input, never empty). */
  payload(data: Buffer): void;
  frameEnd(): void;
}

/** The stream does not start with the client preface. */
export class NotHttp2 extends Error {}

/** Splits a client's byte stream, fed in arbitrary chunks, into preface and frames. */
export class FrameReader {
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
