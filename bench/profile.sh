#!/usr/bin/env bash
# Profiles a proxy under the short-connection and keep-alive loads of
# bench/run.sh, in the same ns-mode topology:
#   - perf record -g (cpu-clock; hardware counters are often missing in VMs)
#     of the proxy process: where its CPU goes, user and kernel side;
#   - strace -c -f of the proxy: the syscall mix, per request.
# Writes bench/out/profile/<proxy>-<load>-{perf,strace,wrk}.txt and prints
# the top of each. nsproxy is built unstripped for this (bin/nsproxy is -s -w).
#
#   bench/profile.sh [--seconds S] [nsproxy] [haproxy-nbt1]   (default: both)
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=5
TARGETS=()
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) SECS=$2; shift ;;
	nsproxy | haproxy-nbt1 | haproxy-nbt2) TARGETS+=("$1") ;;
	*) die "usage: bench/profile.sh [--seconds S] [nsproxy] [haproxy-nbt1] [haproxy-nbt2]" ;;
	esac
	shift
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(nsproxy haproxy-nbt1)
[ "$(id -u)" -eq 0 ] || die "run as root"
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
have perf || die "perf is missing (Debian: linux-perf)"
have strace || die "strace is missing"

bench_lock
bench_trap
bench_tools
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$OUT/profile" "$LOGS"
bench_build_tool
(cd "$REPO" && go build -o "$OUT/nsproxy-prof" ./cmd/nsproxy) || die "cannot build nsproxy"
NSPROXY=$OUT/nsproxy-prof
P=$OUT/profile
bench_topology
bench_servers
nsproxy_base_cfg >"$P/nsproxy.cfg"
haproxy_cfg 1 >"$P/haproxy-nbt1.cfg"
haproxy_cfg 2 >"$P/haproxy-nbt2.cfg"

# load NAME MODE SECONDS: wrk in the background; its output goes to a file.
load() {
	local args
	if [ "$2" = short ]; then args=(-t1 -c16 -H 'Connection: close'); else args=(-t1 -c10); fi
	bg "wrk-$1-$2" ip netns exec $CLI wrk "${args[@]}" -d"${3}s" -s "$BENCH_DIR/wrk/report.lua" "http://$CLI_IP:8080/1.txt"
}

for t in "${TARGETS[@]}"; do
	start_proxy "$t" "$P/$t.cfg" || die "$t did not start"
	pid=${BG_PID[$t]}
	for mode in short ka; do
		log "$t $mode: perf record for ${SECS}s"
		load "$t" "$mode" $((SECS + 2))
		sleep 1
		perf record -q -e cpu-clock -F 2999 -g -p "$pid" -o "$P/$t-$mode.perf.data" -- sleep "$SECS" >/dev/null 2>&1
		wait "${BG_PID[wrk-$t-$mode]}" 2>/dev/null
		unset "BG_PID[wrk-$t-$mode]"
		cp "$LOGS/wrk-$t-$mode.log" "$P/$t-$mode-wrk-during-perf.log"
		{
			echo "# $t under $mode load: perf cpu-clock samples of the proxy process, self time"
			perf report -i "$P/$t-$mode.perf.data" --no-children --sort sym --stdio -g none --percent-limit 0.7 2>/dev/null | grep -v '^$'
			echo
			echo "# by command/thread and kernel/user"
			perf report -i "$P/$t-$mode.perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
			echo
			echo "# with children (inclusive), top entries"
			perf report -i "$P/$t-$mode.perf.data" --children --sort sym --stdio -g none --percent-limit 4 2>/dev/null | grep -v '^$' | grep -v '^#' | head -40
		} >"$P/$t-$mode-perf.txt"

		log "$t $mode: strace -c during a ${SECS}s wrk run"
		bg "strace-$t-$mode" strace -c -f -p "$pid" -o "$P/$t-$mode-strace.raw"
		sleep 1 # attached to every thread
		if [ "$mode" = short ]; then args=(-t1 -c16 -H 'Connection: close'); else args=(-t1 -c10); fi
		ip netns exec $CLI wrk "${args[@]}" -d"${SECS}s" -s "$BENCH_DIR/wrk/report.lua" "http://$CLI_IP:8080/1.txt" >"$P/$t-$mode-wrk-during-strace.log" 2>&1
		kill -INT "${BG_PID[strace-$t-$mode]}"
		wait "${BG_PID[strace-$t-$mode]}" 2>/dev/null
		unset "BG_PID[strace-$t-$mode]"
		n=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' "$P/$t-$mode-wrk-during-strace.log" | head -1)
		{
			echo "# $t under $mode load: strace -c -f during a ${SECS}s wrk run ($n requests; strace slows the proxy a lot: read the mix per request, not the rate)"
			awk -v n="${n:-0}" '
				$1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ {
					name = $NF; calls = $4
					if (n > 0) printf "%-20s %9d calls  %7.2f per request  %5.1f%% of syscall time\n", name, calls, calls / n, $1
					else printf "%-20s %9d calls  %5.1f%% of syscall time\n", name, calls, $1
				}' "$P/$t-$mode-strace.raw"
		} >"$P/$t-$mode-strace.txt"
	done
	stop "$t"
done
bench_cleanup
for f in "$P"/*-perf.txt "$P"/*-strace.txt; do
	echo "==== $f"
	head -40 "$f"
done
