#!/usr/bin/env bash
# Regenerates the committed TypeScript types for our .proto files (into
# proto/gen, or the directory given). The options must match
# PROTO_LOADER_OPTIONS in proto/load.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-proto/gen}
rm -rf "$out"
# File names first: --includeDirs is an array option and would swallow them.
npx --no-install proto-loader-gen-types anchorage/admin/v1/admin.proto anchorage/agent/v1/agent.proto spiffe/workload.proto grpc/health/v1/health.proto \
  --keepCase --longs=Number --enums=String --defaults --oneofs --grpcLib=@grpc/grpc-js --includeComments \
  --importFileExtension=.js --outDir="$out" --includeDirs=proto
