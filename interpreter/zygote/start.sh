#!/bin/sh
# Starts a zygote (zygote.py) as host root inside `unshare --mount --propagation slave`: its root is
# a read-only bind of the image, with what it needs from the host bound in under /run/zygote. These
# mounts live and die with the zygote's mount namespace; the host sees none of them.
#   start.sh ROOT IMAGE STATE_DIR AGENT_DIR CODE_DIR CONTROL_DIR CGROUP_PROCS PRELOAD
#     ROOT          an empty directory to build the zygote's root on
#     IMAGE         the interpreter image's rootfs
#     STATE_DIR     the sandboxes' state directories (their data, agent sockets, logs, exit files)
#     AGENT_DIR     the agent's code
#     CODE_DIR      this directory
#     CONTROL_DIR   where the control socket and the seccomp program are
#     CGROUP_PROCS  the zygote's own cgroup.procs files, space-separated
#     PRELOAD       modules to import, comma-separated
set -eu
root=$1 image=$2 state=$3 agent=$4 code=$5 control=$6 cgroups=$7 preload=$8

for procs in $cgroups; do echo $$ > "$procs"; done
mount --bind "$image" "$root"
mount -o remount,bind,ro,nosuid,nodev "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs "$root/sys"
mkdir -p "$root/sys/fs/cgroup" "$root/run/zygote/newroot" "$root/run/zygote/image" "$root/run/zygote/state" \
  "$root/run/zygote/agent" "$root/run/zygote/code" "$root/run/zygote/control"
mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
mount --bind "$image" "$root/run/zygote/image"
# A slave of the host's shared state directory: each sandbox's data tmpfs, mounted on the host
# before the fork, is here too.
mount --rbind "$state" "$root/run/zygote/state"
mount --bind -o ro "$agent" "$root/run/zygote/agent"
mount --bind -o ro "$code" "$root/run/zygote/code"
mount --bind "$control" "$root/run/zygote/control"
# pivot_root, not chroot: a chrooted process may not create user namespaces. The image has no
# umount; zygote.py detaches the old root itself before it imports anything.
mkdir "$root/run/zygote/old-root"
cd "$root"
pivot_root . run/zygote/old-root
exec /usr/bin/env -i PATH=/usr/bin:/bin HOME=/run/zygote MPLBACKEND=Agg \
  /usr/bin/python3 -I /run/zygote/code/zygote.py /run/zygote/control/zygote.sock \
  /run/zygote/control/seccomp.bpf "$preload"
