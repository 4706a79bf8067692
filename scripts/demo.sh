#!/usr/bin/env bash
# make demo: two namespaces, nsproxy between them, one request across.
# Everything it creates is removed on exit, also on failure or Ctrl-C.
# DEMO_KEEP=1 keeps the daemon running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }

BIN=${NSPROXY_BIN:-bin/nsproxy}
CFG=manifests/examples/demo.cfg
LOG=$(mktemp /tmp/nsproxy-demo.XXXXXX.log)
RESP=$(mktemp /tmp/nsproxy-demo.XXXXXX.sh)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del demo-client 2>/dev/null || true
  ip netns del demo-server 2>/dev/null || true
  rm -f "$LOG" "$RESP"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "validate $CFG"
"$BIN" validate -f "$CFG"

step "create namespaces demo-client and demo-server (no link between them)"
for ns in demo-client demo-server; do
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done

step "start a web server on 127.0.0.1:80 inside demo-server"
cat >"$RESP" <<'SH'
#!/bin/sh
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n'
echo "hello from demo-server (netns inode $(stat -L -c %i /proc/self/ns/net))"
SH
chmod +x "$RESP"
# Health checks connect and close at once: socat would complain of broken pipes.
ip netns exec demo-server socat TCP-LISTEN:80,reuseaddr,fork EXEC:"$RESP" 2>/dev/null &
pids+=($!)

step "start nsproxy on $CFG"
"$BIN" run -f "$CFG" >"$LOG" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  grep -q 'msg=listening' "$LOG" && break
  sleep 0.1
done
grep -q 'msg=listening' "$LOG" || { cat "$LOG"; echo "demo: nsproxy did not start listening" >&2; exit 1; }

step "from inside demo-client: curl http://127.0.0.1:8080/"
out=$(ip netns exec demo-client curl -sS --max-time 5 http://127.0.0.1:8080/)
echo "$out"
echo "(demo-server's namespace inode is $(stat -L -c %i /var/run/netns/demo-server))"
echo "$out" | grep -q "hello from demo-server" || { echo "demo: unexpected answer" >&2; exit 1; }

step "the same address from the host namespace is not nsproxy's listener"
if curl -sS --max-time 2 http://127.0.0.1:8080/ 2>/dev/null | grep -q demo-server; then
  echo "demo: the host reached the demo server: unexpected" >&2; exit 1
fi
echo "host: nothing of nsproxy listens on the host's 127.0.0.1:8080 (the listener lives in demo-client)"

sleep 0.2
step "nsproxy log"
cat "$LOG"

if [ "${DEMO_KEEP:-}" = 1 ]; then
  step "running; try: ip netns exec demo-client curl http://127.0.0.1:8080/  (Ctrl-C to stop)"
  wait "${pids[1]}"
fi
step "stop (SIGTERM drains) and clean up"
kill -TERM "${pids[1]}"
wait "${pids[1]}" || true
echo "demo: OK"
