#!/usr/bin/env bash
# Regenerates the committed TypeScript types for our .proto files: Anchorage's
# own services into proto/gen, the SPIFFE Workload API (which the client
# package owns) into packages/client/src/proto/gen — or into the two
# directories given. The options must match PROTO_LOADER_OPTIONS in
# packages/client/src/proto/load.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(realpath -m "${1:-proto/gen}")
client_out=$(realpath -m "${2:-packages/client/src/proto/gen}")
gen() { # <outdir> <proto files…>; run from the folder whose proto/ holds them
  local dir=$1; shift
  rm -rf "$dir"
  # File names first: --includeDirs is an array option and would swallow them.
  "$root/node_modules/.bin/proto-loader-gen-types" "$@" \
    --keepCase --longs=Number --enums=String --defaults --oneofs --grpcLib=@grpc/grpc-js --includeComments \
    --importFileExtension=.js --outDir="$dir" --includeDirs=proto
}
gen "$out" anchorage/admin/v1/admin.proto anchorage/agent/v1/agent.proto grpc/health/v1/health.proto
(cd packages/client && gen "$client_out" spiffe/workload.proto)
node scripts/proto-descriptor.mjs "$out"
