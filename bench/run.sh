#!/usr/bin/env bash
# nsproxy benchmark against HAProxy 2.6 and direct kernel paths (issue 6).
# The method is ../../shared/bench-method.md, summarised in bench/README.md.
#
#   bench/run.sh            full run: 3 interleaved rounds, < 15 min; writes
#                           bench/out/{raw,results}.tsv, chart.png and copies
#                           the results to bench/results/ (README, TSV, chart)
#   bench/run.sh --smoke    every step once with tiny durations (< 1 min), no
#                           chart; ends with "bench-smoke: N passed, M failed"
#
# Options: --rounds N --iperf-seconds S --wrk-seconds S --idle N
#          --namespaces N --no-micro --no-chart --no-results
# Needs root (namespaces). Installs iperf3, wrk, nginx-light, haproxy and
# gnuplot from Debian when missing. Removes every namespace, veth and
# process it made, also when interrupted.
set -uo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMOKE=0 ROUNDS=3 T_IPERF=10 T_WRK=5 IDLE_N=5000 NS_N=1000 MICRO=1 CHART=1 RESULTS=1
BENCHTIME=1s
IDLE_WAIT=(0.5 1) # idle test: seconds before the fresh sample, and after the opener is done
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) SMOKE=1 ROUNDS=1 T_IPERF=1 T_WRK=1 IDLE_N=200 NS_N=20 CHART=0 RESULTS=0 BENCHTIME=100x IDLE_WAIT=(0.2 0.3) ;;
	--rounds) ROUNDS=$2; shift ;;
	--iperf-seconds) T_IPERF=$2; shift ;;
	--wrk-seconds) T_WRK=$2; shift ;;
	--idle) IDLE_N=$2; shift ;;
	--namespaces) NS_N=$2; shift ;;
	--no-micro) MICRO=0 ;;
	--no-chart) CHART=0 ;;
	--no-results) RESULTS=0 ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
NAME=bench
[ $SMOKE -eq 1 ] && NAME=bench-smoke
PASSED=0 FAILED=0
FAILS=() SKIPS=() NOTES=()
# A fatal error still ends with the closing line that CI reads.
die() {
	log "FATAL: $*"
	echo "$NAME: failed: $*"
	echo "$NAME: $PASSED passed, $((FAILED + 1)) failed"
	exit 1
}
pass() { PASSED=$((PASSED + 1)); }
fail() { FAILED=$((FAILED + 1)); FAILS+=("$1"); log "FAIL $1"; }
skip() { SKIPS+=("$1"); log "skip $1"; }
# A shortened run is not the method's run: keep it out of bench/results/.
if [ $SMOKE -eq 0 ] && { [ "$ROUNDS" -lt 3 ] || [ "$T_IPERF" -lt 10 ] || [ "$T_WRK" -lt 5 ] || [ "$IDLE_N" -lt 5000 ] || [ "$NS_N" -lt 1000 ]; }; then
	RESULTS=0
fi

[ "$(id -u)" -eq 0 ] || die "run as root: the benchmark creates network namespaces"
[ -x "$NSPROXY" ] || die "no nsproxy binary at $NSPROXY (make build)"
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
have go || die "Go is needed to build bench/cmd/benchtool"
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)


bench_lock
bench_trap
if [ $CHART -eq 1 ]; then bench_tools chart; else bench_tools; fi
# 5,000 idle connections need 10,000+ fds in the proxy and the echo server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$OUT" "$LOGS"
rm -f "$OUT"/raw.tsv "$OUT"/results.tsv "$OUT"/chart*.dat "$OUT"/chart.png "$OUT"/README.md "$LOGS"/*.log
bench_build_tool
# A private copy: a rebuild of bin/nsproxy during the run changes nothing here.
cp "$NSPROXY" "$OUT/nsproxy" || die "cannot copy $NSPROXY"
NSPROXY=$OUT/nsproxy
RAW=$OUT/raw.tsv
: >"$RAW"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; } # round config metric value

log "$NAME: rounds=$ROUNDS iperf=${T_IPERF}s wrk=${T_WRK}s idle=$IDLE_N namespaces=$NS_N nofile=$(ulimit -n)"
bench_topology
bench_servers
pass # tools, topology and servers

# ---- configurations ---------------------------------------------------------
CFG=$OUT/cfg
mkdir -p "$CFG"
# Event loops (issue 14): "nsproxy" runs 1 loop beside haproxy-nbt1 and
# "nsproxy-nbt2" 2 loops beside haproxy-nbt2, once the binary knows the
# nbthread keyword; before that "nsproxy" is the engine's default alone.
NSPROXY_LOOPS="" # "nbthread" of the nsproxy configuration: "" = the default
printf 'global\n    nbthread 2\n' >"$CFG/nbthread-probe.cfg"
if err=$("$NSPROXY" validate -f "$CFG/nbthread-probe.cfg" 2>&1); then
	NSPROXY_LOOPS=1
	nsproxy_base_cfg 2 >"$CFG/nsproxy-nbt2.cfg"
	NOTES+=("nsproxy runs with nbthread 1 (one event loop), nsproxy-nbt2 with nbthread 2")
else
	skip "nsproxy-nbt2 (2 event loops): not supported yet (validate refuses nbthread: $(echo "$err" | head -1 | sed 's/^[^ ]*: //'))"
	NOTES+=("nsproxy runs with its engine's default threading (no nbthread keyword yet, so no 2-loop run)")
fi
nsproxy_base_cfg $NSPROXY_LOOPS >"$CFG/nsproxy.cfg"
VARIANTS=()
for v in ns-star spv2 chain; do
	{ nsproxy_base_cfg $NSPROXY_LOOPS; nsproxy_variant_cfg $v; } >"$CFG/nsproxy-$v.cfg"
	if err=$("$NSPROXY" validate -f "$CFG/nsproxy-$v.cfg" 2>&1); then
		VARIANTS+=("$v")
		nsproxy_variant_cfg $v >>"$CFG/nsproxy.cfg"
	else
		skip "nsproxy $v: not supported yet (validate refuses: $(echo "$err" | head -1))"
	fi
done
"$NSPROXY" validate -f "$CFG/nsproxy.cfg" >/dev/null || die "nsproxy refuses the base configuration"
[ -z "$NSPROXY_LOOPS" ] || "$NSPROXY" validate -f "$CFG/nsproxy-nbt2.cfg" >/dev/null || die "nsproxy refuses $CFG/nsproxy-nbt2.cfg"
for n in 1 2; do
	haproxy_cfg $n >"$CFG/haproxy-nbt$n.cfg"
	haproxy -c -q -f "$CFG/haproxy-nbt$n.cfg" || die "haproxy refuses $CFG/haproxy-nbt$n.cfg"
done
[[ $(haproxy -vv 2>/dev/null) == *' +NS '* ]] || die "this haproxy is built without USE_NS (namespace keyword)"

variant_label() {
	case $1 in ns-star) echo "nsproxy ns*" ;; spv2) echo "nsproxy send-proxy-v2" ;; chain) echo "nsproxy chain" ;; esac
}
variant_port() { case $1 in ns-star) echo 8180 ;; spv2) echo 8181 ;; chain) echo 8182 ;; esac; }
declare -A VARIANT_BROKEN=()

# ---- measurements -------------------------------------------------------------
# PROXY_PID is the proxy being measured ("" for direct).
PROXY_PID=""
cpu_now() { if [ -n "$PROXY_PID" ]; then "$TOOL" cpu "$PROXY_PID"; else echo 0; fi; }

# run_iperf ROUND CONFIG STREAMS
run_iperf() {
	local round=$1 cfg=$2 p=$3 ns=$CLI host=$CLI_IP port=8000 f out c0 c1
	[ "$cfg" = direct@ns ] && ns=$SRV host=127.0.0.1 port=5201
	f=$OUT/iperf-$cfg-$p.json
	c0=$(cpu_now)
	timeout $((T_IPERF + 30)) ip netns exec $ns iperf3 -c $host -p $port -t "$T_IPERF" -P "$p" -J >"$f" 2>&1
	c1=$(cpu_now)
	if ! out=$("$TOOL" iperf "$f" 2>&1); then
		fail "round $round $cfg iperf3 -P $p: $out"
		return
	fi
	local bytes=${out% *} bps=${out#* }
	record "$round" "$cfg" "tput$p" "$(calc "$bps / 1e9")"
	[ -n "$PROXY_PID" ] && record "$round" "$cfg" "cpu_gb$p" "$(calc "($c1 - $c0) / ($bytes / 1e9)")"
	log "  $cfg iperf3 -P $p: $(calc "$bps / 1e9") Gbit/s, proxy cpu $(calc "$c1 - $c0") s"
	pass
}

# run_wrk ROUND CONFIG MODE URL [NS]: MODE short (Connection: close) or ka.
run_wrk() {
	local round=$1 cfg=$2 mode=$3 url=$4 ns=${5:-$CLI} f c0 c1 res args
	f=$OUT/wrk-$cfg-$mode.txt
	f=${f//[ *]/_}
	if [ "$mode" = short ]; then
		args=(-t1 -c16 -H 'Connection: close')
	else
		args=(-t1 -c10)
	fi
	c0=$(cpu_now)
	timeout $((T_WRK + 30)) ip netns exec "$ns" wrk "${args[@]}" -d"${T_WRK}s" -s "$BENCH_DIR/wrk/report.lua" "$url" >"$f" 2>&1
	c1=$(cpu_now)
	res=$(grep '^RESULT ' "$f" | head -1)
	local requests duration errs p50 p99
	requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$res")
	duration=$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$res")
	errs=$(tr ' ' '\n' <<<"$res" | awk -F= '/^err_(connect|write|status|timeout)=/ { s += $2 } END { print s + 0 }')
	if [ -z "$requests" ] || [ "$requests" -eq 0 ] || [ -z "$duration" ]; then
		fail "round $round $cfg wrk $mode: no requests ($(tail -2 "$f" | tr '\n' ' '))"
		return 1
	fi
	if [ "$errs" -gt $((requests / 100)) ]; then
		fail "round $round $cfg wrk $mode: $errs errors in $requests requests ($res)"
		return 1
	fi
	local rate
	rate=$(calc "$requests / ($duration / 1e6)")
	if [ "$mode" = short ]; then
		record "$round" "$cfg" short_cps "$rate"
		[ -n "$PROXY_PID" ] && record "$round" "$cfg" short_cpu_us "$(calc "($c1 - $c0) * 1e6 / $requests")"
	else
		p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$res")
		p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$res")
		record "$round" "$cfg" ka_rps "$rate"
		record "$round" "$cfg" ka_p50_us "$p50"
		record "$round" "$cfg" ka_p99_us "$p99"
		[ -n "$PROXY_PID" ] && record "$round" "$cfg" ka_cpu_us "$(calc "($c1 - $c0) * 1e6 / $requests")"
	fi
	log "  $cfg wrk $mode: $rate req/s, proxy cpu $(calc "$c1 - $c0") s${p99:+, p50/p99 ${p50}/${p99} µs}"
	pass
}

# slot ROUND CONFIG: one configuration's turn in a round.
slot() {
	local round=$1 cfg=$2 url=http://$CLI_IP:8080/1.txt
	log "round $round: $cfg"
	local pname=$cfg-r$round # also the log's name: $LOGS/$pname.log
	case $cfg in
	direct@ns) PROXY_PID="" url=http://127.0.0.1:80/1.txt ;;
	*) start_proxy "$pname" "$CFG/$cfg.cfg" || { fail "round $round: $cfg did not start"; return; } ;;
	esac
	[ "$cfg" != direct@ns ] && PROXY_PID=${BG_PID[$pname]}
	local ns=$CLI
	[ "$cfg" = direct@ns ] && ns=$SRV
	# The smoke run keeps under a minute: bulk once through each nsproxy
	# and through the reference HAProxy, not through every configuration.
	if [ $SMOKE -eq 0 ] || [[ $cfg == nsproxy* ]] || [ "$cfg" = haproxy-nbt1 ]; then
		run_iperf "$round" "$cfg" 1
		run_iperf "$round" "$cfg" 4
	fi
	run_wrk "$round" "$cfg" short "$url" $ns
	run_wrk "$round" "$cfg" ka "$url" $ns
	local v port
	if [ "$cfg" = nsproxy ]; then
		for v in "${VARIANTS[@]}"; do
			[ -n "${VARIANT_BROKEN[$v]:-}" ] && continue
			port=$(variant_port $v)
			local perr
			if ! perr=$(ip netns exec $CLI "$TOOL" probe -addr $CLI_IP:$port -http /1.txt -timeout 3s 2>&1); then
				# validate accepts it, so the binary claims to support it.
				VARIANT_BROKEN[$v]=1
				fail "$(variant_label $v): validate accepts the configuration but a request through it fails: $perr (see $LOGS/$pname.log)"
				continue
			fi
			run_wrk "$round" "$(variant_label $v)" short "http://$CLI_IP:$port/1.txt"
		done
	fi
	if [ "$cfg" = haproxy-nbt1 ]; then
		run_wrk "$round" "haproxy-nbt1 send-proxy-v2" short "http://$CLI_IP:8181/1.txt"
		run_wrk "$round" "haproxy-nbt1 chain" short "http://$CLI_IP:8182/1.txt"
	fi
	PROXY_PID=""
	[ "$cfg" != direct@ns ] && stop "$pname"
}

# idle ROUND CONFIG: fresh proxy, IDLE_N connections with a 1-byte echo each.
idle() {
	local round=$1 cfg=$2 pname=$2-idle-r$1
	start_proxy "$pname" "$CFG/$cfg.cfg" || { fail "round $round: $cfg did not start (idle)"; return; }
	local pid=${BG_PID[$pname]} m0 m1 ready=$OUT/idle-ready res i
	sleep "${IDLE_WAIT[0]}"
	m0=$("$TOOL" mem "$pid")
	rm -f "$ready"
	bg idle ip netns exec $CLI "$TOOL" idle -addr $CLI_IP:8007 -n "$IDLE_N" -ready "$ready"
	for i in $(seq 1 600); do
		[ -f "$ready" ] && break
		alive idle || break
		sleep 0.1
	done
	if [ ! -f "$ready" ]; then
		fail "round $round $cfg idle: the opener did not finish ($(tail -2 "$LOGS/idle.log"))"
		stop idle
		stop "$pname"
		return
	fi
	sleep "${IDLE_WAIT[1]}"
	m1=$("$TOOL" mem "$pid")
	res=$(cat "$ready")
	stop idle
	stop "$pname"
	local opened=${res#opened=}
	opened=${opened%% *}
	if [ "$opened" -eq 0 ]; then
		fail "round $round $cfg idle: no connection opened ($res)"
		return
	fi
	read -r r0 p0 f0 _ <<<"$m0"
	read -r r1 p1 f1 _ <<<"$m1"
	record "$round" "$cfg" idle_rss_kib "$(calc "($r1 - $r0) / $opened")"
	[ "$p0" -ge 0 ] && record "$round" "$cfg" idle_pss_kib "$(calc "($p1 - $p0) / $opened")"
	record "$round" "$cfg" idle_fds "$(calc "($f1 - $f0) / $opened")"
	record "$round" "$cfg" idle_opened "$opened"
	local note=""
	if [ "$opened" -lt "$IDLE_N" ]; then
		note=" WARNING: only $opened of $IDLE_N opened ($res)"
		NOTES+=("round $round: $cfg held only $opened of $IDLE_N idle connections ($((f1 - f0)) fds for them; fd limit $(ulimit -n)): its idle figures are per opened connection")
	fi
	log "  $cfg idle: $res; RSS $r0→$r1 KiB, fds $f0→$f1$note"
	pass
}

# ---- rounds -------------------------------------------------------------------
CONFIGS=(nsproxy haproxy-nbt1 haproxy-nbt2 direct@ns)
[ -n "$NSPROXY_LOOPS" ] && CONFIGS=(nsproxy haproxy-nbt1 nsproxy-nbt2 haproxy-nbt2 direct@ns)
for round in $(seq 1 "$ROUNDS"); do
	k=$(((round - 1) % ${#CONFIGS[@]}))
	order=("${CONFIGS[@]:k}" "${CONFIGS[@]:0:k}")
	for cfg in "${order[@]}"; do slot "$round" "$cfg"; done
	for cfg in "${order[@]}"; do [ "$cfg" != direct@ns ] && idle "$round" "$cfg"; done
	if [ "$round" -eq 1 ]; then
		# Side figure, once: the cost of the per-connection info log line.
		log "round 1: nsproxy with --log-level info (short connections)"
		if NSPROXY_LOG_LEVEL=info start_proxy nsproxy-loginfo "$CFG/nsproxy.cfg"; then
			PROXY_PID=${BG_PID[nsproxy-loginfo]}
			run_wrk 1 "nsproxy log=info" short "http://$CLI_IP:8080/1.txt"
			PROXY_PID=""
			stop nsproxy-loginfo
		else
			fail "nsproxy --log-level info did not start"
		fi
	fi
done

# ---- many namespaces ------------------------------------------------------------
many_namespaces() {
	log "applying $NS_N namespaces × 1 listener"
	local i name cf=$CFG/nsproxy-many.cfg t0 t1 n=0 ok=0
	seq -f "netns add $NS_PREFIX%04g" 1 "$NS_N" | ip -batch - || { fail "could not create $NS_N namespaces"; return; }
	seq -f "netns exec $NS_PREFIX%04g ip link set lo up" 1 "$NS_N" | ip -batch - >/dev/null ||
		{ fail "could not bring lo up in $NS_N namespaces"; return; }
	{
		printf 'global\n    maxconn 20000\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n'
		for i in $(seq -f %04g 1 "$NS_N"); do
			printf 'frontend f%s\n    bind 127.0.0.1:8000 namespace %s%s\n    default_backend b%s\nbackend b%s\n    server s1 127.0.0.1:8001 namespace %s%s\n' \
				"$i" "$NS_PREFIX" "$i" "$i" "$i" "$NS_PREFIX" "$i"
		done
	} >"$cf"
	"$NSPROXY" validate -f "$cf" >/dev/null || { fail "nsproxy refuses the $NS_N-namespace configuration"; return; }
	t0=$(date +%s%N)
	bg nsproxy-many "$NSPROXY" run -f "$cf" --log-level info --drain-timeout 1s
	local pid=${BG_PID[nsproxy-many]} deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		n=$(grep -c 'msg=listening' "$LOGS/nsproxy-many.log" 2>/dev/null || true)
		[ "${n:-0}" -ge "$NS_N" ] && { ok=1; break; }
		alive nsproxy-many || break
		sleep 0.01
	done
	t1=$(date +%s%N)
	if [ $ok -eq 0 ]; then
		fail "only ${n:-0} of $NS_N listeners up after 60 s ($(grep -v msg=listening "$LOGS/nsproxy-many.log" | tail -2))"
	else
		local m rss threads first last
		m=$("$TOOL" mem "$pid")
		read -r rss _ _ threads <<<"$m"
		first=$(ip netns exec ${NS_PREFIX}0001 ss -Hltn 'sport = :8000' | wc -l)
		last=$(ip netns exec "$NS_PREFIX$(printf %04d "$NS_N")" ss -Hltn 'sport = :8000' | wc -l)
		if [ "$first" -ne 1 ] || [ "$last" -ne 1 ]; then
			fail "the log says $NS_N listeners are up, but ss disagrees"
		else
			record 1 nsproxy ns_apply_s "$(calc "($t1 - $t0) / 1e9")"
			record 1 nsproxy ns_rss_mib "$(calc "$rss / 1024")"
			record 1 nsproxy ns_threads "$threads"
			record 1 nsproxy ns_count "$NS_N"
			log "  $NS_N listeners up in $(calc "($t1 - $t0) / 1e9") s; RSS $(calc "$rss / 1024") MiB, $threads threads"
			pass
		fi
	fi
	stop nsproxy-many
	many_ns_list | sed 's/^/netns del /' | ip -force -batch - 2>/dev/null
}
many_namespaces

# ---- Go micro-benchmarks ----------------------------------------------------------
micro() {
	log "Go micro-benchmarks (-benchtime $BENCHTIME)"
	local f=$OUT/micro.txt
	if ! (cd "$REPO" && go test -run '^$' -bench . -benchtime "$BENCHTIME" ./sidecar/netns/ ./sidecar/proxy/) >"$f" 2>&1; then
		fail "go micro-benchmarks: $(grep -E 'FAIL|panic|error' "$f" | head -3 | tr '\n' ' ')"
		return
	fi
	local n
	n=$(awk '/^Benchmark/ && / ns\/op/ {
		name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name); gsub(/[^A-Za-z0-9=]/, "_", name)
		for (i = 3; i < NF; i++) {
			if ($i !~ /^[0-9.e+-]+$/) continue
			# IdleSessions measures once whatever b.N is: its ns/op means nothing.
			if ($(i+1) == "ns/op" && name != "IdleSessions") printf "1\tgo-bench\tmicro_%s\t%s\n", name, $i
			else if ($(i+1) == "ns/op") continue
			else printf "1\tgo-bench\tmicro_%s|%s\t%s\n", name, $(i+1), $i
		}
		c++ } END { exit c == 0 }' "$f" | tee -a "$RAW" | wc -l)
	[ "$n" -gt 0 ] || { fail "go micro-benchmarks printed no result"; return; }
	grep -E '^Benchmark' "$f" | sed 's/^/  /' >&2
	pass
}
[ $MICRO -eq 1 ] && micro

# ---- report ---------------------------------------------------------------------
META=$OUT/meta.txt
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
	echo "nsproxy: $("$NSPROXY" version 2>/dev/null) (git $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown))"
	echo "haproxy: $(haproxy -v 2>/dev/null | head -1 | cut -d' ' -f1-3)"
	echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
	echo "iperf3: $(iperf3 --version 2>/dev/null | head -1 | cut -d' ' -f1-2)"
	echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
	echo "go: $(go version | cut -d' ' -f3)"
	echo "load average at start / end: $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise)"
	for n in "${NOTES[@]}"; do echo "note: $n"; done
	echo "run: $ROUNDS rounds (order rotates), iperf3 -t $T_IPERF, wrk -d${T_WRK}s, $IDLE_N idle connections, $NS_N namespaces, micro-benchmarks -benchtime $BENCHTIME"
} >"$META"
echo
report_args=(-raw "$RAW" -out "$OUT" -meta "$META" -readme "$OUT/README.md")
[ $CHART -eq 1 ] && report_args+=(-chart "$OUT/chart.png")
if ! "$TOOL" report "${report_args[@]}"; then
	fail "report"
fi
if [ $CHART -eq 1 ]; then
	if have gnuplot && [ -f "$OUT/chart.gp" ] && gnuplot "$OUT/chart.gp" 2>"$LOGS/gnuplot.log" && [ -s "$OUT/chart.png" ]; then
		log "chart: $OUT/chart.png"
	else
		log "WARN: no chart ($(head -2 "$LOGS/gnuplot.log" 2>/dev/null | tr '\n' ' '))"
	fi
fi
if [ $RESULTS -eq 1 ] && [ $FAILED -eq 0 ]; then
	mkdir -p "$BENCH_DIR/results"
	cp "$OUT/results.tsv" "$OUT/README.md" "$BENCH_DIR/results/"
	[ -s "$OUT/chart.png" ] && cp "$OUT/chart.png" "$BENCH_DIR/results/"
	log "results copied to bench/results/"
fi
bench_cleanup
for s in "${SKIPS[@]}"; do echo "$NAME: skipped: $s"; done
for s in "${FAILS[@]}"; do echo "$NAME: failed: $s"; done
echo "$NAME: finished in $(($(date +%s) - START)) s"
echo "$NAME: $PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]
