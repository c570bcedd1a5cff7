#!/bin/sh
# Starts the Node agent with its stdout and stderr on pipes it reads itself (descriptors 3 and 4), so
# what user code and its child processes write is captured at the descriptor level, as the Python
# agent's is; descriptors 5 and 6 keep the sandbox's console for what is written between executions.
# Node cannot dup2, so the pipes are named ones, opened here and unlinked before Node starts.
#
#   launch.sh SOCKET_PATH
set -eu
dir=$(mktemp -d)
mkfifo -m 600 "$dir/stdout" "$dir/stderr"
# A FIFO opened read-write never blocks the open, and keeps a reader for the writers that follow.
exec 3<>"$dir/stdout" 4<>"$dir/stderr" 5>&1 6>&2 1>"$dir/stdout" 2>"$dir/stderr" </dev/null
rm -r "$dir"
# The agent imports with vm's default loader, which Node still calls experimental: no warning on the
# console of every sandbox.
exec node --disable-warning=ExperimentalWarning "$(dirname "$0")/agent.mjs" "$1"
