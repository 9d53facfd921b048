#!/usr/bin/env bash
# Regenerates the committed TypeScript types for our .proto files. The options
# must match PROTO_LOADER_OPTIONS in proto/load.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf proto/gen
npx --no-install proto-loader-gen-types --keepCase --longs=Number --enums=String --defaults --oneofs \
  --grpcLib=@grpc/grpc-js --includeComments --outDir=proto/gen \
  proto/anchorage/admin/v1/admin.proto "$@"
# NodeNext resolution wants explicit extensions on relative imports.
find proto/gen -name '*.ts' -print0 | xargs -0 sed -i -E "s#(from '\.{1,2}/[^']*)';#\1.js';#"
