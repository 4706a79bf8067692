#!/usr/bin/env bash
# Build the nsproxy container image from locally built static binaries.
# No registry is needed: the Dockerfile is FROM scratch.
#
#   scripts/image.sh [IMAGE]        default IMAGE: localhost/nsproxy:dev
#
# Environment:
#   NSPROXY_BIN      use this nsproxy binary (make image passes bin/nsproxy);
#                    unset: build bin/nsproxy here
#   VERSION          version stamped into the binaries and the image label
#   CONTAINERS_CONF  containers.conf for buildah/podman; unset: a private one
#                    that works on hosts without CAP_SYS_RESOURCE (runc,
#                    cgroupfs, file events logger, CNI network backend)
#   BUILDER          buildah or podman (default: buildah if installed)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:-localhost/nsproxy:dev}
GO=${GO:-go}
export GOTOOLCHAIN=local CGO_ENABLED=0
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
LDFLAGS="-s -w -X main.version=$VERSION"

say() { echo "image.sh: $*" >&2; }
die() { say "$*"; exit 1; }

if [ -z "${BUILDER:-}" ]; then
  if command -v buildah >/dev/null; then BUILDER=buildah
  elif command -v podman >/dev/null; then BUILDER=podman
  else die "neither buildah nor podman is installed (make deps installs podman)"
  fi
fi
command -v "$BUILDER" >/dev/null || die "$BUILDER is not installed"

# The binaries. A FROM scratch image has no libc: both must be static.
nsproxy_bin=${NSPROXY_BIN:-}
if [ -z "$nsproxy_bin" ]; then
  $GO build -trimpath -ldflags "$LDFLAGS" -o bin/nsproxy ./cmd/nsproxy
  nsproxy_bin=bin/nsproxy
fi
[ -x "$nsproxy_bin" ] || die "$nsproxy_bin is not an executable (run make build)"
cni_bin=
if compgen -G 'cmd/nsproxy-cni/*.go' >/dev/null; then
  $GO build -trimpath -ldflags "$LDFLAGS" -o bin/nsproxy-cni ./cmd/nsproxy-cni
  cni_bin=bin/nsproxy-cni
else
  say "warning: cmd/nsproxy-cni does not exist yet: the image has no nsproxy-cni" \
      "(the DaemonSet's install-cni init container needs it)"
fi
for b in "$nsproxy_bin" $cni_bin; do
  if readelf -l "$b" 2>/dev/null | grep -q 'Requesting program interpreter'; then
    die "$b is dynamically linked: build it with CGO_ENABLED=0"
  fi
done

# A small build context: the Dockerfile and the binaries, nothing else.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/bin"
cp Dockerfile "$ctx/"
cp "$nsproxy_bin" "$ctx/bin/nsproxy"
[ -z "$cni_bin" ] || cp "$cni_bin" "$ctx/bin/nsproxy-cni"

if [ -z "${CONTAINERS_CONF:-}" ]; then
  cat >"$ctx/containers.conf" <<'EOF'
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
EOF
  export CONTAINERS_CONF=$ctx/containers.conf
fi

# --timestamp 0: the same binaries give the same image.
case "$BUILDER" in
  buildah) buildah bud --quiet --layers=false --timestamp 0 --build-arg "VERSION=$VERSION" -t "$IMAGE" "$ctx" >/dev/null ;;
  podman) podman build --quiet --layers=false --timestamp 0 --build-arg "VERSION=$VERSION" -t "$IMAGE" "$ctx" >/dev/null ;;
  *) die "BUILDER=$BUILDER: use buildah or podman" ;;
esac

size=$(podman image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo '?')
say "built $IMAGE ($size bytes; nsproxy${cni_bin:+ and nsproxy-cni}; builder $BUILDER)"
echo "$IMAGE"
