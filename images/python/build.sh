#!/usr/bin/env bash
# Builds the PythonLTS rootfs from Debian packages with mmdebstrap and caches it by recipe hash.
#
#   images/python/build.sh [IMAGES_DIR]     (default: $SANDPOOL_HOME/images, SANDPOOL_HOME=/var/lib/sandpool)
#
# The image id is a hash of this script, packages.txt and images/rootfs.sh, so an unchanged recipe is
# a no-op. Output: IMAGES_DIR/python-lts-<id>/rootfs (read-only to sandboxes) plus
# rootfs/etc/sandpool/image.json (runtime version and installed Python packages), and
# IMAGES_DIR/python-lts -> python-lts-<id> pointing at the newest build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../rootfs.sh
. "$here/../rootfs.sh"
rootfs_begin python-lts "${1:-${SANDPOOL_HOME:-/var/lib/sandpool}/images}" "$here/build.sh" "$here/packages.txt"
debian_rootfs "$(grep -v '^#' "$here/packages.txt" | grep -v '^$' | paste -sd, -)" \
  --customize-hook='chroot "$1" /usr/bin/python3 -c "import numpy, pandas, matplotlib, scipy, sklearn, requests, PIL, openpyxl"'
# Headers and static archives pulled in by Depends (boost, gcc) are of no use at run time.
rm -rf "$root/usr/include" "$root/usr/lib/gcc"
find "$root/usr/lib" -name '*.a' -delete
rootfs_harden
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
rootfs_end
