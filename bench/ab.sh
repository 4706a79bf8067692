#!/usr/bin/env bash
# A/B of nsproxy binaries on the per-connection loads of bench/run.sh, in
# its ns-mode topology, interleaved: every round runs every binary, the
# order rotating by round, each on short connections (plain, "namespace *",
# send-proxy-v2) and keep-alive. "haproxy" as a binary runs HAProxy
# nbthread 1 as bench/run.sh does (it has no "namespace *"). Prints one line
# per measurement and the medians per binary. Not the method's run:
# nothing goes to bench/results.
#
#   bench/ab.sh [--rounds N] [--seconds S] BIN_A BIN_B [BIN_C...]
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=5 SECS=5
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift ;;
	--seconds) SECS=$2; shift ;;
	*) break ;;
	esac
	shift
done
[ $# -ge 2 ] || die "usage: bench/ab.sh [--rounds N] [--seconds S] BIN_A BIN_B [BIN_C...]"
BINS=("$@")
LABELS=(A B C D E F)
[ "$(id -u)" -eq 0 ] || die "run as root"
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

bench_lock
bench_trap
bench_tools
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bench_build_tool
bench_topology
bench_servers
AB=$OUT/ab
mkdir -p "$AB"
{
	nsproxy_base_cfg
	nsproxy_variant_cfg ns-star
	nsproxy_variant_cfg spv2
} >"$AB/nsproxy.cfg"
haproxy_cfg 1 >"$AB/haproxy.cfg"
RES=$AB/results.txt
: >"$RES"

# one BIN_LABEL LOAD PORT MODE
one() {
	local label=$1 load=$2 port=$3 mode=$4 pid=$5 args c0 c1 f=$AB/wrk.txt
	if [ "$mode" = short ]; then args=(-t1 -c16 -H 'Connection: close'); else args=(-t1 -c10); fi
	c0=$("$TOOL" cpu "$pid")
	ip netns exec $CLI wrk "${args[@]}" -d"${SECS}s" -s "$BENCH_DIR/wrk/report.lua" "http://$CLI_IP:$port/1.txt" >"$f" 2>&1
	c1=$("$TOOL" cpu "$pid")
	local res n d
	res=$(grep '^RESULT ' "$f" | head -1)
	n=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$res")
	d=$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$res")
	if [ -z "$n" ] || [ "$n" -eq 0 ]; then
		log "$label $load: no requests: $(tail -2 "$f" | tr '\n' ' ')"
		return
	fi
	local rate cpu
	rate=$(calc "$n / ($d / 1e6)")
	cpu=$(calc "($c1 - $c0) * 1e6 / $n")
	echo "$label $load $rate $cpu" >>"$RES"
	log "$label $load: $rate /s, proxy cpu $cpu us each"
}

for round in $(seq 1 "$ROUNDS"); do
	n=${#BINS[@]}
	for k in $(seq 0 $((n - 1))); do
		i=$(((k + round - 1) % n))
		label=${LABELS[$i]}
		if [ "${BINS[$i]}" = haproxy ]; then
			name=haproxy-ab-$label
			start_proxy "$name" "$AB/haproxy.cfg" || die "$label did not start"
		else
			name=nsproxy-ab-$label
			NSPROXY=${BINS[$i]}
			start_proxy "$name" "$AB/nsproxy.cfg" || die "$label did not start"
			wait_listen $CLI 8180 && wait_listen $CLI 8181 || die "$label: variants do not listen"
		fi
		pid=${BG_PID[$name]}
		log "round $round: $label (${BINS[$i]}), load $(cut -d' ' -f1 /proc/loadavg)"
		one "$label" short 8080 short "$pid"
		[ "${BINS[$i]}" = haproxy ] || one "$label" ns-star 8180 short "$pid"
		one "$label" spv2 8181 short "$pid"
		one "$label" ka 8080 ka "$pid"
		stop "$name"
	done
done
echo "# medians over $ROUNDS rounds (${SECS}s each): binary load rate/s cpu_us_each"
for i in "${!BINS[@]}"; do echo "# ${LABELS[$i]} = ${BINS[$i]}"; done
for i in "${!BINS[@]}"; do
	label=${LABELS[$i]}
	for load in short ns-star spv2 ka; do
		awk -v l="$label" -v d="$load" '$1 == l && $2 == d { r[++n] = $3; c[n] = $4 }
			function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
				return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
			END { if (n) printf "%s %-8s %9.0f /s %7.1f us  (rates:", l, d, med(r, n), med(c, n); for (i = 1; i <= n; i++) printf " %.0f", r[i]; print ")" }' "$RES"
	done
done
