#!/usr/bin/env bash
# make e2e-k8s: the DaemonSet of manifests/kubernetes/ on a private
# single-node Kubernetes, checked by the Go tests in e2e/k8s (build tag
# e2ek8s).
#
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubelet
#   (built by scripts/k8s/build.sh, cached), on a private containerd (CRI);
#   the node's CNI network is a bridge; the images of `make image` (two
#   tags: the rolling update goes from one to the other) and two busybox
#   images (pause, app) are imported with ctr; the DaemonSet is applied with
#   only its host paths remapped to private directories.
#
# Everything it changes on the host is undone on exit, failure included,
# and checked: the propagation of /, the sysctls kubelet rewrites, the
# kubepods cgroups, iptables rules, namespaces in /var/run/netns, links,
# mounts, /var/log/containers links and processes are compared before/after.
#
# Ports (all on the host): 19801-19807 for the cluster, 19810-19819 for the
# pods' hostPorts (the tests), 9101 for the DaemonSet's metrics.
#
# Environment: NSPROXY_K8S_CACHE (build cache, default /var/cache/nsproxy-k8s),
# NSPROXY_K8S_KEEP=1 (leave the cluster running and print how to reach it;
# the cleanup then runs when you press Enter), NSPROXY_K8S_RUN (go test -run).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local

say() { echo "e2e-k8s: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"

t0=$(date +%s)
KBIN=$(scripts/k8s/build.sh)
t_build=$(date +%s)

for tool in containerd containerd-shim-runc-v2 ctr runc buildah podman openssl iptables-save busybox; do
  command -v "$tool" >/dev/null || die "$tool missing: run scripts/deps.sh"
done
CNI_REF=${NSPROXY_TEST_CNI_DIR:-/usr/local/lib/nsproxy-test-cni}
for p in bridge host-local loopback; do
  [ -x "$CNI_REF/$p" ] || die "$CNI_REF/$p missing: run scripts/deps.sh (deps-cni.sh)"
done

# Ports.
P_ETCD=19801 P_ETCD_PEER=19802 P_API=19803 P_KUBELET=19804 P_KUBELET_HZ=19805 P_CM=19806 P_SCHED=19807
for p in $P_ETCD $P_ETCD_PEER $P_API $P_KUBELET $P_KUBELET_HZ $P_CM $P_SCHED 9101 $(seq 19810 19819); do
  if ss -Htln "sport = :$p" | grep -q .; then die "port $p is in use"; fi
done

DIR=$(mktemp -d /tmp/nspk8s.XXXXXX)
trap 'rm -rf "$DIR"' EXIT # until cleanup (below) takes over
ID=${DIR##*.}
NODE=nspk8s-node
BRIDGE=nspk8s0
SUBNET=10.237.$(( $$ % 250 )).0/24
NETNAME=nspk8s
IMG_A=localhost/nsproxy:dev
IMG_B=localhost/nsproxy:e2e-k8s-b
IMG_PAUSE=localhost/nsproxy-k8s/pause:1
IMG_APP=localhost/nsproxy-k8s/app:1
export KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=$KBIN/kubectl
PIDS=()

# ---------------------------------------------------------------- host state
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv4.conf.all.route_localnet)
# ours: lines about this cluster (other tests may change the host at the
# same time; only our part is compared).
ours_re="KUBE-|CNI-|$BRIDGE|${SUBNET%0/24}|nsproxy"
snapshot() {
  echo "## propagation /"; findmnt -no PROPAGATION /
  echo "## sysctls"; for s in "${SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s" 2>/dev/null)"; done
  echo "## cgroups"; ls -d /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/kubepods* 2>/dev/null || true
  echo "## iptables"; { iptables-save; ip6tables-save; } 2>/dev/null | grep -v '^#' |
    sed -E 's/^(:[^ ]+ [^ ]+) .*/\1/' | grep -E "$ours_re" | sort || true
  echo "## netns"; ls /var/run/netns 2>/dev/null | grep '^cni-' || true
  echo "## links"; { ip -o link show dev "$BRIDGE"; ip -o link show master "$BRIDGE"; } 2>/dev/null |
    awk -F': ' '{print $2}' | sed 's/@.*//' | sort || true
  echo "## mounts"; awk '{print $5}' /proc/self/mountinfo | grep -E "^($DIR|/var/run/netns/cni-|/run/netns/cni-|/run/containerd|/var/lib/kubelet)" | sort || true
  echo "## /var/log/containers"; ls /var/log/containers 2>/dev/null || true
  echo "## processes"; ps -eo pid=,args= | grep -F -e "$DIR" -e "$KBIN" | grep -v -e grep -e "ps -eo" || true
}
snapshot >"$DIR/host.before"
prop_before=$(findmnt -no PROPAGATION /)
declare -A sysctl_before
for s in "${SYSCTLS[@]}"; do sysctl_before[$s]=$(sysctl -n "$s" 2>/dev/null || echo); done
cg_before=$(ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods 2>/dev/null || true)
ipt_before=$DIR/ipt.before ip6t_before=$DIR/ip6t.before
iptables-save | grep -v '^#' >"$ipt_before"; ip6tables-save 2>/dev/null | grep -v '^#' >"$ip6t_before" || true
netns_before=$(ls /var/run/netns 2>/dev/null || true)
shimrun_before=; [ -e /run/containerd ] && shimrun_before=1
shims_before=$(ls -d /run/containerd/s/* 2>/dev/null || true)
logs_before=$(ls /var/log/containers 2>/dev/null || true)
varlogc_before=; [ -e /var/log/containers ] && varlogc_before=1
varlogp_before=; [ -e /var/log/pods ] && varlogp_before=1
cniresults_before=; [ -e /var/lib/cni ] && cniresults_before=1

# iptables_undo TOOL BEFORE: deletes the rules and chains that are new
# since BEFORE and ours.
iptables_undo() {
  local tool=$1 before=$2 table= line chains=()
  local now; now=$($tool-save 2>/dev/null | grep -v '^#') || return 0
  while IFS= read -r line; do
    case $line in
      \**) table=${line#\*} ;;
      -A\ *)
        grep -qxF -- "$line" "$before" && continue
        [[ $line =~ $ours_re ]] || continue
        eval "$tool -t $table -D ${line#-A }" 2>/dev/null || true ;;
      :*)
        local c=${line%% *}; c=${c#:}
        grep -q "^:$c " "$before" && continue
        [[ $c =~ ^(KUBE-|CNI-) ]] && chains+=("$table $c") ;;
    esac
  done <<<"$now"
  local tc
  for tc in "${chains[@]}"; do
    # shellcheck disable=SC2086
    set -- $tc
    $tool -t "$1" -F "$2" 2>/dev/null || true
    $tool -t "$1" -X "$2" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "${NSPROXY_K8S_KEEP:-}" ]; then
    say "cluster kept: export KUBECONFIG=$KUBECONFIG; kubectl=$KUBECTL. Press Enter to clean up."
    read -r _ </dev/tty || true
  fi
  say "cleaning up (exit $rc)"
  # Pods first, through the CRI (CNI DEL, netns and veths go), then the
  # processes: kubelet first, so that it does not restart them.
  [ -n "${KUBELET_PID:-}" ] && kill "$KUBELET_PID" 2>/dev/null && wait "$KUBELET_PID" 2>/dev/null
  if [ -S "$DIR/containerd.sock" ]; then
    local crictl=${NSPROXY_TEST_CRI_DIR:-/usr/local/lib/nsproxy-test-cri}/crictl
    [ -x "$crictl" ] || crictl=$(command -v crictl || true)
    if [ -n "$crictl" ]; then
      timeout 60 "$crictl" -r "unix://$DIR/containerd.sock" rmp -fa >/dev/null 2>&1
    fi
  fi
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  # Shims and container processes outlive containerd.
  for _ in 1 2 3; do
    for p in $(ps -eo pid=,args= | grep -F "$DIR" | grep -v -e grep -e "ps -eo" | awk '{print $1}'); do
      [ "$p" != $$ ] && kill -9 "$p" 2>/dev/null
    done
    for p in $(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
      /sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null); do
      [ -z "$cg_before" ] && kill -9 "$p" 2>/dev/null
    done
    sleep 0.3
  done
  # Mounts: ours under DIR, and namespaces containerd made (deepest first).
  awk '{print $5}' /proc/self/mountinfo | grep -E "^$DIR/" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  local n
  for n in $(ls /var/run/netns 2>/dev/null | grep '^cni-'); do
    grep -qxF "$n" <<<"$netns_before" && continue
    umount "/var/run/netns/$n" 2>/dev/null || umount -l "/var/run/netns/$n" 2>/dev/null
    rm -f "/var/run/netns/$n"
  done
  ip link del "$BRIDGE" 2>/dev/null
  rm -f /var/lib/cni/results/$NETNAME-* 2>/dev/null
  [ -n "$cniresults_before" ] || rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null
  # containerd 1.6 puts its shims' sockets in /run/containerd/s whatever its
  # state dir (other tests' containerds too): remove those nobody listens on
  # that were not there before.
  local s
  for s in /run/containerd/s/*; do
    [ -S "$s" ] || continue
    grep -qxF "$s" <<<"$shims_before" && continue
    grep -qF " $s" /proc/net/unix || rm -f "$s"
  done
  if [ -z "$shimrun_before" ]; then rmdir /run/containerd/s /run/containerd 2>/dev/null; fi
  # kubelet's links in /var/log/containers point into our pod log dir.
  for n in $(ls /var/log/containers 2>/dev/null); do
    grep -qxF "$n" <<<"$logs_before" && continue
    case $(readlink "/var/log/containers/$n") in "$DIR"/*) rm -f "/var/log/containers/$n" ;; esac
  done
  [ -n "$varlogc_before" ] || rmdir /var/log/containers 2>/dev/null
  [ -n "$varlogp_before" ] || rmdir /var/log/pods 2>/dev/null
  # kubepods cgroups, deepest first, in every hierarchy.
  if [ -z "$cg_before" ]; then
    for _ in 1 2 3 4 5; do
      find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -depth -type d 2>/dev/null | xargs -r rmdir 2>/dev/null
      ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods >/dev/null 2>&1 || break
      sleep 0.5
    done
  fi
  for s in "${SYSCTLS[@]}"; do
    [ -n "${sysctl_before[$s]}" ] && [ "$(sysctl -n "$s" 2>/dev/null)" != "${sysctl_before[$s]}" ] &&
      sysctl -qw "$s=${sysctl_before[$s]}"
  done
  iptables_undo iptables "$ipt_before"
  iptables_undo ip6tables "$ip6t_before"
  [ "$prop_before" = private ] && mount --make-private /
  snapshot >"$DIR/host.after"
  if ! diff -u "$DIR/host.before" "$DIR/host.after" >"$DIR/host.diff"; then
    say "the host is NOT as it was:"; cat "$DIR/host.diff" >&2
    [ $rc -eq 0 ] && rc=1
  else
    say "host restored (propagation of /, sysctls, cgroups, iptables, netns, links, mounts, processes as before)"
  fi
  if [ $rc -ne 0 ]; then
    for f in "$DIR"/logs/*.log; do
      [ -f "$f" ] && { echo "---- tail $(basename "$f")"; tail -n 30 "$f"; } >&2
    done
  fi
  mkdir -p "$ROOT/bin"
  rm -rf "$ROOT/bin/e2e-k8s-logs"
  cp -r "$DIR/logs" "$ROOT/bin/e2e-k8s-logs" 2>/dev/null # kept for a look after the run
  rm -rf "$DIR"
  say "total $(( $(date +%s) - t0 ))s (build/cache $(( t_build - t0 ))s)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$DIR/logs" "$DIR/net.d" "$DIR/cni-bin" "$DIR/run-nsproxy" "$DIR/state" "$DIR/ipam" "$DIR/kubelet" "$DIR/pod-logs"

# ---------------------------------------------------------------- images
# The rolling update goes from IMG_A to IMG_B: the same code, another
# version stamp. IMG_B first, so that bin/ ends with the default version.
ver=$(git describe --always --dirty 2>/dev/null || echo dev)
make --no-print-directory image IMAGE=$IMG_B VERSION="$ver-k8s-b" >/dev/null
make --no-print-directory image IMAGE=$IMG_A >/dev/null
NSPROXY=$ROOT/bin/nsproxy
mkimg() { # REF ENTRYPOINT-JSON: busybox and its applet links, FROM scratch
  local c mnt a
  c=$(buildah from scratch)
  mnt=$(buildah mount "$c")
  mkdir -p "$mnt/bin" "$mnt/www" "$mnt/tmp" "$mnt/etc" "$mnt/proc" "$mnt/sys" "$mnt/dev"
  chmod 1777 "$mnt/tmp"
  cp /bin/busybox "$mnt/bin/busybox"
  for a in sh sleep httpd nc echo cat mkdir; do ln -s busybox "$mnt/bin/$a"; done
  buildah umount "$c" >/dev/null
  buildah config --entrypoint "$2" --cmd '' "$c" >/dev/null
  buildah commit --quiet --timestamp 0 "$c" "$1" >/dev/null
  buildah rm "$c" >/dev/null
}
mkimg "$IMG_PAUSE" '["/bin/sleep", "2147483647"]'
mkimg "$IMG_APP" '["/bin/sh", "-c"]'
for img in "$IMG_A" "$IMG_B" "$IMG_PAUSE" "$IMG_APP"; do
  podman save -q --format docker-archive -o "$DIR/img.tar" "$img" >/dev/null
  mv "$DIR/img.tar" "$DIR/$(echo "$img" | tr '/:' '__').tar"
done

# ---------------------------------------------------------------- PKI
(
  cd "$DIR"
  o() { openssl "$@" 2>/dev/null; }
  o req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=nspk8s-ca
  hostip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1%s,DNS:kubernetes,DNS:kubernetes.default,DNS:localhost\n' \
    "${hostip:+,IP:$hostip}" >san.ext
  o req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver
  o x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 -extfile san.ext
  o req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin"
  o x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2
  o genrsa -out sa.key 2048
  o rsa -in sa.key -pubout -out sa.pub
)
"$KUBECTL" config set-cluster nspk8s --server="https://127.0.0.1:$P_API" --certificate-authority="$DIR/ca.crt" --embed-certs >/dev/null
"$KUBECTL" config set-credentials admin --client-certificate="$DIR/admin.crt" --client-key="$DIR/admin.key" --embed-certs >/dev/null
"$KUBECTL" config set-context nspk8s --cluster=nspk8s --user=admin >/dev/null
"$KUBECTL" config use-context nspk8s >/dev/null

start() { # NAME CMD...
  local n=$1; shift
  "$@" >"$DIR/logs/$n.log" 2>&1 &
  PIDS+=($!)
  local v=${n//-/_}
  eval "${v^^}_PID=$!"
}
wait_for() { # WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "$what not ready after ${secs}s (logs: $DIR/logs)"
    sleep 0.5
  done
}

# ---------------------------------------------------------------- containerd
# The node's network: a bridge, no portmap (so that a hostPort is served by
# nsproxy or by nothing). install-cni chains nsproxy-cni into this file.
cp "$CNI_REF/bridge" "$CNI_REF/host-local" "$CNI_REF/loopback" "$DIR/cni-bin/"
cat >"$DIR/net.d/10-$NETNAME.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$NETNAME",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET"}]], "dataDir": "$DIR/ipam"}}
  ]
}
EOF
cat >"$DIR/containerd.toml" <<EOF
version = 2
root = "$DIR/containerd-root"
state = "$DIR/containerd-state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$DIR/containerd.sock"
[ttrpc]
  address = "$DIR/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$IMG_PAUSE"
  restrict_oom_score_adj = true
  # The DaemonSet mounts /var/run/netns: the pods' namespaces must be there.
  netns_mounts_under_state_dir = false
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$DIR/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$DIR/cni-bin"
    conf_dir = "$DIR/net.d"
    max_conf_num = 1
EOF
start containerd containerd --config "$DIR/containerd.toml"
wait_for containerd 60 ctr --address "$DIR/containerd.sock" version
for f in "$DIR"/*.tar; do
  ctr --address "$DIR/containerd.sock" -n k8s.io images import --snapshotter overlayfs "$f" >/dev/null
done
t_images=$(date +%s)

# ---------------------------------------------------------------- control plane
[ "$prop_before" = shared ] || mount --make-shared /
start etcd "$KBIN/etcd" --name nspk8s --data-dir "$DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$P_ETCD" --advertise-client-urls "http://127.0.0.1:$P_ETCD" \
  --listen-peer-urls "http://127.0.0.1:$P_ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$P_ETCD_PEER" \
  --initial-cluster "nspk8s=http://127.0.0.1:$P_ETCD_PEER" --log-level warn
start kube-apiserver "$KBIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$P_ETCD" \
  --bind-address 127.0.0.1 --secure-port "$P_API" --cert-dir "$DIR/apiserver-certs" \
  --tls-cert-file "$DIR/apiserver.crt" --tls-private-key-file "$DIR/apiserver.key" --client-ca-file "$DIR/ca.crt" \
  --service-account-key-file "$DIR/sa.pub" --service-account-signing-key-file "$DIR/sa.key" \
  --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.96.0.0/24 \
  --authorization-mode Node,RBAC --allow-privileged=true \
  --kubelet-client-certificate "$DIR/admin.crt" --kubelet-client-key "$DIR/admin.key" \
  --kubelet-preferred-address-types InternalIP --profiling=false
wait_for kube-apiserver 90 "$KUBECTL" get --raw /readyz
start kube-controller-manager "$KBIN/kube-controller-manager" --kubeconfig "$KUBECONFIG" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port "$P_CM" --service-account-private-key-file "$DIR/sa.key" \
  --root-ca-file "$DIR/ca.crt" --use-service-account-credentials=false --profiling=false
start kube-scheduler "$KBIN/kube-scheduler" --kubeconfig "$KUBECONFIG" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port "$P_SCHED" --profiling=false

cat >"$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$DIR/containerd.sock
imageServiceEndpoint: unix://$DIR/containerd.sock
oomScoreAdj: 0
protectKernelDefaults: false
port: $P_KUBELET
healthzPort: $P_KUBELET_HZ
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
podLogsDir: $DIR/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $DIR/ca.crt}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
start kubelet "$KBIN/kubelet" --config "$DIR/kubelet.yaml" --kubeconfig "$KUBECONFIG" \
  --root-dir "$DIR/kubelet" --hostname-override "$NODE" --v=1
wait_for "node $NODE" 120 "$KUBECTL" wait --for=condition=Ready "node/$NODE" --timeout=2s
wait_for "the default service account" 60 "$KUBECTL" get serviceaccount default
t_cluster=$(date +%s)
say "cluster ready in $(( t_cluster - t_images ))s (images $(( t_images - t_build ))s)"

# ---------------------------------------------------------------- the DaemonSet
# Only host paths change: the CNI dirs, the control socket's dir and the
# state dir are private; the plugin, run by containerd on the host, is told
# the remapped socket and record dir through install-cni's --plugin-config.
sed -e "s#path: /etc/cni/net.d#path: $DIR/net.d#" \
    -e "s#path: /opt/cni/bin#path: $DIR/cni-bin#" \
    -e "s#path: /run/nsproxy\$#path: $DIR/run-nsproxy#" \
    -e "s#path: /var/lib/nsproxy\$#path: $DIR/state#" \
    -e "s#'{\"nameTemplate\"#'{\"socket\": \"$DIR/run-nsproxy/nsproxy.sock\", \"attachmentDir\": \"$DIR/state/attachments\", \"nameTemplate\"#" \
    manifests/kubernetes/daemonset.yaml >"$DIR/daemonset.yaml"
grep -q "path: $DIR/run-nsproxy" "$DIR/daemonset.yaml" || die "daemonset.yaml: the /run/nsproxy hostPath was not found"
grep -q "path: $DIR/state" "$DIR/daemonset.yaml" || die "daemonset.yaml: the /var/lib/nsproxy hostPath was not found"
grep -q "\"socket\": \"$DIR/run-nsproxy" "$DIR/daemonset.yaml" || die "daemonset.yaml: install-cni's --plugin-config '{\"nameTemplate\": ...}' was not found"
cat >"$DIR/env" <<EOF
NSPROXY_K8S_DIR=$DIR
KUBECONFIG=$KUBECONFIG
NSPROXY_K8S_KUBECTL=$KUBECTL
NSPROXY_K8S_MANIFEST=$DIR/daemonset.yaml
NSPROXY_K8S_SOCKET=$DIR/run-nsproxy/nsproxy.sock
NSPROXY_K8S_STATE=$DIR/state
NSPROXY_K8S_NETD=$DIR/net.d
NSPROXY_K8S_CNIBIN=$DIR/cni-bin
NSPROXY_K8S_IMAGE_A=$IMG_A
NSPROXY_K8S_IMAGE_B=$IMG_B
NSPROXY_K8S_APP_IMAGE=$IMG_APP
NSPROXY_K8S_VERSION_B=$ver-k8s-b
NSPROXY_BIN=$NSPROXY
EOF
say "running e2e/k8s (env: $DIR/env)"
set -a; . "$DIR/env"; set +a
set +e
go test -tags e2ek8s -count=1 -timeout 20m -v ${NSPROXY_K8S_RUN:+-run "$NSPROXY_K8S_RUN"} ./e2e/k8s/ 2>&1 |
  tee "$DIR/logs/go-test.log" | grep -E '^(=== RUN|\s*--- |PASS|FAIL|ok|panic|\s+\S+_test.go:)'
rc=${PIPESTATUS[0]}
set -e
t_tests=$(date +%s)
say "tests $(( t_tests - t_cluster ))s"
exit $rc
