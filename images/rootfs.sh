# Sourced by images/*/build.sh: what building an interpreter rootfs with mmdebstrap takes, whatever
# its language. A build is cached by its recipe's hash under IMAGES_DIR/<name>-<id>, and
# IMAGES_DIR/<name> points at the newest.
#
#   rootfs_begin NAME IMAGES_DIR RECIPE_FILE...   sets $id, $out, $tmp and $root; exits when cached
#   debian_rootfs INCLUDE [MMDEBSTRAP_ARGS...]    a minimal Debian at $root from the host's apt sources
#   rootfs_harden                                 no setuid bits, a neutral hostname, hosts and resolver
#   rootfs_end                                    records the id and moves the build into place

# A build killed midway can leave proc, sys or dev mounted inside its chroot: unmount before removing,
# and never let rm cross into another filesystem.
remove_tree() {
  [ -e "$1" ] || return 0
  awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf --one-file-system "$1"
}

rootfs_begin() {
  image_name=$1 images_dir=$2
  shift 2
  # This file is part of every recipe.
  id=$(cat "${BASH_SOURCE[0]}" "$@" | sha256sum | cut -c1-16)
  out="$images_dir/$image_name-$id"
  if [ -f "$out/rootfs/etc/sandpool/image.json" ]; then
    ln -sfn "$image_name-$id" "$images_dir/$image_name"
    echo "$image_name image $id is cached at $out"
    exit 0
  fi
  mkdir -p "$images_dir"
  tmp="$images_dir/.build-$image_name-$id"
  root="$tmp/rootfs"
  remove_tree "$tmp"
  mkdir -p "$tmp"
  build_started=$(date +%s)
}

debian_rootfs() {
  local include=$1
  shift
  # The host's own apt sources, so the image comes from the same mirror the machine already uses.
  local sources=/etc/apt/sources.list.d/debian.sources
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600} mmdebstrap --variant=essential --quiet \
    --include="$include" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/include/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    "$@" bookworm "$root" "$sources"
  rm -rf "$root/var/cache/apt"/* "$root/var/lib/apt/lists"/* "$root/var/log"/*
}

rootfs_harden() {
  # Nobody logs in: su, newgrp and unix_chkpwd lose their setuid/setgid bits (no_new_privs ignores
  # them already; this keeps the image free of them should a runtime ever run it without).
  find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
  # mmdebstrap copies the build host's name and resolver into the image: every sandbox would carry
  # them. Neutral files instead (a sandbox's resolver, when it has egress, is bound over resolv.conf).
  echo sandbox > "$root/etc/hostname"
  printf '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
  : > "$root/etc/resolv.conf"
  # The sandbox user (uid 1000) has a name and a home, as programs written for E2B's sandboxes expect
  # (`whoami`, files owned by `user`).
  grep -q '^[^:]*:[^:]*:1000:' "$root/etc/passwd" || echo 'user:x:1000:1000:Sandbox user:/home/user:/bin/bash' >> "$root/etc/passwd"
  grep -q '^[^:]*:[^:]*:1000:' "$root/etc/group" || echo 'user:x:1000:' >> "$root/etc/group"
  # Mount points must exist in a read-only rootfs.
  mkdir -p "$root/mnt/data" "$root/opt/sandpool/agent" "$root/run/sandpool" "$root/home/user" "$root/etc/sandpool"
}

rootfs_end() {
  echo "$id" > "$root/etc/sandpool/image-id"
  remove_tree "$out"
  mkdir -p "$out"
  mv "$root" "$out/rootfs"
  remove_tree "$tmp"
  ln -sfn "$image_name-$id" "$images_dir/$image_name"
  echo "$image_name image $id built in $(( $(date +%s) - build_started )) s: $(du -sh "$out/rootfs" | cut -f1) at $out"
}
