# Sourced by setup.sh, start.sh and test.sh: puts Node 24 LTS first on PATH. A host whose own Node is
# older gets the official Node 24 binary from the npm registry's `node-linux-<arch>` package (a
# prebuilt release inside a registry package: no compiler, no other download), unpacked once under
# /opt/sandpool. Every later `node`, `npm` and `npx` of the calling script runs on it.
SANDPOOL_NODE_VERSION=24.22.3

sandpool_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(sandpool_node_major)" != 24 ]; then
  case "$(uname -m)" in
    x86_64) sandpool_node_arch=x64 ;;
    aarch64) sandpool_node_arch=arm64 ;;
    *) echo "node-runtime: no Node 24 package for $(uname -m)" >&2; exit 1 ;;
  esac
  sandpool_node_home=/opt/sandpool/node-v$SANDPOOL_NODE_VERSION
  if [ ! -x "$sandpool_node_home/bin/node" ]; then
    echo "node-runtime: installing Node $SANDPOOL_NODE_VERSION into $sandpool_node_home"
    sandpool_node_tmp=$(mktemp -d)
    (cd "$sandpool_node_tmp" && npm pack --silent "node-linux-$sandpool_node_arch@$SANDPOOL_NODE_VERSION" >/dev/null)
    mkdir -p "$sandpool_node_home.partial"
    tar xzf "$sandpool_node_tmp"/node-linux-*.tgz -C "$sandpool_node_home.partial" --strip-components=1
    rm -rf "$sandpool_node_tmp" "$sandpool_node_home"
    mv "$sandpool_node_home.partial" "$sandpool_node_home"
  fi
  export PATH="$sandpool_node_home/bin:$PATH"
  if [ "$(sandpool_node_major)" != 24 ]; then
    echo "node-runtime: $sandpool_node_home/bin/node is not Node 24" >&2
    exit 1
  fi
fi
