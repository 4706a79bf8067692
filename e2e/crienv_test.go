//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testwait"
)

// Images the private containerd gets from an OCI archive (no registry).
const (
	criPauseImage = "localhost/nsproxy-e2e/pause:1"
	criAppImage   = "localhost/nsproxy-e2e/app:1"
)

// criEnv is a private containerd (CRI plugin) driven with crictl: its own
// config, root, state, sockets, CNI conf and bin dirs, bridge, subnet,
// IPAM dir and cgroup parent, all under one temp dir or named after this
// test process. The conflist is manifests/cni/containerd-nsproxy.conflist
// with private paths. Everything is removed at cleanup, also on failure.
type criEnv struct {
	t         *testing.T
	dir       string
	sock      string // containerd's grpc socket
	crictl    string
	ctr       string
	netName   string // the CNI network's name (also in /var/lib/cni/results)
	bridge    string
	subnet    string // a /24
	recordDir string // nsproxy-cni's attachmentDir
	ipamDir   string // host-local's dataDir
	cgroup    string // the pods' cgroup parent, e.g. /nspe123cri
	logDir    string

	cmd  *exec.Cmd
	done chan struct{}
	log  testlog.Buffer // containerd's stdout and stderr

	ipt      []string        // iptables-save at start
	shimRun  bool            // /run/containerd existed before (shims put sockets there)
	chains   map[string]bool // iptables chains the chain's plugins made for our pods
	rulesRun int             // most rules about our pods seen while pods ran
	netnses  map[string]bool // every pod netns path seen
	sandboxs []string        // every sandbox ID made
}

// criShimDir is where containerd 1.6's shims put their sockets, whatever
// containerd's own state dir.
const criShimDir = "/run/containerd"

func (e *criEnv) logs() string { return e.log.String() }

// criTool finds a test tool: $NSPROXY_TEST_CRI_DIR (scripts/deps-containerd.sh
// puts crictl there), then PATH.
func criTool(name string) (string, error) {
	dir := os.Getenv("NSPROXY_TEST_CRI_DIR")
	if dir == "" {
		dir = "/usr/local/lib/nsproxy-test-cri"
	}
	if p := filepath.Join(dir, name); pathExists(p) {
		return p, nil
	}
	return exec.LookPath(name)
}

func pathExists(p string) bool { _, err := os.Stat(p); return err == nil }

// newCRIEnv starts containerd with nsproxy-cni chained as in the shipped
// conflist, talking to the daemon at socket and writing records to
// recordDir. It skips when a tool is missing (scripts/deps.sh installs
// them all) and only then.
func newCRIEnv(t *testing.T, socket, recordDir string) *criEnv {
	t.Helper()
	bin := nsproxyBin(t)
	plugin := filepath.Join(filepath.Dir(bin), "nsproxy-cni")
	tools := map[string]string{}
	for _, n := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl"} {
		p, err := criTool(n)
		if err != nil {
			t.Skipf("%s not installed: run scripts/deps.sh (scripts/deps-containerd.sh)", n)
		}
		tools[n] = p
	}
	refDir := os.Getenv("NSPROXY_TEST_CNI_DIR")
	if refDir == "" {
		refDir = "/usr/local/lib/nsproxy-test-cni"
	}
	cniBins := map[string]string{
		"bridge": filepath.Join(refDir, "bridge"), "host-local": filepath.Join(refDir, "host-local"),
		"loopback": filepath.Join(refDir, "loopback"), "firewall": "/usr/lib/cni/firewall", "nsproxy-cni": plugin,
	}
	for n, p := range cniBins {
		if !pathExists(p) {
			t.Skipf("CNI plugin %s missing (%s): run scripts/deps.sh", n, p)
		}
	}

	// The dir is made first so that its removal runs last.
	dir, err := os.MkdirTemp("", "nspe-cri-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	id := os.Getpid() % 10000
	e := &criEnv{t: t, dir: dir, sock: filepath.Join(dir, "containerd.sock"), crictl: tools["crictl"], ctr: tools["ctr"],
		netName: fmt.Sprintf("nspe%dcri", id), bridge: fmt.Sprintf("nspe%dcb", id),
		subnet:    fmt.Sprintf("10.236.%d.0/24", id%250),
		recordDir: recordDir, ipamDir: filepath.Join(dir, "ipam"), cgroup: fmt.Sprintf("/nspe%dcri", id),
		logDir: filepath.Join(dir, "logs"), done: make(chan struct{}),
		chains: map[string]bool{}, netnses: map[string]bool{},
	}
	e.ipt = iptablesSave(t)
	e.shimRun = pathExists(criShimDir)

	binDir := filepath.Join(dir, "cni-bin")
	confDir := filepath.Join(dir, "net.d")
	for _, d := range []string{binDir, confDir, e.logDir} {
		os.MkdirAll(d, 0o755)
	}
	for n, p := range cniBins {
		if err := os.Symlink(p, filepath.Join(binDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, confDir, "10-nsproxy.conflist", e.conflist(socket))
	cfg := writeFile(t, dir, "config.toml", fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = %[3]q
[ttrpc]
  address = "%[3]s.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # This host lacks CAP_SYS_RESOURCE: never lower a score below ours.
  restrict_oom_score_adj = true
  # The pods' namespaces under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %[6]q
        Root = %[9]q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
    max_conf_num = 1
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), e.sock, filepath.Join(dir, "opt"),
		criPauseImage, tools["runc"], binDir, confDir, filepath.Join(dir, "runc")))
	writeFile(t, dir, "crictl.yaml", fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n", e.sock, e.sock))

	e.cmd = exec.Command(tools["containerd"], "--config", cfg, "--log-level", "info")
	e.cmd.Stdout, e.cmd.Stderr = &e.log, &e.log
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	e.cmd.WaitDelay = 2 * time.Second
	// containerd finds its shim on PATH.
	e.cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tools["containerd-shim-runc-v2"])+":"+os.Getenv("PATH"))
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.cmd.Wait(); close(e.done) }()
	t.Cleanup(e.cleanup)

	// Ready: the grpc socket answers and the CRI network is ready.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := e.crictlRun("info")
		if err == nil && criNetworkReady(out) {
			break
		}
		select {
		case <-e.done:
			t.Fatalf("containerd exited at start:\n%s", e.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not ready after 60s (crictl info: %v)\n%s\ncontainerd log:\n%s", err, out, e.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	archive := filepath.Join(dir, "images.tar")
	busybox := "/bin/busybox"
	writeOCIArchive(t, archive, busybox, []ociImage{
		{Ref: criPauseImage, Entrypoint: []string{"/bin/sleep", "2147483647"}},
		{Ref: criAppImage, Entrypoint: []string{"/bin/sh", "-c"}},
	})
	if out, err := exec.Command(e.ctr, "--address", e.sock, "-n", "k8s.io", "images", "import",
		"--snapshotter", "overlayfs", archive).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	return e
}

func criNetworkReady(info string) bool {
	var v struct {
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status bool   `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if json.Unmarshal([]byte(info), &v) != nil {
		return false
	}
	for _, c := range v.Status.Conditions {
		if c.Type == "NetworkReady" {
			return c.Status
		}
	}
	return false
}

// conflist is the shipped containerd conflist with this env's network
// name, bridge, subnet, IPAM dir, daemon socket and record dir.
func (e *criEnv) conflist(socket string) string {
	e.t.Helper()
	b, err := os.ReadFile("../manifests/cni/containerd-nsproxy.conflist")
	if err != nil {
		e.t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		e.t.Fatalf("containerd-nsproxy.conflist: %v", err)
	}
	c["name"] = e.netName
	plugins, _ := c["plugins"].([]any)
	var seen []string
	for _, p := range plugins {
		p := p.(map[string]any)
		seen = append(seen, p["type"].(string))
		switch p["type"] {
		case "bridge":
			p["bridge"] = e.bridge
			ipam := p["ipam"].(map[string]any)
			ipam["ranges"] = []any{[]any{map[string]any{"subnet": e.subnet}}}
			ipam["dataDir"] = e.ipamDir
		case "nsproxy-cni":
			p["socket"] = socket
			p["attachmentDir"] = e.recordDir
		}
	}
	if !slices.Equal(seen, []string{"bridge", "firewall", "nsproxy-cni"}) {
		e.t.Fatalf("containerd-nsproxy.conflist chains %v; this test adapts bridge, firewall, nsproxy-cni", seen)
	}
	out, _ := json.MarshalIndent(c, "", "  ")
	return string(out)
}

func (e *criEnv) crictlRun(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.crictl, append([]string{"--config", filepath.Join(e.dir, "crictl.yaml")}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return strings.TrimSpace(out.String() + errOut.String()), err
	}
	return strings.TrimSpace(out.String()), nil
}

func (e *criEnv) crictlMust(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.crictlRun(args...)
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s\ncontainerd log (tail):\n%s", strings.Join(args, " "), err, out, logTail(e.logs(), 40))
	}
	return out
}

func logTail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// criPod is a pod sandbox's request: its metadata, one TCP host port to
// the pod's port 80, and annotations.
type criPod struct {
	Namespace, Name string
	Attempt         int
	HostPort        int
	Annotations     map[string]string
	id              string // the sandbox ID, once running
}

// runPod runs the sandbox (CNI ADD) and then the app container, which
// answers HTTP on listen (e.g. 0.0.0.0:80) with tag.
func (e *criEnv) runPod(t *testing.T, p *criPod, listen, tag string) {
	t.Helper()
	dir := filepath.Join(e.dir, "pods", fmt.Sprintf("%s_%s_%d", p.Namespace, p.Name, p.Attempt))
	os.MkdirAll(dir, 0o755)
	os.MkdirAll(filepath.Join(e.logDir, filepath.Base(dir)), 0o755)
	pod := map[string]any{
		"metadata": map[string]any{"name": p.Name, "namespace": p.Namespace, "attempt": p.Attempt,
			"uid": fmt.Sprintf("uid-%s-%s", p.Namespace, p.Name)},
		"hostname":      p.Name,
		"log_directory": filepath.Join(e.logDir, filepath.Base(dir)),
		"port_mappings": []any{map[string]any{"protocol": 0, "container_port": 80, "host_port": p.HostPort}},
		"annotations":   p.Annotations,
		"linux":         map[string]any{"cgroup_parent": e.cgroup},
	}
	ctr := map[string]any{
		"metadata": map[string]any{"name": "app", "attempt": p.Attempt}, // names are unique per attempt
		"image":    map[string]any{"image": criAppImage},
		"args":     []string{`echo "$TAG" >/www/index.html && exec httpd -f -p "$LISTEN" -h /www`},
		"envs":     []any{map[string]string{"key": "TAG", "value": tag}, map[string]string{"key": "LISTEN", "value": listen}},
		"log_path": "app.log",
	}
	podFile := filepath.Join(dir, "pod.json")
	ctrFile := filepath.Join(dir, "app.json")
	for f, v := range map[string]any{podFile: pod, ctrFile: ctr} {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.id = e.crictlMust(t, "runp", podFile)
	e.sandboxs = append(e.sandboxs, p.id)
	netns, _ := e.podNet(t, p.id)
	e.netnses[netns] = true
	cid := e.crictlMust(t, "create", p.id, ctrFile, podFile)
	e.crictlMust(t, "start", cid)
	e.learnChains(t)
}

// podNet is the sandbox's netns path and IP (crictl inspectp).
func (e *criEnv) podNet(t *testing.T, id string) (netns, ip string) {
	t.Helper()
	out := e.crictlMust(t, "inspectp", "-o", "json", id)
	var v struct {
		Status struct {
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("crictl inspectp: %v\n%s", err, out)
	}
	for _, n := range v.Info.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" {
			netns = n.Path
		}
	}
	return netns, v.Status.Network.IP
}

func (e *criEnv) stopPod(t *testing.T, p *criPod)   { t.Helper(); e.crictlMust(t, "stopp", p.id) }
func (e *criEnv) removePod(t *testing.T, p *criPod) { t.Helper(); e.crictlMust(t, "rmp", "-f", p.id) }

// ours reports whether an iptables-save line is about this env's network.
func (e *criEnv) ours(line string) bool {
	prefix := strings.TrimSuffix(e.subnet, "0/24")
	if strings.Contains(line, prefix) || strings.Contains(line, e.bridge) || strings.Contains(line, e.netName) {
		return true
	}
	for c := range e.chains {
		if strings.Contains(line, ":"+c+" ") || strings.Contains(line, " "+c+" ") || strings.HasSuffix(line, " "+c) {
			return true
		}
	}
	return false
}

var jumpRE = regexp.MustCompile(`-[jg] (\S+)`)

// learnChains records the chains that rules about our pods jump to and
// that did not exist before the test (bridge's per-container masquerade
// chains), so that their leftovers count as leaks.
func (e *criEnv) learnChains(t *testing.T) {
	before := map[string]bool{}
	for _, l := range e.ipt {
		if strings.HasPrefix(l, ":") {
			before[strings.Fields(l)[0][1:]] = true
		}
	}
	n := 0
	for _, l := range iptablesSave(t) {
		if !strings.HasPrefix(l, "-A ") || !e.ours(l) {
			continue
		}
		n++
		if m := jumpRE.FindStringSubmatch(l); m != nil && !before[m[1]] && strings.HasPrefix(m[1], "CNI-") &&
			m[1] != "CNI-FORWARD" && m[1] != "CNI-ADMIN" {
			e.chains[m[1]] = true
		}
	}
	e.rulesRun = max(e.rulesRun, n)
}

// iptablesLeaks is every rule or chain about this env's pods that exists
// now and did not before the test.
func (e *criEnv) iptablesLeaks(t *testing.T) []string {
	before := map[string]bool{}
	for _, l := range e.ipt {
		before[l] = true
	}
	var leaks []string
	for _, l := range iptablesSave(t) {
		if !before[l] && e.ours(l) {
			leaks = append(leaks, l)
		}
	}
	return leaks
}

// iptablesSave is the ruleset without comments and counters.
func iptablesSave(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, ":") { // ":CHAIN POLICY [pkts:bytes]"
			if f := strings.Fields(l); len(f) >= 2 {
				l = f[0] + " " + f[1]
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// leases is the IP addresses host-local holds for the network.
func (e *criEnv) leases() []string {
	entries, _ := os.ReadDir(filepath.Join(e.ipamDir, e.netName))
	var out []string
	for _, en := range entries {
		if net.ParseIP(en.Name()) != nil {
			out = append(out, en.Name())
		}
	}
	return out
}

// cniResults is libcni's cached results for the network (containerd keeps
// them in the host's /var/lib/cni).
func (e *criEnv) cniResults() []string {
	m, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", e.netName+"-*"))
	return m
}

// bridgePorts is the veths still enslaved to the bridge.
func (e *criEnv) bridgePorts() string {
	out, _ := exec.Command("ip", "-o", "link", "show", "master", e.bridge).CombinedOutput()
	if strings.Contains(string(out), "does not exist") {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// cleanup removes every pod, stops containerd and its shims, and undoes
// what they left: mounts, bridge, cgroups, libcni cache, iptables rules.
func (e *criEnv) cleanup() {
	t := e.t
	select {
	case <-e.done:
	default:
		if out, err := e.crictlRun("pods", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				e.crictlRun("stopp", id)
				e.crictlRun("rmp", "-f", id)
			}
		}
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			<-e.done
		}
	}
	if t.Failed() {
		t.Logf("containerd log (tail):\n%s", logTail(e.logs(), 80))
	}
	// Containers whose sandbox was not removed still run in the pods'
	// cgroup; shims outlive containerd, and theirs name our socket or dir.
	for _, pid := range append(e.podProcesses(), processesMentioning(e.dir)...) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for end := time.Now().Add(5 * time.Second); len(e.podProcesses()) > 0 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	for _, m := range mountsUnder(e.dir) {
		if err := syscall.Unmount(m, 0); err != nil {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	// containerd 1.6 puts shim sockets in /run/containerd/s whatever its
	// state dir; take the directories away if they were ours and are empty.
	// A killed shim leaves its socket, named sha256(address/namespace/id);
	// the shim's id is the sandbox's.
	for _, id := range e.sandboxs {
		os.Remove(filepath.Join(criShimDir, "s", fmt.Sprintf("%x", sha256.Sum256([]byte(e.sock+"/k8s.io/"+id)))))
	}
	if !e.shimRun {
		os.Remove(filepath.Join(criShimDir, "s"))
		os.Remove(criShimDir)
	}
	// A sandbox left without its teardown keeps its netns mount, veth and
	// lease; the bridge goes, and with it the veths.
	exec.Command("ip", "link", "del", e.bridge).Run()
	for _, r := range e.cniResults() {
		os.Remove(r)
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*" + e.cgroup)
	if pathExists("/sys/fs/cgroup/unified" + e.cgroup) {
		cgroups = append(cgroups, "/sys/fs/cgroup/unified"+e.cgroup)
	}
	for _, cg := range cgroups {
		subs, _ := filepath.Glob(cg + "/*")
		for _, s := range subs {
			if fi, err := os.Stat(s); err == nil && fi.IsDir() {
				syscall.Rmdir(s)
			}
		}
		syscall.Rmdir(cg)
	}
	if leaks := e.iptablesLeaks(t); len(leaks) > 0 {
		t.Errorf("iptables rules left after cleanup (deleting them):\n%s", strings.Join(leaks, "\n"))
		e.deleteRules(leaks)
	}
}

// deleteRules removes leaked rules (and then chains) by table.
func (e *criEnv) deleteRules(leaks []string) {
	var table string
	set := map[string]bool{}
	for _, l := range leaks {
		set[l] = true
	}
	var chains [][2]string
	for _, l := range iptablesSave(e.t) {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case set[l] && strings.HasPrefix(l, "-A "):
			args := append([]string{"-t", table, "-D"}, splitRule(l[3:])...)
			exec.Command("iptables", args...).Run()
		case set[l] && strings.HasPrefix(l, ":"):
			chains = append(chains, [2]string{table, strings.Fields(l)[0][1:]})
		}
	}
	for _, c := range chains {
		exec.Command("iptables", "-t", c[0], "-F", c[1]).Run()
		exec.Command("iptables", "-t", c[0], "-X", c[1]).Run()
	}
}

// splitRule splits an iptables-save rule into arguments (quoted comments
// stay one argument).
func splitRule(s string) []string {
	var args []string
	var cur strings.Builder
	inQ, esc := false, false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == '"':
			inQ = !inQ
		case r == ' ' && !inQ:
			if cur.Len() > 0 {
				args = append(args, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		args = append(args, cur.String())
	}
	return args
}

// podProcesses is the pids in the pods' cgroup parent (pids hierarchy).
func (e *criEnv) podProcesses() []int {
	var pids []int
	filepath.WalkDir("/sys/fs/cgroup/pids"+e.cgroup, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			var pid int
			if _, err := fmt.Sscanf(f, "%d", &pid); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// mountsUnder is the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// processesMentioning is the pids whose command line contains s.
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, en := range entries {
		var pid int
		if _, err := fmt.Sscanf(en.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// httpTag is the body of GET / at addr, trimmed.
func httpTag(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	_, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok || !bytes.HasPrefix(b, []byte("HTTP/1.")) {
		return "", fmt.Errorf("not an HTTP answer: %q", b)
	}
	return strings.TrimSpace(string(body)), nil
}

// expectHTTP waits until GET / at addr answers want.
func expectHTTP(t *testing.T, addr, want string) {
	t.Helper()
	eventuallyFor(t, 20*time.Second, fmt.Sprintf("GET %s answers %q", addr, want), func() error {
		got, err := httpTag(addr)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("answered %q", got)
		}
		return nil
	})
}

// connRefused is nil when a connection to addr is refused (nothing
// listens), not merely failing.
func connRefused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: %v, want connection refused", addr, err)
	}
	return nil
}

func eventuallyFor(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	testwait.For(t, d, what, f)
}
