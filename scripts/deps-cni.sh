#!/usr/bin/env bash
# Installs what the CNI tests need, built from the Go module proxy:
#   cnitool (CNI v1.3.1)                      -> $CNITOOL_DIR (default /usr/local/bin)
#   bridge, host-local, loopback, portmap     -> $NSPROXY_TEST_CNI_DIR
#     (reference plugins v1.10.0, speak CNI 0.4.0 .. 1.1.0;
#      default /usr/local/lib/nsproxy-test-cni)
# The plugins go to a directory of their own so that the host's CNI setup
# (/opt/cni/bin, Debian's /usr/lib/cni used by podman) is left alone; the
# tests read NSPROXY_TEST_CNI_DIR with the same default.
# Idempotent: a tool already built from the wanted version is kept.
set -euo pipefail

CNI_VERSION=v1.3.1
PLUGINS_VERSION=v1.10.0
CNITOOL_DIR=${CNITOOL_DIR:-/usr/local/bin}
PLUGIN_DIR=${NSPROXY_TEST_CNI_DIR:-/usr/local/lib/nsproxy-test-cni}
PLUGINS=(bridge host-local loopback portmap)

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || { echo "deps-cni: Go is required; not found on PATH" >&2; exit 1; }

# Static binaries, built with the local toolchain, outside any module.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GO111MODULE=on

# built BIN MODULE VERSION: BIN exists and was built from MODULE@VERSION.
built() {
  [ -x "$1" ] && go version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" '$1 == "mod" && $2 == m && $3 == v {ok=1} END {exit !ok}'
}

install_tool() { # DIR MODULE VERSION PACKAGE
  local dir=$1 mod=$2 ver=$3 pkg=$4
  local bin="$dir/${pkg##*/}"
  if built "$bin" "$mod" "$ver"; then
    return 0
  fi
  echo "deps-cni: installing $pkg@$ver into $dir"
  mkdir -p "$dir"
  GOBIN="$dir" go install -trimpath "$pkg@$ver"
}

install_tool "$CNITOOL_DIR" github.com/containernetworking/cni "$CNI_VERSION" github.com/containernetworking/cni/cnitool
for p in "${PLUGINS[@]}"; do
  dir=main
  [ "$p" = host-local ] && dir=ipam
  [ "$p" = portmap ] && dir=meta
  install_tool "$PLUGIN_DIR" github.com/containernetworking/plugins "$PLUGINS_VERSION" \
    "github.com/containernetworking/plugins/plugins/$dir/$p"
done

# The tests use cniVersion 1.1.0: make sure every plugin speaks it.
for p in "${PLUGINS[@]}"; do
  if ! CNI_COMMAND=VERSION "$PLUGIN_DIR/$p" </dev/null 2>/dev/null | grep -q '"1.1.0"'; then
    echo "deps-cni: $PLUGIN_DIR/$p does not speak CNI 1.1.0" >&2
    exit 1
  fi
done
