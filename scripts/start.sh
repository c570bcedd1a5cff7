#!/usr/bin/env bash
# Quick start, command one: set up the host, then run Sandpool.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/node-runtime.sh
exec node packages/server/dist/src/main.js "$@"
