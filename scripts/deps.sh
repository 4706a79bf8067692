#!/usr/bin/env bash
# Installs what building, testing and the demo need, from Debian's packages
# and the Go module proxy. Idempotent: only missing tools are installed.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip       || need+=(iproute2)
have haproxy  || need+=(haproxy)
have strace   || need+=(strace)
have curl     || need+=(curl)
have iperf3   || need+=(iperf3)
have socat    || need+=(socat)
have iptables || need+=(iptables)
have prlimit  || need+=(util-linux)
have podman   || need+=(podman)
have runc     || need+=(runc)
have buildah  || need+=(buildah)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || need+=(busybox-static)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${need[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have go && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
have go || { echo "deps: Go 1.26 is required (https://go.dev/dl); not found on PATH" >&2; exit 1; }
# Module downloads happen here so that later steps do not depend on timing.
go mod download
# CNI test tools (cnitool, reference plugins speaking CNI 1.1.0).
if [ -x "$(dirname "$0")/deps-cni.sh" ]; then
  "$(dirname "$0")/deps-cni.sh"
fi
# containerd (CRI) test tools: containerd, crictl, the firewall plugin.
if [ -x "$(dirname "$0")/deps-containerd.sh" ]; then
  "$(dirname "$0")/deps-containerd.sh"
fi
