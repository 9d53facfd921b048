// The errors the workaround's parsers (frames, header blocks, HPACK) throw
// on what a client sent, and the HTTP/2 error code each one ends the
// connection with.
import { Http2ErrorCode } from './frames.js';

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

/** The HTTP/2 error code that goes with an error thrown by the workaround's parsers. */
export function http2ErrorCodeOf(err: unknown): number {
  if (err instanceof HeaderLimitError) return Http2ErrorCode.ENHANCE_YOUR_CALM;
  if (err instanceof HpackError) return Http2ErrorCode.COMPRESSION_ERROR;
  return Http2ErrorCode.PROTOCOL_ERROR;
}
