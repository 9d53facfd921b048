import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as WorkloadProto } from './gen/workload.js';

import { PROTO_LOADER_OPTIONS } from './options.js';

export { PROTO_LOADER_OPTIONS };

/**
 * The SPIFFE Workload API's .proto file, shipped in the package's proto/
 * folder: two levels up from both src/proto/ and dist/proto/.
 */
export const WORKLOAD_PROTO_PATH = fileURLToPath(new URL('../../proto/spiffe/workload.proto', import.meta.url));

/** The package definition of workload.proto (for reflection; the typed loader below keeps only the grpc object). */
export function workloadPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(WORKLOAD_PROTO_PATH, PROTO_LOADER_OPTIONS);
}

let workload: WorkloadProto | undefined;

/** The SPIFFE Workload API (service `SpiffeWorkloadAPI`, no package), typed by the generated code. */
export function loadWorkloadProto(): WorkloadProto {
  workload ??= grpc.loadPackageDefinition(workloadPackageDefinition()) as unknown as WorkloadProto;
  return workload;
}
