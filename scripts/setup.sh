#!/usr/bin/env bash
# Sets up a fresh Debian host (root, npm, apt reachable) for Sandpool: Node 24 LTS, system packages,
# npm dependencies, the compiled SDK and CLI (`npx sandpool`), the web dashboard, and the
# code-interpreter image.
# Idempotent and quick when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup: Sandpool manages namespaces, cgroups and mounts; run as root" >&2
  exit 1
fi
. scripts/node-runtime.sh

# runc: the default OCI runtime (works on hybrid cgroup v1 unchanged); conmon: the per-sandbox monitor;
# golang-github-containers-common: the default seccomp profile; mmdebstrap: builds the images;
# runsc: gVisor, the stronger-isolation runtime (a user-space kernel; --platform=ptrace on this host);
# iproute2, util-linux: netns, mount and nsenter used by the runtime and the tests;
# openssl: the self-signed certificate for local HTTPS;
# python3-jupyter-client, python3-ipykernel: the Jupyter baseline the server benchmark compares with;
# chromium: the browser the dashboard's tests drive (playwright-core cannot download one here);
# skopeo, umoci: pull and unpack custom containers' images; docker-registry, busybox-static: the
# loopback registry and the static binary the image tests build their images from; socat: the
# bridge from the session proxy into a custom container's network namespace; nftables: egress rules;
# postgresql: the server the PostgreSQL store's tests start in a directory of their own;
# python3-seccomp: compiles the sandboxes' seccomp profile for sandboxes forked from a zygote.
packages=(runc conmon golang-github-containers-common mmdebstrap runsc iproute2 util-linux ca-certificates
  openssl python3-jupyter-client python3-ipykernel chromium skopeo umoci docker-registry busybox-static socat nftables
  postgresql python3-seccomp)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The tests start their own registries on loopback; the package's service would listen on :5000 on
# every interface.
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry
fi
# Likewise the package's own database cluster: Sandpool's tests run theirs, and a cluster's database
# is the operator's to provide (docs/settings.md, --store).
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet postgresql 2>/dev/null; then
  systemctl disable --now postgresql
fi

stamp=node_modules/.sandpool-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi

# The CLI and the SDK run compiled (the server runs its TypeScript through tsx); incremental.
npx tsc -b
# The dashboard, bundled by Vite into packages/web/dist, which the server serves at /dashboard/.
npm run build --silent -w packages/web

images/python/build.sh
images/node/build.sh
