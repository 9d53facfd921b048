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
//
// This folder, by step: frames.ts (HTTP/2 framing), header-blocks.ts
// (HEADERS + CONTINUATION), hpack.ts (decoding with limits, re-encoding),
// authority-check.ts (what nghttp2 accepts), sniffer.ts (the first look),
// rewriter.ts (the slow path), hop.ts (the socket that carries a rewritten
// connection to grpc-js), and this file, which routes a new connection.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ClientProtocolError, HpackError } from './errors.js';
import { EMPTY_SETTINGS, goawayFrame, Http2ErrorCode } from './frames.js';
import { AuthorityRewritingStream } from './rewriter.js';
import { ConnectionSniffer } from './sniffer.js';

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
