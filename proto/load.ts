import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as AdminProto } from './gen/admin.js';
import type { ProtoGrpcType as WorkloadProto } from './gen/workload.js';
import type { ProtoGrpcType as AgentProto } from './gen/agent.js';
import type { ProtoGrpcType as HealthProto } from './gen/health.js';

/** Must match the flags in scripts/gen-proto.sh, or the generated types lie. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The proto/ source folder, both from the TypeScript tree and from dist/. */
export function protoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [here, join(here, '..', '..', 'proto')]) {
    if (existsSync(join(candidate, 'anchorage')) && existsSync(join(candidate, 'spiffe'))) return candidate;
  }
  throw new Error(`proto: cannot find the .proto files near ${here}`);
}

let admin: AdminProto | undefined;

/** The admin service definitions, typed by the committed generated code. */
export function loadAdminProto(): AdminProto {
  if (!admin) {
    const def = protoLoader.loadSync(join(protoRoot(), 'anchorage/admin/v1/admin.proto'), PROTO_LOADER_OPTIONS);
    admin = grpc.loadPackageDefinition(def) as unknown as AdminProto;
  }
  return admin;
}

let workload: WorkloadProto | undefined;

/** The SPIFFE Workload API (service `SpiffeWorkloadAPI`, no package), typed by the generated code. */
export function loadWorkloadProto(): WorkloadProto {
  if (!workload) {
    const def = protoLoader.loadSync(join(protoRoot(), 'spiffe/workload.proto'), PROTO_LOADER_OPTIONS);
    workload = grpc.loadPackageDefinition(def) as unknown as WorkloadProto;
  }
  return workload;
}

let agent: AgentProto | undefined;

/** The server <-> agent API, typed by the generated code. */
export function loadAgentProto(): AgentProto {
  if (!agent) {
    const def = protoLoader.loadSync(join(protoRoot(), 'anchorage/agent/v1/agent.proto'), PROTO_LOADER_OPTIONS);
    agent = grpc.loadPackageDefinition(def) as unknown as AgentProto;
  }
  return agent;
}

let health: HealthProto | undefined;

/** grpc.health.v1 (the standard health checking protocol), typed by the generated code. */
export function loadHealthProto(): HealthProto {
  if (!health) {
    const def = protoLoader.loadSync(join(protoRoot(), 'grpc/health/v1/health.proto'), PROTO_LOADER_OPTIONS);
    health = grpc.loadPackageDefinition(def) as unknown as HealthProto;
  }
  return health;
}
