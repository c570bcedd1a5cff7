#!/usr/bin/env bash
# Builds the NodeLTS rootfs: a minimal Debian (mmdebstrap) with the official Node 24 LTS binary (the
# npm registry's node-linux-<arch> package, the release Sandpool itself runs on) and the npm packages
# of package.json under /node_modules, cached by recipe hash.
#
#   images/node/build.sh [IMAGES_DIR]     (default: $SANDPOOL_HOME/images, SANDPOOL_HOME=/var/lib/sandpool)
#
# The image id is a hash of this script, package.json, images/rootfs.sh and the Node version. Output:
# IMAGES_DIR/node-lts-<id>/rootfs (read-only to sandboxes) plus rootfs/etc/sandpool/image.json
# (runtime version and the packages of package.json), and IMAGES_DIR/node-lts -> node-lts-<id>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/node-runtime.sh
. "$here/../../scripts/node-runtime.sh"
# shellcheck source=../rootfs.sh
. "$here/../rootfs.sh"
rootfs_begin node-lts "${1:-${SANDPOOL_HOME:-/var/lib/sandpool}/images}" \
  "$here/build.sh" "$here/package.json" <(echo "$SANDPOOL_NODE_VERSION")
# tini reaps and forwards signals; libstdc++6 is the one library the official binary needs beyond libc.
debian_rootfs tini,ca-certificates,libstdc++6,procps
rootfs_harden

# The Node binary: the same release the server runs on, from the npm registry.
case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) echo "no Node for $(uname -m)" >&2; exit 1 ;; esac
(cd "$tmp" && npm pack --silent "node-linux-$arch@$SANDPOOL_NODE_VERSION" >/dev/null)
mkdir -p "$tmp/node"
tar xzf "$tmp"/node-linux-*.tgz -C "$tmp/node" --strip-components=1
install -m 0755 "$tmp/node/bin/node" "$root/usr/local/bin/node"
install -m 0644 "$tmp/node/LICENSE" "$root/usr/local/share/node-LICENSE"

# The packages, for this platform (sharp's prebuilt libvips), at /node_modules: `require` and `import`
# find them from any directory.
mkdir -p "$tmp/npm"
cp "$here/package.json" "$tmp/npm/package.json"
(cd "$tmp/npm" && npm install --omit=dev --no-audit --no-fund --no-package-lock --silent)
mv "$tmp/npm/node_modules" "$root/node_modules"
# Every package loads in the image (sharp's native library included).
chroot "$root" /usr/local/bin/node -e "for (const name of process.argv.slice(1)) require(name)" \
  $(node -p "Object.keys(require('$here/package.json').dependencies).join(' ')")

# What `metadata` answers: the runtime and the packages package.json names (their own dependencies
# come with them).
node - "$here/package.json" "$root" "$tmp/node/package.json" > "$root/etc/sandpool/image.json" <<'JS'
const { readFileSync } = require('node:fs');
const [recipe, root, runtime] = process.argv.slice(2);
const read = (path) => JSON.parse(readFileSync(path, 'utf8'));
console.log(JSON.stringify({
  containerType: 'NodeLTS',
  runtimes: [{ name: 'node', version: read(runtime).version }],
  preInstalledPackages: Object.keys(read(recipe).dependencies)
    .sort()
    .map((name) => ({ name, version: read(`${root}/node_modules/${name}/package.json`).version })),
}, null, 1));
JS
rootfs_end
