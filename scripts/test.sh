#!/usr/bin/env bash
# Quick start, command two: set up the host, then type-check, lint and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/node-runtime.sh
npx tsc -b
npx tsc -p bench
npx tsc -p deploy
npx tsc -p scripts
npx tsc -p packages/sdk/test
npx tsc -p packages/cli/test
npx tsc -p packages/web
npx tsc -p packages/web/test
npx eslint .
npx prettier --check .
node scripts/run-tests.mjs "$@"
