import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { AnchorageError } from '@anchorage/client/errors';
import { codeForStatus } from '@anchorage/client/grpc-status';
import { answeredByServer } from '../common/grpc.js';
import { loadAdminProto } from '../proto/load.js';
import type { MethodDefinition } from '@grpc/proto-loader';
import type { AdminClient, AdminDefinition } from '../proto/gen/anchorage/admin/v1/Admin.js';

type Method = keyof AdminDefinition;
type Req<K extends Method> = AdminDefinition[K] extends MethodDefinition<infer A, any, any, any> ? A : never;
type Res<K extends Method> = AdminDefinition[K] extends MethodDefinition<any, any, any, infer R> ? R : never;

/** A promise-returning admin client over the server's Unix socket. */
export class Admin {
  private readonly client: AdminClient;
  readonly socket: string;

  constructor(socket: string) {
    if (!existsSync(socket)) {
      throw new AnchorageError('unavailable', `cli: no admin socket at ${socket} (is "anchorage server run" running?)`);
    }
    this.socket = socket;
    const Ctor = loadAdminProto().anchorage.admin.v1.Admin;
    this.client = new Ctor(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  call<K extends Method>(method: K, request: Req<K>, timeoutMs = 30_000): Promise<Res<K>> {
    return new Promise((resolve, reject) => {
      const fn = (this.client as unknown as Record<string, unknown>)[method as string] as (
        r: unknown,
        md: grpc.Metadata,
        o: grpc.CallOptions,
        cb: grpc.requestCallback<unknown>,
      ) => grpc.ClientUnaryCall;
      fn.call(this.client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) {
          // A server that answers UNAVAILABLE (token down, disk full) was reached; say so only when none answered.
          const detail = err.code === grpc.status.UNAVAILABLE && !answeredByServer(err) ? `cannot reach the server at ${this.socket}: ${err.details}` : err.details;
          reject(new AnchorageError(codeForStatus(err.code), detail));
        } else resolve(res as Res<K>);
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
