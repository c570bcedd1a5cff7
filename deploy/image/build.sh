#!/usr/bin/env bash
# Builds Sandpool's own OCI image without pulling from any registry: a Debian rootfs made by
# mmdebstrap from the host's apt sources with the tools the server drives (runc, conmon, runsc,
# skopeo, umoci, socat, nftables, mmdebstrap for the PythonLTS image), the Node 24 this checkout
# runs on, and the app with its production dependencies; packed by umoci into an OCI image layout.
#
#   deploy/image/build.sh [OUT_DIR]     (default: dist/image; run after scripts/setup.sh)
#
# Output: OUT_DIR/sandpool, an OCI image layout tagged with the server's version. Push it with
# `skopeo copy oci:OUT_DIR/sandpool:<version> docker://<registry>/sandpool:<version>`. The PythonLTS
# image is not inside (it is about a gigabyte): the entrypoint builds it once onto the host's
# state directory, as scripts/setup.sh does on a host, and finds it cached afterwards.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/dist/image}
cd "$repo"
. scripts/node-runtime.sh
version=$(node -p 'require("./packages/server/package.json").version')
node_home=$(dirname "$(dirname "$(command -v node)")")
[ -f packages/web/dist/index.html ] && [ -f packages/cli/dist/src/main.js ] && [ -f packages/server/dist/src/main.js ] || {
  echo "build.sh: run scripts/setup.sh first (the dashboard and the CLI are built there)" >&2
  exit 1
}

work=$(mktemp -d /var/tmp/sandpool-image-XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
rootfs=$work/rootfs
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
start=$(date +%s)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600} mmdebstrap --variant=apt --quiet \
  --include=runc,conmon,golang-github-containers-common,runsc,skopeo,umoci,socat,iproute2,nftables,util-linux,procps,ca-certificates,mmdebstrap,openssl,python3-seccomp \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  bookworm "$rootfs" "$sources"
rm -rf "$rootfs/var/cache/apt"/* "$rootfs/var/lib/apt/lists"/* "$rootfs/var/log"/*
# The image's apt sources are the build host's: the PythonLTS build inside the pod uses them.
cp "$sources" "$rootfs$sources"

# Node 24, as this checkout runs it.
mkdir -p "$rootfs/opt/sandpool"
cp -a "$node_home" "$rootfs/opt/sandpool/node"

# The app: the tracked files at HEAD, the built server, dashboard, SDK and CLI, and production
# dependencies (the server runs compiled, as in a checkout).
app=$rootfs/opt/sandpool/app
mkdir -p "$app"
git archive HEAD | tar -x -C "$app"
for built in packages/server/dist packages/web/dist packages/sdk/dist packages/cli/dist; do cp -a "$built" "$app/$built"; done
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
ln -s /opt/sandpool/app/packages/cli/bin/sandpool.js "$rootfs/usr/local/bin/sandpool"

umoci init --layout "$out/sandpool.partial"
umoci new --image "$out/sandpool.partial:$version"
umoci unpack --image "$out/sandpool.partial:$version" "$work/bundle" >/dev/null
rm -rf "$work/bundle/rootfs"
mv "$rootfs" "$work/bundle/rootfs"
umoci repack --image "$out/sandpool.partial:$version" "$work/bundle"
umoci config --image "$out/sandpool.partial:$version" \
  --config.entrypoint /opt/sandpool/app/deploy/image/entrypoint.sh \
  --config.cmd serve \
  --config.workingdir /opt/sandpool/app \
  --config.env PATH=/opt/sandpool/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.label org.opencontainers.image.title=sandpool \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$(git rev-parse HEAD)"
umoci gc --layout "$out/sandpool.partial"
rm -rf "$out/sandpool"
mv "$out/sandpool.partial" "$out/sandpool"
echo "sandpool image $version built in $(( $(date +%s) - start )) s: $(du -sh "$out/sandpool" | cut -f1) at $out/sandpool"
