// Unit tests of this folder (the grpc-java `:authority` workaround): the
// acceptability check against nghttp2 itself, the client→server rewriting
// (framing, HPACK, chunking) and the first-look decision. Header blocks come
// from two encoders: Node's HTTP/2 client (nghttp2's deflater: Huffman
// strings, dynamic table indexing) and hand-made frames for what it never
// sends (PADDED, PRIORITY, CONTINUATION, table size updates). Wherever it
// matters, the rewritten bytes are fed to a real Node HTTP/2 server to check
// that nghttp2 takes them.
import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isAcceptableAuthority } from './authority-check.js';
import { ClientProtocolError, HeaderLimitError, HpackError } from './errors.js';
import { CLIENT_PREFACE, EMPTY_SETTINGS, frame, FrameFlag, FrameType, Http2ErrorCode, MIN_MAX_FRAME_SIZE } from './frames.js';
import { headerFrames } from './header-blocks.js';
import { encodeHeaderBlock, HeaderBlockDecoder, HEADER_TABLE_SIZE, MAX_HEADER_FIELDS, MAX_HEADER_LIST_SIZE, type HeaderField } from './hpack.js';
import { AuthorityRewritingStream, ClientHeaderRewriter } from './rewriter.js';
import { routeConnection } from './route.js';
import { ConnectionSniffer, PEEK_LIMIT } from './sniffer.js';

const SOCKET_AUTHORITY = '/tmp/anchorage-test/public/api.sock';
const SETTINGS_ACK = frame(FrameType.SETTINGS, FrameFlag.ACK, 0);
const CLIENT_SETTINGS = frame(FrameType.SETTINGS, 0, 0);

// --- helpers ----------------------------------------------------------------------------

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Splits a byte stream into frames (after the client preface, if `preface`). */
function parseFrames(buf: Buffer, preface = true): Frame[] {
  let o = 0;
  if (preface) {
    expect(buf.subarray(0, CLIENT_PREFACE.length).equals(CLIENT_PREFACE)).toBe(true);
    o = CLIENT_PREFACE.length;
  }
  const out: Frame[] = [];
  while (o + 9 <= buf.length) {
    const len = buf.readUIntBE(o, 3);
    if (o + 9 + len > buf.length) break;
    out.push({ type: buf[o + 3]!, flags: buf[o + 4]!, streamId: buf.readUInt32BE(o + 5) & 0x7fffffff, payload: buf.subarray(o + 9, o + 9 + len) });
    o += 9 + len;
  }
  return out;
}

/** Header blocks of a frame list (HEADERS + CONTINUATION), with the stream and flags of their HEADERS. */
function headerBlocks(frames: Frame[]): { streamId: number; flags: number; block: Buffer }[] {
  const out: { streamId: number; flags: number; block: Buffer }[] = [];
  let cur: { streamId: number; flags: number; parts: Buffer[] } | undefined;
  for (const f of frames) {
    if (f.type === FrameType.HEADERS) {
      let p = f.payload;
      let pad = 0;
      if (f.flags & FrameFlag.PADDED) {
        pad = p[0]!;
        p = p.subarray(1);
      }
      if (f.flags & FrameFlag.PRIORITY) p = p.subarray(5);
      cur = { streamId: f.streamId, flags: f.flags, parts: [p.subarray(0, p.length - pad)] };
    } else if (f.type === FrameType.CONTINUATION) {
      cur!.parts.push(f.payload);
    } else continue;
    if (f.flags & FrameFlag.END_HEADERS) {
      out.push({ streamId: cur!.streamId, flags: cur!.flags, block: Buffer.concat(cur!.parts) });
      cur = undefined;
    }
  }
  return out;
}

function fields(pairs: [string, string][]): HeaderField[] {
  return pairs.map(([name, value]) => ({ name, value, neverIndex: false }));
}

function rewriteAll(input: Buffer | Buffer[]): { out: Buffer; rewriter: ClientHeaderRewriter } {
  const rewriter = new ClientHeaderRewriter();
  const chunks = Array.isArray(input) ? input : [input];
  const out = Buffer.concat(chunks.flatMap((c) => rewriter.push(c)));
  return { out, rewriter };
}

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

/**
 * What Node's HTTP/2 client (nghttp2's HPACK encoder) writes for `requests`
 * on one connection, after an empty server SETTINGS (so it starts with the
 * preface, its SETTINGS, the ACK, then the HEADERS frames).
 */
async function nodeClientBytes(requests: http2.OutgoingHttpHeaders[]): Promise<Buffer> {
  const written: Buffer[] = [];
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk);
      cb();
    },
  });
  const session = http2.connect('http://localhost', { createConnection: () => wire });
  session.on('error', () => {});
  const settled = new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()));
  wire.push(EMPTY_SETTINGS);
  await settled;
  for (const headers of requests) session.request(headers, { endStream: true }).on('error', () => {});
  await waitFor(() => headerBlocks(parseFrames(Buffer.concat(written))).length === requests.length, 'the client to send its requests');
  const bytes = Buffer.concat(written); // before destroy() adds a GOAWAY
  session.destroy();
  return bytes;
}

/** A request as Node's client would send it, with the given authority and some extra fields. */
function request(authority: string, i: number): http2.OutgoingHttpHeaders {
  return {
    ':method': 'POST',
    ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
    ':authority': authority,
    'content-type': 'application/grpc',
    te: 'trailers',
    'workload.spiffe.io': 'true',
    'x-request': `r${i}-${'y'.repeat(i * 7)}`,
  };
}

/**
 * Feeds `bytes` (a client's side of a connection) to a real Node HTTP/2
 * server and reports the request headers it accepted and the streams it
 * reset, once `expected` streams were one or the other.
 */
async function nodeServerSees(bytes: Buffer, expected: number): Promise<{ accepted: http2.IncomingHttpHeaders[]; reset: number[] }> {
  const server = http2.createServer();
  const accepted: http2.IncomingHttpHeaders[] = [];
  server.on('stream', (stream, headers) => {
    accepted.push(headers);
    stream.on('error', () => {});
    if (!stream.destroyed && !stream.session?.destroyed) stream.respond({ ':status': 200 }, { endStream: true });
  });
  const fromServer: Buffer[] = [];
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      fromServer.push(chunk);
      cb();
    },
  });
  server.emit('connection', wire);
  wire.push(bytes);
  const reset = () =>
    parseFrames(Buffer.concat(fromServer), false)
      // (a RST_STREAM with NO_ERROR only follows a response to a half-closed stream)
      .filter((f) => f.type === FrameType.RST_STREAM && f.payload.readUInt32BE(0) !== 0)
      .map((f) => f.streamId);
  const goaway = () => parseFrames(Buffer.concat(fromServer), false).some((f) => f.type === FrameType.GOAWAY);
  await waitFor(() => accepted.length + reset().length >= expected || goaway(), `the server to take or refuse ${expected} streams`);
  expect(goaway(), `the server ended the connection: ${Buffer.concat(fromServer).toString('hex')}`).toBe(false);
  wire.destroy();
  server.close();
  return { accepted, reset: reset() };
}

// --- the acceptability check ------------------------------------------------------------

describe('isAcceptableAuthority', () => {
  it('accepts what grpc-go and grpcio send, refuses what grpc-java sends', () => {
    for (const ok of ['localhost', 'localhost:8080', '%2Ftmp%2Fx%2Fapi.sock', '[::1]:443', "u@h!$&'()*+,;=~._-", '']) expect(isAcceptableAuthority(ok), ok).toBe(true);
    for (const bad of [SOCKET_AUTHORITY, 'a/b', 'a b', 'a?b', 'a#b', 'a\\b', 'a"b', 'a<b', 'a{b', 'a|b', 'a^b', 'a`b', 'é', '\u0100']) expect(isAcceptableAuthority(bad), bad).toBe(false);
  });

  it('agrees with nghttp2 on every printable ASCII character', async () => {
    const chars = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));
    const bytes = await nodeClientBytes(chars.map((c, i) => request(`a${c}b`, i)));
    // Unchanged but for our SETTINGS' ACK: the server below never sent that frame.
    const raw = Buffer.concat([CLIENT_PREFACE, ...stripFirstAck(bytes)]);
    const seen = await nodeServerSees(raw, chars.length);
    const acceptedBy = new Set(seen.accepted.map((h) => h[':authority']));
    for (const c of chars) expect(acceptedBy.has(`a${c}b`), `:authority "a${c}b"`).toBe(isAcceptableAuthority(`a${c}b`));
    expect(seen.reset.length).toBe(chars.filter((c) => !isAcceptableAuthority(`a${c}b`)).length);
  });
});

/** The frames after the preface, with the first SETTINGS ACK left out, serialized again. */
function stripFirstAck(bytes: Buffer): Buffer[] {
  let dropped = false;
  return parseFrames(bytes).flatMap((f) => {
    if (!dropped && f.type === FrameType.SETTINGS && f.flags & FrameFlag.ACK) {
      dropped = true;
      return [];
    }
    return [frame(f.type, f.flags, f.streamId, f.payload)];
  });
}

// --- the rewriter -----------------------------------------------------------------------

describe('ClientHeaderRewriter', () => {
  it('without it, nghttp2 resets every stream whose :authority is the socket path (the bug)', async () => {
    const bytes = await nodeClientBytes([request(SOCKET_AUTHORITY, 0), request(SOCKET_AUTHORITY, 1)]);
    const seen = await nodeServerSees(Buffer.concat([CLIENT_PREFACE, ...stripFirstAck(bytes)]), 2);
    expect(seen.accepted).toEqual([]);
    expect(seen.reset).toEqual([1, 3]);
  });

  it('follows a dynamic-table client across streams: every request reaches nghttp2 with :authority localhost and all else kept', async () => {
    const requests = Array.from({ length: 6 }, (_, i) => request(SOCKET_AUTHORITY, i));
    const bytes = await nodeClientBytes(requests);
    const inBlocks = headerBlocks(parseFrames(bytes));
    // The client's encoder indexed the repeated fields: later blocks are much
    // smaller, so decoding them needs the state built by the earlier ones.
    expect(inBlocks[1]!.block.length).toBeLessThan(inBlocks[0]!.block.length / 2);

    const { out, rewriter } = rewriteAll(bytes);
    expect(rewriter.rewritten).toBe(6);
    const seen = await nodeServerSees(out, 6);
    expect(seen.reset).toEqual([]);
    expect(seen.accepted).toHaveLength(6);
    seen.accepted.forEach((h, i) => {
      expect(h[':authority']).toBe('localhost');
      expect(h[':path']).toBe('/SpiffeWorkloadAPI/FetchX509SVID');
      expect(h[':method']).toBe('POST');
      expect(h['content-type']).toBe('application/grpc');
      expect(h['te']).toBe('trailers');
      expect(h['workload.spiffe.io']).toBe('true');
      expect(h['x-request']).toBe(`r${i}-${'y'.repeat(i * 7)}`);
    });
  });

  it('re-encodes as literals only: each output block decodes on its own, with no table size update', async () => {
    const bytes = await nodeClientBytes(Array.from({ length: 4 }, (_, i) => request(SOCKET_AUTHORITY, i)));
    const { out } = rewriteAll(bytes);
    const stateful = new HeaderBlockDecoder();
    const expected = headerBlocks(parseFrames(bytes)).map((b) =>
      stateful.decode(b.block).map((f) => (f.name === ':authority' ? { ...f, value: 'localhost' } : f)),
    );
    const blocks = headerBlocks(parseFrames(out));
    expect(blocks).toHaveLength(4);
    blocks.forEach((b, i) => {
      // A fresh decoder per block: nothing may refer to the dynamic table.
      expect(new HeaderBlockDecoder().decode(b.block)).toEqual(expected[i]);
      expect(b.block[0]! & 0xe0, 'a literal without indexing or never indexed, not an update (001xxxxx)').toBe(0);
    });
  });

  it('leaves acceptable authorities and every other frame as they were, dropping only the first SETTINGS ACK', async () => {
    const bytes = await nodeClientBytes([request('localhost', 0)]);
    const data = frame(FrameType.DATA, FrameFlag.END_STREAM, 1, Buffer.from('hello'));
    const ping = frame(FrameType.PING, 0, 0, Buffer.alloc(8, 7));
    const wu = frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from([0, 1, 0, 0]));
    const { out, rewriter } = rewriteAll(Buffer.concat([bytes, data, ping, wu, SETTINGS_ACK]));
    expect(rewriter.rewritten).toBe(0);
    const inFrames = parseFrames(Buffer.concat([bytes, data, ping, wu, SETTINGS_ACK]));
    const outFrames = parseFrames(out);
    const firstAck = inFrames.findIndex((f) => f.type === FrameType.SETTINGS && f.flags & FrameFlag.ACK);
    expect(firstAck).toBeGreaterThan(0);
    const nonHeader = (fs: Frame[]) => fs.filter((f) => f.type !== FrameType.HEADERS && f.type !== FrameType.CONTINUATION).map((f) => frame(f.type, f.flags, f.streamId, f.payload).toString('hex'));
    expect(nonHeader(outFrames)).toEqual(nonHeader(inFrames.filter((_, i) => i !== firstAck)));
    // The second ACK (the one for nghttp2's own SETTINGS) goes through.
    expect(outFrames.at(-1)).toMatchObject({ type: FrameType.SETTINGS, flags: FrameFlag.ACK });
    expect(new HeaderBlockDecoder().decode(headerBlocks(outFrames)[0]!.block).find((f) => f.name === ':authority')?.value).toBe('localhost');
  });

  it('gives the same bytes however the input is split: at every offset, and one byte at a time', async () => {
    const bytes = Buffer.concat([
      await nodeClientBytes([request(SOCKET_AUTHORITY, 0), request(SOCKET_AUTHORITY, 1), request('localhost', 2)]),
      frame(FrameType.DATA, 0, 1, Buffer.from([0, 0, 0, 0, 0])),
    ]);
    const whole = rewriteAll(bytes).out;
    expect(parseFrames(whole).length).toBeGreaterThanOrEqual(5);
    for (let i = 0; i <= bytes.length; i++) {
      const split = rewriteAll([bytes.subarray(0, i), bytes.subarray(i)]).out;
      if (!split.equals(whole)) expect.fail(`split at byte ${i} of ${bytes.length} changed the output`);
    }
    const bytewise = rewriteAll(Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))).out;
    expect(bytewise.equals(whole)).toBe(true);
  });

  it('joins HEADERS + CONTINUATION, drops padding and keeps PRIORITY and END_STREAM', async () => {
    const original = fields([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/SpiffeWorkloadAPI/FetchJWTSVID'],
      [':authority', SOCKET_AUTHORITY],
      ['content-type', 'application/grpc'],
      ['workload.spiffe.io', 'true'],
    ]);
    const block = encodeHeaderBlock(original);
    const priority = Buffer.from([0x80, 0, 0, 0, 41]); // exclusive, depends on stream 0, weight 42
    const pad = 3;
    const first = Buffer.concat([Buffer.from([pad]), priority, block.subarray(0, 10), Buffer.alloc(pad)]);
    const input = Buffer.concat([
      CLIENT_PREFACE,
      CLIENT_SETTINGS,
      SETTINGS_ACK,
      frame(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.PRIORITY | FrameFlag.END_STREAM, 5, first),
      frame(FrameType.CONTINUATION, 0, 5, block.subarray(10, 30)),
      frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 5, block.subarray(30)),
    ]);
    const { out } = rewriteAll(input);
    const outFrames = parseFrames(out);
    expect(outFrames.map((f) => f.type)).toEqual([FrameType.SETTINGS, FrameType.HEADERS]);
    const h = outFrames[1]!;
    expect(h.streamId).toBe(5);
    expect(h.flags).toBe(FrameFlag.PRIORITY | FrameFlag.END_STREAM | FrameFlag.END_HEADERS);
    expect(h.payload.subarray(0, 5).equals(priority)).toBe(true);
    expect(new HeaderBlockDecoder().decode(h.payload.subarray(5))).toEqual(
      original.map((f) => (f.name === ':authority' ? { ...f, value: 'localhost' } : f)),
    );
    const seen = await nodeServerSees(out, 1);
    expect(seen.accepted[0]).toMatchObject({ ':authority': 'localhost', ':path': '/SpiffeWorkloadAPI/FetchJWTSVID' });
  });

  it('splits a header block larger than 16384 octets into HEADERS + CONTINUATION', async () => {
    const big = 'v'.repeat(40_000);
    const original = fields([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/SpiffeWorkloadAPI/FetchX509SVID'],
      [':authority', SOCKET_AUTHORITY],
      ['x-big', big],
      ['x-after', 'tail'],
    ]);
    const block = encodeHeaderBlock(original);
    const input = Buffer.concat([
      CLIENT_PREFACE,
      CLIENT_SETTINGS,
      frame(FrameType.HEADERS, FrameFlag.PRIORITY, 3, Buffer.concat([Buffer.from([0, 0, 0, 1, 15]), block.subarray(0, 100)])),
      frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 3, block.subarray(100)),
    ]);
    const { out } = rewriteAll(input);
    const outFrames = parseFrames(out).filter((f) => f.type === FrameType.HEADERS || f.type === FrameType.CONTINUATION);
    expect(outFrames.map((f) => f.type)).toEqual([FrameType.HEADERS, FrameType.CONTINUATION, FrameType.CONTINUATION]);
    for (const f of outFrames) {
      expect(f.payload.length).toBeLessThanOrEqual(MIN_MAX_FRAME_SIZE);
      expect(f.streamId).toBe(3);
    }
    expect(outFrames[0]!.payload.length).toBe(MIN_MAX_FRAME_SIZE);
    expect(outFrames.map((f) => f.flags)).toEqual([FrameFlag.PRIORITY, 0, FrameFlag.END_HEADERS]);
    const blocks = headerBlocks(parseFrames(out));
    expect(new HeaderBlockDecoder().decode(blocks[0]!.block)).toEqual(original.map((f) => (f.name === ':authority' ? { ...f, value: 'localhost' } : f)));
  });

  it('decodes through table size updates and never-indexed fields, and passes the never-indexed mark on', () => {
    // Block 1: size update to 256, then ':authority' literal with incremental indexing (name index 1).
    const auth = Buffer.from(SOCKET_AUTHORITY, 'latin1');
    const b1 = Buffer.concat([
      Buffer.from([0x3f, 0xe1, 0x01]), // dynamic table size update: 31 + 225 = 256
      Buffer.from([0x41, auth.length]),
      auth,
      Buffer.from([0x82, 0x84]), // :method GET, :path /
      Buffer.from([0x10, 5]), // never indexed, literal name
      Buffer.from('x-key', 'latin1'),
      Buffer.from([6]),
      Buffer.from('secret', 'latin1'),
    ]);
    // Block 2: ':authority' by its dynamic index (62), plus a static one.
    const b2 = Buffer.from([0x82, 0x84, 0xbe]);
    const input = Buffer.concat([
      CLIENT_PREFACE,
      frame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, 1, b1),
      frame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, 3, b2),
    ]);
    const { out, rewriter } = rewriteAll(input);
    expect(rewriter.rewritten).toBe(2);
    const blocks = headerBlocks(parseFrames(out));
    expect(new HeaderBlockDecoder().decode(blocks[0]!.block)).toEqual([
      { name: ':authority', value: 'localhost', neverIndex: false },
      { name: ':method', value: 'GET', neverIndex: false },
      { name: ':path', value: '/', neverIndex: false },
      { name: 'x-key', value: 'secret', neverIndex: true },
    ]);
    expect(new HeaderBlockDecoder().decode(blocks[1]!.block)).toEqual([
      { name: ':method', value: 'GET', neverIndex: false },
      { name: ':path', value: '/', neverIndex: false },
      { name: ':authority', value: 'localhost', neverIndex: false },
    ]);
  });

  it('ends the connection on broken framing or HPACK, and passes non-HTTP/2 bytes untouched', () => {
    const block = encodeHeaderBlock(fields([[':authority', 'x']]));
    const broken: [string, Buffer, typeof ClientProtocolError | typeof HpackError][] = [
      ['CONTINUATION without HEADERS', frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 1, block), ClientProtocolError],
      [
        'a frame inside a header block',
        Buffer.concat([frame(FrameType.HEADERS, 0, 1, block), frame(FrameType.DATA, 0, 1, Buffer.alloc(1))]),
        ClientProtocolError,
      ],
      ['padding longer than the frame', frame(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.END_HEADERS, 1, Buffer.from([9, 1, 2])), ClientProtocolError],
      ['HEADERS on stream 0', frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 0, block), ClientProtocolError],
      ['an index out of the table', frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, Buffer.from([0xff, 0x10])), HpackError],
      ['a truncated literal', frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, Buffer.from([0x00, 0x05, 0x61])), HpackError],
    ];
    for (const [what, frames, error] of broken) {
      const rewriter = new ClientHeaderRewriter();
      expect(() => rewriter.push(Buffer.concat([CLIENT_PREFACE, frames])), what).toThrow(error);
      expect(() => rewriter.push(Buffer.alloc(1)), `${what}: stays failed`).toThrow(error);
    }
    const http1 = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const half = CLIENT_PREFACE.subarray(0, 5); // "PRI *" then not HTTP/2
    expect(rewriteAll(http1).out.equals(http1)).toBe(true);
    expect(rewriteAll([half, http1]).out.equals(Buffer.concat([half, http1]))).toBe(true);
  });
});

// --- limits -------------------------------------------------------------------------------

/** A literal with incremental indexing and a new name: the field enters the dynamic table (index 62). */
function indexed(name: string, value: string): Buffer {
  const b = encodeHeaderBlock(fields([[name, value]]));
  b[0] = 0x40;
  return b;
}

/** The attack of issue 10 item 1: one 4,000-octet header in the table, then `refs` one-octet references to it. */
function bomb(refs: number): Buffer {
  return Buffer.concat([encodeHeaderBlock(fields([[':authority', SOCKET_AUTHORITY]])), indexed('x-bomb', 'a'.repeat(4000)), Buffer.alloc(refs, 0x80 | 62)]);
}

const LIST_TOO_LARGE = `authority: the header list exceeds ${MAX_HEADER_LIST_SIZE} octets (name + value + 32 per field)`;

describe('HeaderBlockDecoder limits', () => {
  it('stops a block that expands past the header list limit at the first field over it', () => {
    const d = new HeaderBlockDecoder();
    // 100,000 references would decode to 400 MB; the decoder must give up after 16.
    expect(() => d.decode(bomb(100_000))).toThrow(new HeaderLimitError(LIST_TOO_LARGE));
    expect(() => d.decode(encodeHeaderBlock(fields([[':path', '/']]))), 'stays failed').toThrow(new HeaderLimitError(LIST_TOO_LARGE));
    // the limit counts name + value + 32 per field, as SETTINGS_MAX_HEADER_LIST_SIZE does
    const name = 'x-big';
    const exact = 'v'.repeat(MAX_HEADER_LIST_SIZE - name.length - 32);
    expect(new HeaderBlockDecoder().decode(encodeHeaderBlock(fields([[name, exact]])))).toHaveLength(1);
    expect(() => new HeaderBlockDecoder().decode(encodeHeaderBlock(fields([[name, `${exact}v`]])))).toThrow(new HeaderLimitError(LIST_TOO_LARGE));
    // and applies per block: many blocks of references on one connection are fine
    const ok = new HeaderBlockDecoder();
    expect(ok.decode(Buffer.concat([indexed('x-a', 'a'.repeat(1000)), Buffer.alloc(10, 0x80 | 62)]))).toHaveLength(11);
    for (let i = 0; i < 100; i++) expect(ok.decode(Buffer.alloc(60, 0x80 | 62))).toHaveLength(60);
  });

  it('limits the number of fields per block, and takes smaller limits', () => {
    const many = Buffer.alloc(MAX_HEADER_FIELDS + 1, 0x80 | 2); // ":method GET", 42 octets each
    expect(() => new HeaderBlockDecoder().decode(many)).toThrow(new HeaderLimitError(`authority: more than ${MAX_HEADER_FIELDS} header fields in one block`));
    expect(new HeaderBlockDecoder().decode(many.subarray(1))).toHaveLength(MAX_HEADER_FIELDS);
    expect(() => new HeaderBlockDecoder({ maxHeaderFields: 3 }).decode(Buffer.alloc(4, 0x82))).toThrow('authority: more than 3 header fields in one block');
    expect(() => new HeaderBlockDecoder({ maxHeaderListSize: 100 }).decode(Buffer.alloc(3, 0x82))).toThrow(
      'authority: the header list exceeds 100 octets (name + value + 32 per field)',
    );
  });

  it('honours dynamic table size updates only at the start of a block and up to the advertised 4096 octets', () => {
    const sizeUpdate = (n: number): Buffer => {
      const out: number[] = [];
      // 001xxxxx with a 5-bit prefix integer
      if (n < 31) out.push(0x20 | n);
      else {
        out.push(0x3f);
        let rest = n - 31;
        while (rest >= 0x80) {
          out.push((rest % 0x80) | 0x80);
          rest = Math.floor(rest / 0x80);
        }
        out.push(rest);
      }
      return Buffer.from(out);
    };
    const path = encodeHeaderBlock(fields([[':path', '/']]));
    expect(new HeaderBlockDecoder().decode(Buffer.concat([sizeUpdate(0), sizeUpdate(HEADER_TABLE_SIZE), path]))).toHaveLength(1);
    expect(() => new HeaderBlockDecoder().decode(Buffer.concat([sizeUpdate(HEADER_TABLE_SIZE + 1), path]))).toThrow(
      new HpackError('hpack: dynamic table size update to 4097 octets, above the 4096 allowed'),
    );
    expect(() => new HeaderBlockDecoder().decode(Buffer.concat([sizeUpdate(1 << 27), path]))).toThrow(HpackError);
    expect(() => new HeaderBlockDecoder().decode(Buffer.concat([path, sizeUpdate(0)]))).toThrow(new HpackError('hpack: dynamic table size update after the first field of a block'));
    // a size update evicts: after shrinking to 0, index 62 is gone
    const d = new HeaderBlockDecoder();
    d.decode(indexed('x-a', 'b'));
    expect(() => d.decode(Buffer.concat([sizeUpdate(0), Buffer.from([0x80 | 62])]))).toThrow(new HpackError('hpack: Indexed field OOB'));
  });

  it('the rewriter refuses an oversized block on the wire, and a bomb in a later block, with HeaderLimitError', () => {
    const start = Buffer.concat([CLIENT_PREFACE, CLIENT_SETTINGS]);
    const wire = new ClientHeaderRewriter();
    const big = headerFrames(1, true, undefined, Buffer.alloc(MAX_HEADER_LIST_SIZE + 2048, 0x82));
    expect(() => wire.push(Buffer.concat([start, ...big]))).toThrow(new HeaderLimitError('authority: a header block larger than 66560 octets'));
    const later = new ClientHeaderRewriter();
    const first = later.push(Buffer.concat([start, ...headerFrames(1, true, undefined, encodeHeaderBlock(fields([[':authority', SOCKET_AUTHORITY]])))]));
    expect(first.length).toBeGreaterThan(0);
    expect(() => later.push(Buffer.concat(headerFrames(3, true, undefined, bomb(14_000))))).toThrow(new HeaderLimitError(LIST_TOO_LARGE));
  });
});

// --- the first look ---------------------------------------------------------------------

describe('ConnectionSniffer', () => {
  function sniff(chunks: Buffer[]) {
    const s = new ConnectionSniffer();
    let d: ReturnType<ConnectionSniffer['push']> = { kind: 'pending' };
    for (const c of chunks) {
      d = s.push(c);
      if (d.kind !== 'pending') break;
    }
    return d;
  }

  it('fast path: an acceptable authority gets the bytes back unchanged except our SETTINGS ACK', async () => {
    const bytes = await nodeClientBytes([request('localhost', 0)]);
    const d = sniff([bytes]);
    expect(d.kind).toBe('fast');
    const data = (d as { data: Buffer }).data;
    expect(data.length).toBe(bytes.length - 9);
    expect(parseFrames(data).map((f) => frame(f.type, f.flags, f.streamId, f.payload).toString('hex'))).toEqual(stripFirstAck(bytes).map((b) => b.toString('hex')));
    // and nghttp2 takes exactly those bytes
    const seen = await nodeServerSees(data, 1);
    expect(seen.accepted[0]![':authority']).toBe('localhost');
  });

  it('decides the same at every split of the input', async () => {
    for (const [authority, kind] of [
      ['localhost', 'fast'],
      [SOCKET_AUTHORITY, 'slow'],
    ] as const) {
      const bytes = await nodeClientBytes([request(authority, 0)]);
      for (let i = 0; i <= bytes.length; i++) {
        const d = sniff([bytes.subarray(0, i), bytes.subarray(i)]);
        if (d.kind !== kind) expect.fail(`${authority}: split at ${i} gave ${d.kind}`);
      }
    }
  });

  it('waits for the ACK when HEADERS come first, and checks every block seen meanwhile', () => {
    const ok = frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, encodeHeaderBlock(fields([[':authority', 'localhost']])));
    const bad = frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 3, encodeHeaderBlock(fields([[':authority', SOCKET_AUTHORITY]])));
    const s = new ConnectionSniffer();
    expect(s.push(Buffer.concat([CLIENT_PREFACE, CLIENT_SETTINGS, ok])).kind).toBe('pending');
    expect(s.push(SETTINGS_ACK).kind).toBe('fast');
    expect(sniff([Buffer.concat([CLIENT_PREFACE, CLIENT_SETTINGS, ok]), bad, SETTINGS_ACK]).kind).toBe('slow');
    // a request without :authority is fine
    const none = frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, encodeHeaderBlock(fields([[':path', '/x']])));
    expect(sniff([Buffer.concat([CLIENT_PREFACE, SETTINGS_ACK, none])]).kind).toBe('fast');
  });

  it('slow path for a PING, malformed framing, or too much without a decision; raw for non-HTTP/2', () => {
    const start = Buffer.concat([CLIENT_PREFACE, CLIENT_SETTINGS]);
    expect(sniff([start, frame(FrameType.PING, 0, 0, Buffer.alloc(8))]).kind).toBe('slow');
    expect(sniff([start, frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 1, Buffer.alloc(1))]).kind).toBe('slow');
    expect(sniff([start, frame(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.END_HEADERS, 1, Buffer.from([9, 1, 2]))]).kind).toBe('slow');
    const data = frame(FrameType.DATA, 0, 1, Buffer.alloc(16_000));
    const flood = [start, ...Array.from({ length: Math.ceil(PEEK_LIMIT / data.length) + 1 }, () => data)];
    expect(sniff(flood).kind).toBe('slow');
    const http1 = Buffer.from('GET / HTTP/1.1\r\n\r\n');
    expect(sniff([http1])).toEqual({ kind: 'raw', data: http1 });
    expect(sniff([CLIENT_PREFACE.subarray(0, 4), http1])).toEqual({ kind: 'raw', data: Buffer.concat([CLIENT_PREFACE.subarray(0, 4), http1]) });
  });

  it('refuses a block over the limits (ENHANCE_YOUR_CALM) or that does not decode (COMPRESSION_ERROR), at every split', () => {
    const start = Buffer.concat([CLIENT_PREFACE, CLIENT_SETTINGS, SETTINGS_ACK]);
    const cases: [Buffer, { kind: 'refuse'; reason: string; errorCode: number }][] = [
      [Buffer.concat(headerFrames(1, true, undefined, bomb(14_000))), { kind: 'refuse', reason: LIST_TOO_LARGE, errorCode: Http2ErrorCode.ENHANCE_YOUR_CALM }],
      // larger than PEEK_LIMIT: the block is still read to its end (its own limit) and refused, not sent down the slow path
      [
        Buffer.concat(headerFrames(1, true, undefined, bomb(100_000))),
        { kind: 'refuse', reason: 'authority: a header block larger than 66560 octets', errorCode: Http2ErrorCode.ENHANCE_YOUR_CALM },
      ],
      [frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, Buffer.from([0xff, 0x10])), { kind: 'refuse', reason: 'hpack: Indexed field OOB', errorCode: Http2ErrorCode.COMPRESSION_ERROR }],
    ];
    for (const [frames, expected] of cases) {
      const bytes = Buffer.concat([start, frames]);
      expect(sniff([bytes])).toEqual(expected);
      for (const at of [1, 100, PEEK_LIMIT - 7, bytes.length - 1]) expect(sniff([bytes.subarray(0, at), bytes.subarray(at)])).toEqual(expected);
    }
  });
});

describe('routeConnection', () => {
  /** A Unix socket server routing every connection; reports what happened to each. */
  async function router(opts: { timeoutMs: number; handshakeTimeoutMs: number }) {
    const dir = mkdtempSync(join(tmpdir(), 'anchorage-route-'));
    const path = join(dir, 's.sock');
    const events: string[] = [];
    const server = createServer((socket) => {
      socket.on('error', () => {});
      routeConnection(socket, {
        ...opts,
        inject: (stream, rewritten) => {
          events.push(rewritten ? 'slow' : 'fast');
          stream.on('error', () => {});
          stream.resume();
        },
        onRefused: (reason) => events.push(`refused: ${reason}`),
      });
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const client = (send?: Buffer) =>
      new Promise<{ received: Buffer; closedAfterMs: number }>((resolve) => {
        const t0 = Date.now();
        const c = connect(path);
        const got: Buffer[] = [];
        c.on('data', (d: Buffer) => got.push(d));
        c.on('error', () => {});
        c.on('close', () => resolve({ received: Buffer.concat(got), closedAfterMs: Date.now() - t0 }));
        if (send) c.write(send);
      });
    return {
      events,
      client,
      close: () => {
        server.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it('closes a connection that sends no preface within the handshake timeout, on either path', async () => {
    const r = await router({ timeoutMs: 50, handshakeTimeoutMs: 300 });
    try {
      // nothing at all: the slow path at 50 ms, closed at 300 ms
      const silent = await r.client();
      expect(silent.closedAfterMs).toBeGreaterThanOrEqual(250);
      expect(silent.received.equals(EMPTY_SETTINGS)).toBe(true);
      expect(r.events).toEqual(['slow', 'refused: authority: no HTTP/2 client preface within 300 ms']);
      // half a preface: same
      r.events.length = 0;
      await r.client(CLIENT_PREFACE.subarray(0, 10));
      expect(r.events).toEqual(['slow', 'refused: authority: no HTTP/2 client preface within 300 ms']);
    } finally {
      r.close();
    }
  });

  it('refuses an oversized header block with a GOAWAY naming the limit, before handing anything over', async () => {
    const r = await router({ timeoutMs: 2000, handshakeTimeoutMs: 10_000 });
    try {
      const { received } = await r.client(Buffer.concat([CLIENT_PREFACE, CLIENT_SETTINGS, SETTINGS_ACK, ...headerFrames(1, true, undefined, bomb(14_000))]));
      const frames = parseFrames(received, false);
      expect(frames.map((f) => f.type)).toEqual([FrameType.SETTINGS, FrameType.GOAWAY]);
      const g = frames[1]!.payload;
      expect(g.readUInt32BE(0)).toBe(0); // no stream processed
      expect(g.readUInt32BE(4)).toBe(Http2ErrorCode.ENHANCE_YOUR_CALM);
      expect(g.subarray(8).toString('latin1')).toBe(LIST_TOO_LARGE);
      expect(r.events).toEqual([`refused: ${LIST_TOO_LARGE}`]);
    } finally {
      r.close();
    }
  });
});

// --- the slow path's stream -------------------------------------------------------------

describe('AuthorityRewritingStream', () => {
  /** A connected Unix socket pair: [client side, accepted side]. */
  async function socketPair(): Promise<{ client: Socket; accepted: Socket; done: () => void }> {
    const dir = mkdtempSync(join(tmpdir(), 'anchorage-authority-pair-'));
    const path = join(dir, 's.sock');
    const server = createServer();
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const client = connect(path);
    client.on('error', () => {});
    const a = await accepted;
    a.on('error', () => {});
    return {
      client,
      accepted: a,
      done: () => {
        client.destroy();
        a.destroy();
        server.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it('rewrites what the client sends, passes what the server writes, and holds the client back while nobody reads', async () => {
    const { client, accepted, done } = await socketPair();
    try {
      const headers = frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, encodeHeaderBlock(fields([[':path', '/x'], [':authority', SOCKET_AUTHORITY]])));
      // The first 10 octets as if read while looking at the connection.
      const stream = new AuthorityRewritingStream(accepted, { initial: [CLIENT_PREFACE.subarray(0, 10)] });
      const got: Buffer[] = [];
      const total = () => got.reduce((n, c) => n + c.length, 0);
      stream.on('data', (c: Buffer) => got.push(c));
      client.write(Buffer.concat([CLIENT_PREFACE.subarray(10), CLIENT_SETTINGS, SETTINGS_ACK, headers]));
      await waitFor(() => total() > CLIENT_PREFACE.length && headerBlocks(parseFrames(Buffer.concat(got))).length === 1, 'the rewritten HEADERS');

      // The reader stops (as nghttp2 does when it is busy); then 4 MiB of
      // DATA: the socket must stop reading instead of buffering it all.
      stream.pause();
      const beforeData = total();
      const data = frame(FrameType.DATA, 0, 1, Buffer.alloc(16_000, 0x61));
      const count = 262;
      for (let i = 0; i < count; i++) client.write(data);
      await tick(300);
      expect(accepted.bytesRead).toBeLessThan(2 * 1024 * 1024);
      expect(stream.readableLength).toBeLessThan(1024 * 1024);
      expect(client.writableLength).toBeGreaterThan(0);

      // Reading again lets everything through.
      stream.resume();
      await waitFor(() => total() >= beforeData + count * data.length, 'the DATA frames', 10_000);
      const frames = parseFrames(Buffer.concat(got));
      expect(frames.filter((f) => f.type === FrameType.DATA)).toHaveLength(count);
      expect(frames.some((f) => f.type === FrameType.SETTINGS && f.flags & FrameFlag.ACK)).toBe(false);
      const h = headerBlocks(frames);
      expect(new HeaderBlockDecoder().decode(h[0]!.block).map((f) => [f.name, f.value])).toEqual([
        [':path', '/x'],
        [':authority', 'localhost'],
      ]);
      expect(stream.rewritten).toBe(1);

      // Server to client: unchanged.
      const back: Buffer[] = [];
      client.on('data', (c: Buffer) => back.push(c));
      const reply = Buffer.concat([EMPTY_SETTINGS, frame(FrameType.PING, FrameFlag.ACK, 0, Buffer.alloc(8, 1))]);
      await new Promise<void>((resolve, reject) => stream.write(reply, (err) => (err ? reject(err) : resolve())));
      await waitFor(() => Buffer.concat(back).length >= reply.length, 'the reply');
      expect(Buffer.concat(back).equals(reply)).toBe(true);

      // The client's end ends the stream.
      const ended = new Promise<void>((resolve) => stream.once('end', () => resolve()));
      client.end();
      await ended;
    } finally {
      done();
    }
  });

  it('propagates close both ways and errors from the rewriter', async () => {
    {
      const { client, accepted, done } = await socketPair();
      const stream = new AuthorityRewritingStream(accepted);
      stream.resume();
      const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
      client.destroy();
      await closed;
      done();
    }
    {
      const { client, accepted, done } = await socketPair();
      const stream = new AuthorityRewritingStream(accepted);
      const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.resume();
      stream.destroy();
      await clientClosed;
      expect(accepted.destroyed).toBe(true);
      done();
    }
    {
      const { client, accepted, done } = await socketPair();
      const stream = new AuthorityRewritingStream(accepted);
      stream.resume();
      const failed = new Promise<Error>((resolve) => stream.once('error', resolve));
      const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.resume();
      client.write(Buffer.concat([CLIENT_PREFACE, frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 1, Buffer.alloc(1))]));
      expect(await failed).toBeInstanceOf(ClientProtocolError);
      await clientClosed;
      done();
    }
  });
});
