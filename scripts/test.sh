#!/usr/bin/env bash
# The README's test command: installs what is missing, type-checks everything
# (tests included), runs every test, and ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# The committed generated proto types must match the .proto files.
bash scripts/check-proto.sh
npx --no-install tsc -p tsconfig.test.json
mkdir -p .test-results
set +e
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json "$@"
rc=$?
set -e
node scripts/test-summary.mjs .test-results/vitest.json || true
node scripts/interop-table.mjs || true
exit $rc
