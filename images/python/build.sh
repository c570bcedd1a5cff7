#!/usr/bin/env bash
# Builds the PythonLTS rootfs from Debian packages with mmdebstrap and caches it by recipe hash.
#
#   images/python/build.sh [IMAGES_DIR]     (default: $SANDPOOL_HOME/images, SANDPOOL_HOME=/var/lib/sandpool)
#
# The image id is a hash of this script and packages.txt, so an unchanged recipe is a no-op.
# Output: IMAGES_DIR/python-lts-<id>/rootfs (read-only to sandboxes) plus
#         rootfs/etc/sandpool/image.json (runtime version and installed Python packages),
# and IMAGES_DIR/python-lts -> python-lts-<id> pointing at the newest build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
images_dir=${1:-${SANDPOOL_HOME:-/var/lib/sandpool}/images}
id=$(cat "$here/build.sh" "$here/packages.txt" | sha256sum | cut -c1-16)
out="$images_dir/python-lts-$id"
if [ -f "$out/rootfs/etc/sandpool/image.json" ]; then
  ln -sfn "python-lts-$id" "$images_dir/python-lts"
  echo "python-lts image $id is cached at $out"
  exit 0
fi
mkdir -p "$images_dir"
tmp="$images_dir/.build-python-lts-$id"
# A build killed midway can leave proc, sys or dev mounted inside its chroot: unmount before removing,
# and never let rm cross into another filesystem.
remove_tree() {
  [ -e "$1" ] || return 0
  awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf --one-file-system "$1"
}
remove_tree "$tmp"; mkdir -p "$tmp"
packages=$(grep -v '^#' "$here/packages.txt" | grep -v '^$' | paste -sd, -)
# The host's own apt sources, so the image comes from the same mirror the machine already uses.
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
start=$(date +%s)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600} mmdebstrap --variant=essential --quiet \
  --include="$packages" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/include/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='chroot "$1" /usr/bin/python3 -c "import numpy, pandas, matplotlib, scipy, sklearn, requests, PIL, openpyxl"' \
  bookworm "$tmp/rootfs" "$sources"
root="$tmp/rootfs"
# Headers and static archives pulled in by Depends (boost, gcc) are of no use at run time.
rm -rf "$root/usr/include" "$root/usr/lib/gcc" "$root/var/cache/apt"/* "$root/var/lib/apt/lists"/* "$root/var/log"/*
find "$root/usr/lib" -name '*.a' -delete
# Nobody logs in: su, newgrp and unix_chkpwd lose their setuid/setgid bits (no_new_privs ignores them
# already; this keeps the image free of them should a runtime ever run it without).
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
# mmdebstrap copies the build host's name and resolver into the image: every sandbox would carry
# them. Neutral files instead (a sandbox's resolver, when it has egress, is bound over resolv.conf).
echo sandbox > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
: > "$root/etc/resolv.conf"
# Mount points must exist in a read-only rootfs.
mkdir -p "$root/mnt/data" "$root/opt/sandpool/agent" "$root/run/sandpool" "$root/home/user"
mkdir -p "$root/etc/sandpool/matplotlib"
# matplotlib scans fonts on first import (seconds); the agent copies this ready cache into its own config dir.
chroot "$root" /usr/bin/env MPLCONFIGDIR=/etc/sandpool/matplotlib /usr/bin/python3 -c "import matplotlib.font_manager"
chroot "$root" /usr/bin/python3 - > "$root/etc/sandpool/image.json" <<'PY'
import json, platform, importlib.metadata as md
pkgs = sorted({(d.metadata["Name"], d.version) for d in md.distributions() if d.metadata["Name"]}, key=lambda p: p[0].lower())
print(json.dumps({
    "containerType": "PythonLTS",
    "runtimes": [{"name": "python", "version": platform.python_version()}],
    "preInstalledPackages": [{"name": n, "version": v} for n, v in pkgs],
}, indent=1))
PY
echo "$id" > "$root/etc/sandpool/image-id"
remove_tree "$out"; mv "$tmp" "$out"
ln -sfn "python-lts-$id" "$images_dir/python-lts"
echo "python-lts image $id built in $(( $(date +%s) - start )) s: $(du -sh "$out/rootfs" | cut -f1) at $out"
