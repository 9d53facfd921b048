import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS } from '@anchorage/client/proto';
import { protoRoot } from './root.js';
import type { ProtoGrpcType as AdminProto } from './gen/admin.js';
import type { ProtoGrpcType as AgentProto } from './gen/agent.js';
import type { ProtoGrpcType as HealthProto } from './gen/health.js';

// The SPIFFE Workload API's proto and loader live in @anchorage/client/proto;
// this file loads Anchorage's own services with the same options.

export { protoRoot } from './root.js';

let admin: AdminProto | undefined;

/** The admin service definitions, typed by the committed generated code. */
export function loadAdminProto(): AdminProto {
  if (!admin) {
    const def = protoLoader.loadSync(join(protoRoot(), 'anchorage/admin/v1/admin.proto'), PROTO_LOADER_OPTIONS);
    admin = grpc.loadPackageDefinition(def) as unknown as AdminProto;
  }
  return admin;
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
