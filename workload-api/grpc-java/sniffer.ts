// The first look at a connection (see route.ts): reads the client's first
// bytes and decides between the fast path (raw socket to grpc-js), the slow
// path (the rewriter), passing a non-HTTP/2 stream through, or refusing a
// header block over the limits.
import { isAcceptableAuthority } from './authority-check.js';
import { HeaderLimitError, HpackError, http2ErrorCodeOf } from './errors.js';
import { CLIENT_PREFACE, FRAME_HEADER_SIZE, FrameFlag, FrameReader, FrameType, NotHttp2, type FrameHeader, type FrameSink } from './frames.js';
import { HeaderBlockCollector } from './header-blocks.js';
import { HeaderBlockDecoder } from './hpack.js';

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
