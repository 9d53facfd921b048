// The slow path (see route.ts): ClientHeaderRewriter re-encodes every client
// header block with an unacceptable `:authority` replaced, and
// AuthorityRewritingStream is the Duplex that serves a connection through it.
// Only connections whose first look found such an `:authority` (grpc-java)
// pay for it.
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { fixAuthority } from './authority-check.js';
import { CLIENT_PREFACE, FrameFlag, FrameReader, FrameType, NotHttp2, type FrameHeader, type FrameSink } from './frames.js';
import { HeaderBlockCollector, headerFrames, type PendingBlock } from './header-blocks.js';
import { encodeHeaderBlock, HeaderBlockDecoder } from './hpack.js';

export interface RewriterOptions {
  /** Remove the client's first SETTINGS ACK (it acknowledges our {@link EMPTY_SETTINGS}, not nghttp2's). Default true. */
  dropFirstSettingsAck?: boolean;
}

/**
 * The slow path's client→server transformation, without I/O: feed it the
 * client's bytes in any chunks, get the bytes for nghttp2. Every header block
 * is re-encoded (see route.ts); all other frames pass unchanged,
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
