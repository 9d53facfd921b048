#!/usr/bin/env bash
# Fails when the committed generated types (proto/gen, or the directory given)
# are not what scripts/gen-proto.sh makes from the .proto files today: a .proto
# edited without regenerating, or a generated file edited by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
committed=${1:-proto/gen}
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
bash scripts/gen-proto.sh "$fresh/gen" >/dev/null
if ! diff -r "$committed" "$fresh/gen" >"$fresh/diff" 2>&1; then
  echo "check-proto: $committed is out of date with the .proto files; run scripts/gen-proto.sh and commit the result:" >&2
  grep -E '^(Only in|diff )' "$fresh/diff" | sed "s#$fresh/gen#(generated)#g" | head -20 >&2
  exit 1
fi
