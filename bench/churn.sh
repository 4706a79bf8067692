#!/usr/bin/env bash
# Container churn benchmark (issue 13): N containers (namespace, bridge
# veth, host-local address, one TCP hostPort each) added and deleted with
# cnitool, P ADDs at a time, through bridge + host-local + nsproxy-cni.
# Prints the churn table (bench/cmd/churn) and writes it to bench/out/churn.md.
#
#   bench/churn.sh            5,000 containers, 16 parallel, 40 interleaved
#                             ADDs without a chained plugin, with nsproxy-cni and
#                             with a Go plugin that does nothing; kill -9 restart
#   bench/churn.sh --smoke    100 containers, 16 parallel, 5 ADD samples (< 1 min)
#
# Options: --n N --parallel P --add-samples S --no-restart
# Needs root, cnitool and the reference plugins (scripts/deps-cni.sh).
# Everything it creates is named pbc* (namespaces pbcc00000..., pbca00000...,
# bridges pbcn0br..., pbcbarebr, pbccmpbr, pbcnullbr) and removed at the end, also on
# Ctrl-C or SIGTERM; leftovers of a killed run are removed at the next start.
set -uo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=5000 PARALLEL=16 SAMPLES=40 RESTART=true NAME=churn
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) N=100 SAMPLES=5 NAME=churn-smoke ;;
	--n) N=$2; shift ;;
	--parallel) PARALLEL=$2; shift ;;
	--add-samples) SAMPLES=$2; shift ;;
	--no-restart) RESTART=false ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done

[ "$(id -u)" -eq 0 ] || die "run as root: the benchmark creates network namespaces"
[ -x "$NSPROXY" ] || die "no nsproxy binary at $NSPROXY (make build)"
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
have go || die "Go is needed to build bench/cmd/churn"
"$REPO/scripts/deps-cni.sh" >/dev/null || die "scripts/deps-cni.sh failed"

churn_leftovers() {
	ip netns list 2>/dev/null | awk '$1 ~ /^pbc[ca][0-9]{5}$/ { print "netns del " $1 }' | ip -force -batch - 2>/dev/null
	ip -o link show type bridge 2>/dev/null | awk -F': ' '$2 ~ /^pbc(n[0-9]+|bare|cmp|null)br$/ { print $2 }' |
		while read -r b; do ip link del "$b"; done
	return 0
}
bench_lock
churn_leftovers
trap 'churn_leftovers' EXIT
# 5,000 listeners in the benchmark, 15,000+ sockets in the daemon.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$OUT" "$LOGS"
(cd "$REPO" && go build -o "$OUT/churn" ./bench/cmd/churn) || die "cannot build bench/cmd/churn"
# Private copies: a rebuild of bin/ during the run changes nothing here.
mkdir -p "$OUT/churn-bin"
cp "$NSPROXY" "$OUT/churn-bin/nsproxy" && cp "$(dirname "$NSPROXY")/nsproxy-cni" "$OUT/churn-bin/nsproxy-cni" ||
	die "cannot copy the binaries (make build)"
# The floor of a chained Go plugin, built as nsproxy-cni is (Makefile).
(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$OUT/churn-bin/nullcni" ./bench/cmd/nullcni) ||
	die "cannot build bench/cmd/nullcni"
log "churn: $N containers, $PARALLEL parallel (load $(cut -d' ' -f1-3 /proc/loadavg))"
# The Go program cleans up on SIGINT/SIGTERM itself: let it finish.
trap '' INT TERM
"$OUT/churn" -n "$N" -p "$PARALLEL" -add-samples "$SAMPLES" -restart="$RESTART" \
	-nsproxy "$OUT/churn-bin/nsproxy" -null-plugin "$OUT/churn-bin/nullcni" -out "$OUT/churn.md" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM
wait $pid
rc=$?
# wait returns early when a trapped signal arrives: wait for the cleanup.
while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done
if [ $rc -eq 0 ]; then echo "$NAME: passed"; else echo "$NAME: failed"; fi
exit $rc
