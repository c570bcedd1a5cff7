#!/bin/sh
# The image's entrypoint: the PythonLTS image first (built once onto the host's state directory,
# a no-op while its recipe is unchanged), then the server with the container's arguments (`serve`).
set -eu
cd /opt/sandpool/app
images/python/build.sh
exec node packages/server/dist/src/main.js "$@"
