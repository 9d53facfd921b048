// An Envoy SDS v3 client for tests and the bench: it speaks to the agent's
// Workload API socket the way Envoy does (DiscoveryRequest in, DiscoveryResponse
// out, ACKs by nonce), with requests built from plain objects so a test can
// send anything, well-formed or not. Compiled into dist/ for bench/: no vitest here.
import * as grpc from '@grpc/grpc-js';
import { decodeSecret, sdsClientDefinition, SECRET_TYPE_URL } from '../../workload-api/sds/proto.js';

export { SECRET_TYPE_URL };

type Obj = Record<string, unknown>;

/** A DiscoveryResponse as the client decodes it, with each resource's Secret decoded. */
export interface SdsResponse {
  version_info: string;
  nonce: string;
  type_url: string;
  secrets: Obj[];
}

export interface SdsDeltaResponse {
  system_version_info: string;
  nonce: string;
  type_url: string;
  resources: { name: string; version: string; secret: Obj }[];
  removed_resources: string[];
}

const SdsClient = grpc.makeGenericClientConstructor(sdsClientDefinition(), 'SecretDiscoveryService');

/** A client channel to `socketPath`; close it with `.close()`. */
export function sdsClient(socketPath: string, options: grpc.ChannelOptions = {}): grpc.Client {
  return new SdsClient(`unix://${socketPath}`, grpc.credentials.createInsecure(), options);
}

function secretsOf(resources: unknown): Obj[] {
  return (resources as { type_url: string; value: Uint8Array }[]).map((r) => decodeSecret(r.value));
}

function toResponse(m: Obj): SdsResponse {
  return { version_info: m.version_info as string, nonce: m.nonce as string, type_url: m.type_url as string, secrets: secretsOf(m.resources) };
}

function toDeltaResponse(m: Obj): SdsDeltaResponse {
  const resources = (m.resources as { name: string; version: string; resource: { value: Uint8Array } }[]).map((r) => ({ name: r.name, version: r.version, secret: decodeSecret(r.resource.value) }));
  return { system_version_info: m.system_version_info as string, nonce: m.nonce as string, type_url: m.type_url as string, resources, removed_resources: m.removed_resources as string[] };
}

/** FetchSecrets: the response, or the gRPC error. */
export function fetchSecrets(client: grpc.Client, request: Obj): Promise<SdsResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets',
      (o: Obj) => sdsClientDefinition().FetchSecrets!.requestSerialize(o),
      (b: Buffer) => sdsClientDefinition().FetchSecrets!.responseDeserialize(b) as Obj,
      request,
      (err, res) => (err ? reject(err) : resolve(toResponse(res!))),
    );
  });
}

/**
 * One open stream (StreamSecrets or DeltaSecrets): what it received, in
 * order, and how it ended. `next()` waits for the next message not yet taken.
 */
export class SdsStream<R> {
  readonly received: R[] = [];
  /** performance.now() at each message's arrival, by index in `received`. */
  readonly arrivedAt: number[] = [];
  /** Set once the stream ended: null for OK, else the error. */
  ended: grpc.ServiceError | null | undefined;
  readonly #call: grpc.ClientDuplexStream<Obj, Obj>;
  #taken = 0;
  #wake: (() => void) | undefined;

  private constructor(call: grpc.ClientDuplexStream<Obj, Obj>, decode: (m: Obj) => R) {
    this.#call = call;
    call.on('data', (m: Obj) => {
      this.arrivedAt.push(performance.now());
      this.received.push(decode(m));
      this.#wake?.();
    });
    call.on('error', (e: grpc.ServiceError) => {
      this.ended = e;
      this.#wake?.();
    });
    call.on('end', () => {
      this.ended ??= null;
      this.#wake?.();
    });
  }

  static sotw(client: grpc.Client): SdsStream<SdsResponse> {
    const d = sdsClientDefinition().StreamSecrets!;
    const call = client.makeBidiStreamRequest(d.path, d.requestSerialize as (o: Obj) => Buffer, d.responseDeserialize as (b: Buffer) => Obj);
    return new SdsStream(call, toResponse);
  }

  static delta(client: grpc.Client): SdsStream<SdsDeltaResponse> {
    const d = sdsClientDefinition().DeltaSecrets!;
    const call = client.makeBidiStreamRequest(d.path, d.requestSerialize as (o: Obj) => Buffer, d.responseDeserialize as (b: Buffer) => Obj);
    return new SdsStream(call, toDeltaResponse);
  }

  send(request: Obj): void {
    this.#call.write(request);
  }

  /** The next message not yet taken; rejects if the stream ends or nothing comes within `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length <= this.#taken) {
      if (this.ended !== undefined) throw new Error(`sds stream ended: ${this.ended ? `${grpc.status[this.ended.code]}: ${this.ended.details}` : 'OK'}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SDS message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.received[this.#taken++]!;
  }

  /** How the stream ended (waits for it). */
  async status(timeoutMs = 10_000): Promise<grpc.ServiceError | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.ended === undefined) {
      if (Date.now() > deadline) throw new Error(`the SDS stream did not end within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.ended;
  }

  cancel(): void {
    this.#call.cancel();
  }

  /** Stops reading (HTTP/2 flow control then holds the server back) until resume(). */
  pause(): void {
    this.#call.pause();
  }

  resume(): void {
    this.#call.resume();
  }
}
