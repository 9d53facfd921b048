#!/usr/bin/env bash
# Fails when the committed generated types (proto/gen and
# packages/client/src/proto/gen) are not what scripts/gen-proto.sh makes from
# the .proto files today: a .proto edited without regenerating, or a generated
# file edited by hand. Arguments, for its own tests: other folders to check in
# place of proto/gen and packages/client/src/proto/gen.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
bash scripts/gen-proto.sh "$fresh/gen" "$fresh/client-gen" >/dev/null
status=0
for pair in "${1:-proto/gen}:$fresh/gen" "${2:-packages/client/src/proto/gen}:$fresh/client-gen"; do
  committed=${pair%%:*} made=${pair#*:}
  if ! diff -r "$committed" "$made" >"$fresh/diff" 2>&1; then
    echo "check-proto: $committed is out of date with the .proto files; run scripts/gen-proto.sh and commit the result:" >&2
    grep -E '^(Only in|diff )' "$fresh/diff" | sed "s#$made#(generated)#g" | head -20 >&2
    status=1
  fi
done
exit $status
