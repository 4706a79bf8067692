# shellcheck shell=bash
# Shared by bench/run.sh and bench/profile.sh: tools, topology, servers,
# proxies and cleanup. Everything this creates carries the "pb" prefix and is
# removed by bench_cleanup (installed as the EXIT/INT/TERM trap).
#
#   netns pbcli                     host netns                        netns pbsrv
#  client 10.201.1.2 ──veth── 10.201.1.1  proxy  10.201.2.1 ──veth── 10.201.2.2 servers
#
# ns mode: the proxy runs in the host netns with its listeners inside pbcli
# and its server sockets inside pbsrv, so no veth is crossed.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
OUT=${BENCH_OUT:-$BENCH_DIR/out}
NSPROXY=${NSPROXY_BIN:-$REPO/bin/nsproxy}
TOOL=$OUT/benchtool
LOGS=$OUT/logs

CLI=pbcli SRV=pbsrv
CLI_IP=10.201.1.2 CLI_GW=10.201.1.1 SRV_IP=10.201.2.2 SRV_GW=10.201.2.1
CLI_LINK=pbcli0 SRV_LINK=pbsrv0 # host ends; the namespace ends end in 1
NS_PREFIX=pbn                    # the many-namespaces test: pbn0001...

declare -A BG_PID=()            # name → pid of every background process we started
LOCK_FILE=/run/lock/nsproxy-bench.lock

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
calc() { awk "BEGIN { printf \"%.6g\", $* }"; }
have() { command -v "$1" >/dev/null 2>&1; }

# bench_lock waits for any other benchmark run on this machine to finish:
# two runs would fight over the same namespace and veth names.
bench_lock() {
	mkdir -p "$(dirname "$LOCK_FILE")"
	exec {BENCH_LOCK_FD}>"$LOCK_FILE"
	if ! flock -n "$BENCH_LOCK_FD"; then
		log "another benchmark run holds $LOCK_FILE; waiting (up to 20 min)"
		flock -w 1200 "$BENCH_LOCK_FD" || die "could not get $LOCK_FILE"
	fi
}

# bench_tools installs what is missing from Debian's packages. $1: "chart"
# also wants gnuplot (optional: the chart is skipped without it).
bench_tools() {
	local need=() pkg
	have ip || need+=(iproute2)
	have iperf3 || need+=(iperf3)
	have wrk || need+=(wrk)
	have haproxy || need+=(haproxy)
	have nginx || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
	have flock || need+=(util-linux)
	if [ "${1:-}" = chart ] && ! have gnuplot; then need+=(gnuplot-nox); fi
	[ ${#need[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing ${need[*]}: run as root"
	export DEBIAN_FRONTEND=noninteractive
	log "installing ${need[*]}"
	local updated=0
	for pkg in "${need[@]}"; do
		if ! apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; then
			if [ $updated -eq 0 ]; then
				apt-get update -qq >/dev/null 2>&1 || true
				updated=1
			fi
			if ! apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; then
				# nginx-light is gone from newer Debian releases.
				if [ "$pkg" = nginx-light ] && apt-get install -y -qq --no-install-recommends nginx >/dev/null 2>&1; then
					continue
				fi
				if [ "$pkg" = gnuplot-nox ]; then
					log "WARN: gnuplot could not be installed; the chart will be skipped"
					continue
				fi
				die "could not install $pkg"
			fi
		fi
	done
}

NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)

bench_build_tool() {
	mkdir -p "$OUT" "$LOGS"
	(cd "$REPO" && go build -o "$TOOL" ./bench/cmd/benchtool) || die "cannot build bench/cmd/benchtool"
}

# bg NAME CMD...: start CMD in the background, output to $LOGS/NAME.log.
bg() {
	local name=$1
	shift
	"$@" >"$LOGS/$name.log" 2>&1 &
	BG_PID[$name]=$!
}

# stop NAME: SIGTERM, then SIGKILL after 3 s; only the process we started.
stop() {
	local name=$1 pid=${BG_PID[$1]:-} i
	[ -n "$pid" ] || return 0
	unset "BG_PID[$name]"
	kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	for i in $(seq 1 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

alive() { local pid=${BG_PID[$1]:-}; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

many_ns_list() { ip netns list 2>/dev/null | awk -v p="^$NS_PREFIX[0-9]+$" '$1 ~ p { print $1 }'; }

bench_cleanup() {
	local name
	for name in "${!BG_PID[@]}"; do stop "$name"; done
	ip netns del "$CLI" 2>/dev/null
	ip netns del "$SRV" 2>/dev/null
	ip link del "$CLI_LINK" 2>/dev/null
	ip link del "$SRV_LINK" 2>/dev/null
	many_ns_list | sed 's/^/netns del /' | ip -force -batch - 2>/dev/null
	return 0
}

# bench_trap installs the cleanup; an interrupted run still removes everything.
bench_trap() {
	trap 'bench_cleanup' EXIT
	trap 'log "interrupted: cleaning up"; bench_cleanup; trap - EXIT; exit 130' INT
	trap 'log "terminated: cleaning up"; bench_cleanup; trap - EXIT; exit 143' TERM
}

bench_topology() {
	if ip netns list | grep -qE "^($CLI|$SRV)( |$)" || [ -n "$(many_ns_list)" ]; then
		log "removing leftovers of an earlier run"
		bench_cleanup
	fi
	if ip route show | grep -qE '^10\.201\.[12]\.'; then
		die "the host already routes 10.201.1.0/24 or 10.201.2.0/24; refusing to touch it"
	fi
	local ns link ip gw
	for ns in $CLI $SRV; do
		ip netns add "$ns" || die "ip netns add $ns"
		ip -n "$ns" link set lo up
		# Per-namespace only: these vanish with the namespace.
		ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1 >/dev/null ||
			die "sysctl in $ns"
	done
	for ns in $CLI $SRV; do
		if [ "$ns" = $CLI ]; then link=$CLI_LINK ip=$CLI_IP gw=$CLI_GW; else link=$SRV_LINK ip=$SRV_IP gw=$SRV_GW; fi
		ip link add "$link" type veth peer name "${link%0}1" netns "$ns" || die "veth $link"
		ip addr add "$gw/24" dev "$link"
		ip link set "$link" up
		ip -n "$ns" addr add "$ip/24" dev "${link%0}1"
		ip -n "$ns" link set "${link%0}1" up
		ip -n "$ns" route add default via "$gw"
		# Forwarding on the two host ends only (host mode); nothing global.
		sysctl -qw "net.ipv4.conf.$link.forwarding=1" >/dev/null
	done
}

# bench_servers: iperf3 (5201), nginx (80, and 81 with PROXY protocol) and a
# 1-byte echo (9007) in pbsrv; a second nginx in pbcli at 10.201.1.2:80 for
# the "namespace *" variant (its server is in the client's namespace).
bench_servers() {
	local d
	mkdir -p "$OUT/www"
	printf 'hello from nginx\n' >"$OUT/www/1.txt" # 17 bytes
	for d in srv cli; do
		local nd=$OUT/nginx-$d listen
		mkdir -p "$nd/tmp"
		if [ $d = srv ]; then
			listen="listen 80 backlog=4096; listen 81 proxy_protocol backlog=4096;"
		else
			listen="listen $CLI_IP:80 backlog=4096;"
		fi
		cat >"$nd/nginx.conf" <<-EOF
			user root;
			worker_processes 1;
			pid $nd/nginx.pid;
			error_log $nd/error.log warn;
			worker_rlimit_nofile 20000;
			events { worker_connections 8192; }
			http {
			    access_log off;
			    default_type text/plain;
			    client_body_temp_path $nd/tmp/body;
			    proxy_temp_path $nd/tmp/proxy;
			    fastcgi_temp_path $nd/tmp/fastcgi;
			    uwsgi_temp_path $nd/tmp/uwsgi;
			    scgi_temp_path $nd/tmp/scgi;
			    keepalive_requests 1000000;
			    keepalive_timeout 65s;
			    server { $listen root $OUT/www; }
			}
		EOF
	done
	bg iperf3 ip netns exec $SRV iperf3 -s -p 5201
	bg nginx-srv ip netns exec $SRV "$NGINX" -p "$OUT/nginx-srv" -c "$OUT/nginx-srv/nginx.conf" -g 'daemon off;'
	bg nginx-cli ip netns exec $CLI "$NGINX" -p "$OUT/nginx-cli" -c "$OUT/nginx-cli/nginx.conf" -g 'daemon off;'
	bg echo ip netns exec $SRV "$TOOL" echo -l 0.0.0.0:9007
	ip netns exec $SRV "$TOOL" probe -addr 127.0.0.1:80 -http /1.txt -timeout 10s || die "nginx in $SRV did not start: $(tail -3 "$LOGS/nginx-srv.log")"
	ip netns exec $CLI "$TOOL" probe -addr $CLI_IP:80 -http /1.txt -timeout 10s || die "nginx in $CLI did not start"
	ip netns exec $SRV "$TOOL" probe -addr 127.0.0.1:9007 -echo -timeout 10s || die "echo server did not start"
	wait_listen $SRV 5201 || die "iperf3 server did not start"
}

# wait_listen NS PORT: until something listens on PORT inside NS (5 s).
wait_listen() {
	local i
	for i in $(seq 1 250); do
		[ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ] && return 0
		sleep 0.02
	done
	return 1
}

# Routes: 8000→iperf3 5201, 8080→nginx 80, 8007→echo 9007; the variants
# 8180 ("namespace *": nginx in pbcli), 8181 (send-proxy-v2 to nginx 81) and
# 8182→8183 (send-proxy-v2 into an accept-proxy listener, then nginx 80).
# nsproxy_base_cfg [N]: N sets "nbthread N" (event loops, issue 14); without
# it the engine's default runs.
nsproxy_base_cfg() {
	cat <<-EOF
		global
		    maxconn 20000
		${1:+    nbthread $1}
		defaults
		    mode tcp
		    timeout connect 5s
		    timeout client 1h
		    timeout server 1h
	EOF
	local p
	for p in 8000:5201 8080:80 8007:9007; do
		cat <<-EOF
			frontend f${p%:*}
			    bind $CLI_IP:${p%:*} namespace $CLI
			    default_backend b${p%:*}
			backend b${p%:*}
			    server s1 $SRV_IP:${p#*:} namespace $SRV
		EOF
	done
}

nsproxy_variant_cfg() {
	case $1 in
	ns-star) cat <<-EOF ;;
		frontend f8180
		    bind $CLI_IP:8180 namespace $CLI
		    default_backend b8180
		backend b8180
		    server s1 *:80 namespace *
	EOF
	spv2) cat <<-EOF ;;
		frontend f8181
		    bind $CLI_IP:8181 namespace $CLI
		    default_backend b8181
		backend b8181
		    server s1 $SRV_IP:81 namespace $SRV send-proxy-v2
	EOF
	chain) cat <<-EOF ;;
		# the NETNS TLV of hop 1 names pbcli: it must be on the allowlist
		namespace_list
		    namespace $CLI
		    namespace $SRV
		frontend f8182
		    bind $CLI_IP:8182 namespace $CLI
		    default_backend b8182
		backend b8182
		    server s1 $SRV_IP:8183 namespace $SRV send-proxy-v2
		frontend f8183
		    bind $SRV_IP:8183 namespace $SRV accept-proxy
		    default_backend b8183
		backend b8183
		    server s1 $SRV_IP:80 namespace $SRV
	EOF
	esac
}

haproxy_cfg() { # $1: nbthread
	cat <<-EOF
		global
		    nbthread $1
		    maxconn 7000
		defaults
		    mode tcp
		    timeout connect 5s
		    timeout client 1h
		    timeout server 1h
		    option splice-request
		    option splice-response
	EOF
	local p
	for p in 8000:5201 8080:80 8007:9007; do
		cat <<-EOF
			listen l${p%:*}
			    bind $CLI_IP:${p%:*} namespace $CLI
			    server s1 $SRV_IP:${p#*:} namespace $SRV
		EOF
	done
	cat <<-EOF
		listen l8181
		    bind $CLI_IP:8181 namespace $CLI
		    server s1 $SRV_IP:81 namespace $SRV send-proxy-v2
		listen l8182
		    bind $CLI_IP:8182 namespace $CLI
		    server s1 $SRV_IP:8183 namespace $SRV send-proxy-v2
		listen l8183
		    bind $SRV_IP:8183 namespace $SRV accept-proxy
		    server s1 $SRV_IP:80 namespace $SRV
	EOF
}

# start_proxy NAME CONFIG [ARGS...]: NAME is nsproxy* or haproxy*; waits
# until the three main routes listen.
start_proxy() {
	local name=$1 cfg=$2
	shift 2
	case $name in
	nsproxy*) bg "$name" "$NSPROXY" run -f "$cfg" --log-level "${NSPROXY_LOG_LEVEL:-warn}" --drain-timeout 1s "$@" ;;
	haproxy*) bg "$name" haproxy -db -f "$cfg" "$@" ;;
	esac
	local p
	for p in 8000 8080 8007; do
		if ! wait_listen $CLI $p; then
			log "$name: port $p does not listen: $(tail -5 "$LOGS/$name.log")"
			stop "$name"
			return 1
		fi
	done
	alive "$name"
}
