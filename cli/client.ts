import { existsSync, readFileSync } from 'node:fs';
import { connect as http2Connect, constants as h2, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { createRequire } from 'node:module';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import type * as ProtobufLight from 'protobufjs/light.js';
import type { MethodDefinition } from '@grpc/proto-loader';
import { AnchorageError } from '@anchorage/client/errors';
import { codeForStatus, ERROR_CODE_TRAILER, STATUS_FOR } from '@anchorage/client/grpc-status';
import { PROTO_LOADER_OPTIONS } from '@anchorage/client/proto/options';
import { protoRoot } from '../proto/root.js';
import type { AdminDefinition } from '../proto/gen/anchorage/admin/v1/Admin.js';

type Method = keyof AdminDefinition;
type Req<K extends Method> = AdminDefinition[K] extends MethodDefinition<infer A, any, any, any> ? A : never;
type Res<K extends Method> = AdminDefinition[K] extends MethodDefinition<any, any, any, infer R> ? R : never;

/*
 * A unary gRPC client for the admin API over node:http2, with messages
 * encoded by protobufjs' light build from the descriptor scripts/gen-proto.sh
 * writes. Not @grpc/grpc-js + @grpc/proto-loader: their import and the parse
 * of admin.proto cost ~100 ms at every start of a command that makes one call
 * (bench/cli.ts; issue 17 wants a CLI that starts in under 100 ms). The
 * server stays on grpc-js; this speaks the same wire (gRPC over HTTP/2,
 * length-prefixed messages, status in trailers).
 */

/** What an answer may weigh: grpc-js's default receive limit, which the old client had. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

interface Descriptor {
  service: string;
  methods: Record<string, { requestType: string; responseType: string; root: ProtobufLight.INamespace }>;
}

let descriptor: Descriptor | undefined;
let pb: typeof ProtobufLight | undefined;

/** The method's types, built from its own part of the descriptor only. */
function methodTypes(method: string): { path: string; req: ProtobufLight.Type; res: ProtobufLight.Type } {
  // The single-file build: one file to read, where 'protobufjs/light' is some thirty.
  pb ??= createRequire(import.meta.url)('protobufjs/dist/light/protobuf.min.js') as typeof ProtobufLight;
  descriptor ??= JSON.parse(readFileSync(join(protoRoot(), 'gen', 'admin.descriptor.json'), 'utf8')) as Descriptor;
  const m = Object.hasOwn(descriptor.methods, method) ? descriptor.methods[method] : undefined;
  if (!m) throw new AnchorageError('internal', `cli: no admin method ${method}`);
  const root = pb.Root.fromJSON(m.root);
  return { path: `/${descriptor.service}/${method}`, req: root.lookupType(m.requestType), res: root.lookupType(m.responseType) };
}

/** grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"). */
function statusMessage(v: string | string[] | undefined): string {
  const text = Array.isArray(v) ? v.join(',') : (v ?? '');
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A promise-returning admin client over the server's Unix socket. */
export class Admin {
  readonly socket: string;
  private session: ClientHttp2Session | undefined;

  constructor(socket: string) {
    if (!existsSync(socket)) {
      throw new AnchorageError('unavailable', `cli: no admin socket at ${socket} (is "anchorage server run" running?)`);
    }
    this.socket = socket;
  }

  private connect(): ClientHttp2Session {
    if (!this.session || this.session.closed || this.session.destroyed) {
      const s = http2Connect('http://localhost', { createConnection: () => netConnect(this.socket) });
      // Errors reach each call through its stream; the session's own must not crash the process.
      s.on('error', () => {});
      this.session = s;
    }
    return this.session;
  }

  call<K extends Method>(method: K, request: Req<K>, timeoutMs = 30_000): Promise<Res<K>> {
    const { path, req, res } = methodTypes(method as string);
    const err = req.verify(request as Record<string, unknown>);
    if (err) return Promise.reject(new AnchorageError('invalid_argument', `cli: ${method}: ${err}`));
    const body = req.encode(req.fromObject(request as Record<string, unknown>)).finish();
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    return new Promise<Res<K>>((resolve, reject) => {
      let answered = false;
      const fail = (code: number, detail: string) => {
        // A server that answers UNAVAILABLE (token down, disk full) was reached; say so only when none answered.
        const text = code === STATUS_FOR.unavailable && !answered ? `cannot reach the server at ${this.socket}: ${detail}` : detail;
        reject(new AnchorageError(codeForStatus(code), text));
      };
      const stream = this.connect().request(
        {
          [h2.HTTP2_HEADER_METHOD]: 'POST',
          [h2.HTTP2_HEADER_PATH]: path,
          [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
          te: 'trailers',
          'grpc-timeout': `${timeoutMs}m`,
        },
        { endStream: false },
      );
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const finish = (headers: IncomingHttpHeaders) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const status = Number(headers['grpc-status']);
        answered = headers[ERROR_CODE_TRAILER] !== undefined;
        if (!Number.isInteger(status)) return fail(13, 'the server answered without a gRPC status');
        if (status !== 0) return fail(status, statusMessage(headers['grpc-message']));
        const data = Buffer.concat(chunks);
        const len = data.length >= 5 ? data.readUInt32BE(1) : -1;
        if (data[0] !== 0 || len !== data.length - 5) return fail(13, 'the server sent a malformed or compressed answer');
        try {
          resolve(res.toObject(res.decode(data.subarray(5)), PROTO_LOADER_OPTIONS) as Res<K>);
        } catch (e) {
          fail(13, `cannot decode the server's answer: ${(e as Error).message}`);
        }
      };
      const timer = setTimeout(() => {
        settled = true;
        stream.close(h2.NGHTTP2_CANCEL);
        fail(4, 'deadline exceeded');
      }, timeoutMs);
      stream.on('response', (headers) => {
        // A status with no message comes in the headers alone ("Trailers-Only").
        if (headers['grpc-status'] !== undefined) finish(headers);
        else if (Number(headers[h2.HTTP2_HEADER_STATUS]) !== 200) finish({ 'grpc-status': '13', 'grpc-message': `HTTP status ${headers[h2.HTTP2_HEADER_STATUS]}` });
      });
      stream.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_ANSWER_BYTES + 5) {
          finish({ 'grpc-status': '8', 'grpc-message': `the answer is larger than ${MAX_ANSWER_BYTES} bytes` });
          stream.close(h2.NGHTTP2_CANCEL);
        } else chunks.push(d);
      });
      stream.on('trailers', (headers) => finish(headers));
      stream.on('error', (e: NodeJS.ErrnoException) => finish({ 'grpc-status': String(STATUS_FOR.unavailable), 'grpc-message': e.code ?? e.message }));
      stream.on('close', () => finish({ 'grpc-status': String(STATUS_FOR.unavailable), 'grpc-message': 'the connection closed before an answer' }));
      stream.end(frame);
    });
  }

  /**
   * A server-streaming call: `onMessage` gets each message as it arrives;
   * resolves when the server ends the stream with OK, rejects with its
   * status otherwise. No deadline (a followed stream runs until cancelled).
   */
  serverStream<K extends Method>(method: K, request: Req<K>, onMessage: (m: Res<K>) => void): Promise<void> {
    const { path, req, res } = methodTypes(method as string);
    const err = req.verify(request as Record<string, unknown>);
    if (err) return Promise.reject(new AnchorageError('invalid_argument', `cli: ${method}: ${err}`));
    const body = req.encode(req.fromObject(request as Record<string, unknown>)).finish();
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    return new Promise<void>((resolve, reject) => {
      const stream = this.connect().request(
        { [h2.HTTP2_HEADER_METHOD]: 'POST', [h2.HTTP2_HEADER_PATH]: path, [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc', te: 'trailers' },
        { endStream: false },
      );
      let buf: Buffer = Buffer.alloc(0);
      let settled = false;
      let answered = false;
      const finish = (headers: IncomingHttpHeaders) => {
        if (settled) return;
        settled = true;
        const status = Number(headers['grpc-status']);
        answered ||= headers[ERROR_CODE_TRAILER] !== undefined;
        if (!Number.isInteger(status)) return reject(new AnchorageError('internal', 'the server answered without a gRPC status'));
        if (status === 0) return resolve();
        const detail = statusMessage(headers['grpc-message']);
        const text = status === STATUS_FOR.unavailable && !answered ? `cannot reach the server at ${this.socket}: ${detail}` : detail;
        reject(new AnchorageError(codeForStatus(status), text));
      };
      const bad = (why: string) => {
        finish({ 'grpc-status': '13', 'grpc-message': why });
        stream.close(h2.NGHTTP2_CANCEL);
      };
      stream.on('response', (headers) => {
        if (headers['grpc-status'] !== undefined) finish(headers);
        else if (Number(headers[h2.HTTP2_HEADER_STATUS]) !== 200) finish({ 'grpc-status': '13', 'grpc-message': `HTTP status ${headers[h2.HTTP2_HEADER_STATUS]}` });
      });
      stream.on('data', (d: Buffer) => {
        if (settled) return;
        answered = true;
        buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
        while (buf.length >= 5) {
          if (buf[0] !== 0) return bad('the server sent a compressed message');
          const len = buf.readUInt32BE(1);
          if (len > MAX_ANSWER_BYTES) return bad(`a message is larger than ${MAX_ANSWER_BYTES} bytes`);
          if (buf.length < 5 + len) break;
          let msg: Res<K>;
          try {
            msg = res.toObject(res.decode(buf.subarray(5, 5 + len)), PROTO_LOADER_OPTIONS) as Res<K>;
          } catch (e) {
            return bad(`cannot decode the server's message: ${(e as Error).message}`);
          }
          buf = buf.subarray(5 + len);
          onMessage(msg);
        }
      });
      stream.on('trailers', (headers) => finish(headers));
      stream.on('error', (e: NodeJS.ErrnoException) => finish({ 'grpc-status': String(STATUS_FOR.unavailable), 'grpc-message': e.code ?? e.message }));
      stream.on('close', () => finish({ 'grpc-status': String(STATUS_FOR.unavailable), 'grpc-message': 'the connection closed before the stream ended' }));
      stream.end(frame);
    });
  }

  close(): void {
    this.session?.close();
  }
}
