#!/usr/bin/env bash
# Installs what the containerd (CRI) e2e test needs:
#   containerd 1.6 + runc                    Debian's packages (the daemon is not
#                                            started: the test runs its own)
#   firewall CNI plugin                      Debian's containernetworking-plugins
#                                            (/usr/lib/cni/firewall; the shipped
#                                            containerd conflist chains it)
#   busybox-static                           the test's pause and app images
#   crictl (cri-tools v1.37.0)               -> $NSPROXY_TEST_CRI_DIR
#                                            (default /usr/local/lib/nsproxy-test-cri)
# Idempotent: a crictl already built from the wanted version is kept, and apt
# runs only for a missing package. Debian's containerd.service is disabled
# and stopped right after a first install: the test starts a private
# containerd, and a host one would only take memory.
set -euo pipefail

CRICTL_VERSION=v1.37.0
CRI_DIR=${NSPROXY_TEST_CRI_DIR:-/usr/local/lib/nsproxy-test-cri}

need=()
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/firewall ] || need+=(containernetworking-plugins)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps-containerd: missing ${need[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "deps-containerd: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: do not start services while installing (Debian's
  # containerd.service would otherwise start on the host's default paths).
  prc=/usr/sbin/policy-rc.d
  restore_prc=
  if [ ! -e "$prc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 0755 "$prc" && restore_prc=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$restore_prc" ] || rm -f "$prc"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now containerd.service >/dev/null 2>&1 || true
  fi
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || { echo "deps-containerd: Go is required; not found on PATH" >&2; exit 1; }

crictl=$CRI_DIR/crictl
if ! { [ -x "$crictl" ] && go version -m "$crictl" 2>/dev/null |
  awk -v v="$CRICTL_VERSION" '$1 == "mod" && $2 == "sigs.k8s.io/cri-tools" && $3 == v {ok=1} END {exit !ok}'; }; then
  echo "deps-containerd: installing crictl@$CRICTL_VERSION into $CRI_DIR"
  mkdir -p "$CRI_DIR"
  CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GO111MODULE=on GOBIN="$CRI_DIR" \
    go install -trimpath "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
fi
