#!/usr/bin/env bash
# Builds the Kubernetes and etcd binaries that `make e2e-k8s` runs, from the
# Go module proxy (no release downloads, no registry), into a cache that is
# reused when present:
#
#   $NSPROXY_K8S_CACHE (default /var/cache/nsproxy-k8s)/bin-<k8s>-<etcd>/
#     etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
#
# A warm run only checks a stamp file (well under a second). A cold run takes
# ~5 minutes on 2 CPUs (1.9 GB peak RSS, ~3 GB of Go build cache).
#
# `go install k8s.io/kubernetes/cmd/...@v1.34.2` is refused: the module's
# go.mod replaces the k8s.io/* staging modules with ./staging paths that the
# module zip lacks. So the module is copied, its replace block dropped and
# the staging requirements pinned to the matching v0.x.y releases.
# etcd's server module has replace directives too: a two-line wrapper module
# requiring it builds the same server.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.5}
CACHE=${NSPROXY_K8S_CACHE:-/var/cache/nsproxy-k8s}
OUT=$CACHE/bin-$K8S_VERSION-$ETCD_VERSION
BINS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

say() { echo "k8s/build.sh: $*" >&2; }

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod

ok=1
[ -f "$OUT/.complete" ] || ok=
for b in "${BINS[@]}"; do [ -x "$OUT/$b" ] || ok=; done
if [ -n "$ok" ]; then
  echo "$OUT"
  exit 0
fi

start=$(date +%s)
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/out"

# Kubernetes.
say "downloading k8s.io/kubernetes@$K8S_VERSION"
moddir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[ -d "$moddir" ] || { say "go mod download gave no directory"; exit 1; }
src=$work/kubernetes
cp -a "$moddir" "$src"
chmod -R u+w "$src"
rm -rf "$src/go.work" "$src/go.work.sum" "$src/vendor"
staging=v0.${K8S_VERSION#v1.}
# Drop the replace ( ... ) block; pin every staging module.
awk '/^replace \($/ {skip=1; next} skip && /^\)$/ {skip=0; next} !skip' "$src/go.mod" |
  sed -E "s#^(\s*k8s\.io/[a-z0-9-]+) v0\.0\.0\$#\1 $staging#" >"$src/go.mod.new"
mv "$src/go.mod.new" "$src/go.mod"
major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
say "building Kubernetes $K8S_VERSION (cold: ~5 min on 2 CPUs)"
(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$work/out/" \
  ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubelet ./cmd/kubectl)

# etcd.
say "building etcd $ETCD_VERSION"
ew=$work/etcd
mkdir -p "$ew"
cat >"$ew/go.mod" <<EOM
module nsproxy.test/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOM
cat >"$ew/main.go" <<'EOM'
// etcd's server, built from its module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOM
(cd "$ew" && go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags '-s -w' -o "$work/out/etcd" .)

rm -rf "$OUT"
mv "$work/out" "$OUT"
date -u +%FT%TZ >"$OUT/.complete"
say "built into $OUT in $(( $(date +%s) - start ))s"
echo "$OUT"
