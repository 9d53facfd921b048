#!/usr/bin/env bash
# `npm run bench -- NAME`: runs a benchmark from bench/ and prints its figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/bench/run.js "$@"
