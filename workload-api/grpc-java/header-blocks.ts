// Header blocks on the wire: the HEADERS frame and its CONTINUATION frames
// collected into one block (for the sniffer, which only looks, and the
// rewriter, which replaces them), and a re-encoded block split back into
// frames. Bounded on the wire before anything is decoded.
import { ClientProtocolError, HeaderLimitError } from './errors.js';
import { frame, FrameFlag, FrameType, MIN_MAX_FRAME_SIZE, type FrameHeader } from './frames.js';
import { MAX_HEADER_LIST_SIZE } from './hpack.js';

/**
 * A header block larger than this on the wire (across CONTINUATION frames)
 * ends the connection before it is decoded. An honest encoding is never
 * larger than its decoded list (every representation takes fewer than
 * name + value + 32 octets); the slack covers padding and priority fields.
 */
const MAX_HEADER_BLOCK = MAX_HEADER_LIST_SIZE + 1024;

/** A header block being collected: HEADERS, then CONTINUATION until END_HEADERS. */
export interface PendingBlock {
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
export class HeaderBlockCollector {
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
