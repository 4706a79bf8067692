//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// replayDirFlag is the `nsproxy run` flag that names the directory of
// attachment records the daemon replays at start.
const replayDirFlag = "--attachment-dir"

// cniNet is a bridge network (bridge + host-local, then nsproxy-cni) in a
// private NETCONFPATH, driven with cnitool and the reference plugins that
// scripts/deps-cni.sh installs.
type cniNet struct {
	t         *testing.T
	name      string // network and conflist name
	bridge    string
	confDir   string // NETCONFPATH
	cniPath   string // CNI_PATH: reference plugins, then nsproxy-cni's directory
	plugin    string // nsproxy-cni
	cnitool   string
	recordDir string // the plugin's attachmentDir
	pluginCfg map[string]any
}

// newCNINet writes a cniVersion 1.1.0 conflist whose nsproxy-cni entry uses
// socket; it skips the test when a tool is missing.
func newCNINet(t *testing.T, socket string) *cniNet {
	t.Helper()
	bin := nsproxyBin(t)
	n := &cniNet{t: t, plugin: filepath.Join(filepath.Dir(bin), "nsproxy-cni")}
	if _, err := os.Stat(n.plugin); err != nil {
		t.Skipf("%s missing: build it next to NSPROXY_BIN (go build -o bin/nsproxy-cni ./cmd/nsproxy-cni)", n.plugin)
	}
	var err error
	if n.cnitool, err = exec.LookPath("cnitool"); err != nil {
		n.cnitool = "/usr/local/bin/cnitool"
		if _, err := os.Stat(n.cnitool); err != nil {
			t.Skip("cnitool missing: run scripts/deps-cni.sh")
		}
	}
	plugins := os.Getenv("NSPROXY_TEST_CNI_DIR")
	if plugins == "" {
		plugins = "/usr/local/lib/nsproxy-test-cni"
	}
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(plugins, p)); err != nil {
			t.Skipf("reference plugin %s missing in %s: run scripts/deps-cni.sh (or set NSPROXY_TEST_CNI_DIR)", p, plugins)
		}
	}
	n.cniPath = plugins + string(os.PathListSeparator) + filepath.Dir(n.plugin)

	i := seq.Add(1)
	n.name = fmt.Sprintf("nspe%dnet%d", os.Getpid()%10000, i)
	n.bridge = fmt.Sprintf("nspe%db%d", os.Getpid()%10000, i)
	tmp := t.TempDir()
	n.confDir = filepath.Join(tmp, "net.d")
	n.recordDir = filepath.Join(tmp, "attachments")
	n.pluginCfg = map[string]any{"type": "nsproxy-cni", "socket": socket, "attachmentDir": n.recordDir,
		"capabilities": map[string]bool{"portMappings": true}}
	conflist := map[string]any{
		"cniVersion": "1.1.0", "name": n.name,
		"plugins": []any{
			map[string]any{"type": "bridge", "bridge": n.bridge, "isGateway": true,
				"ipam": map[string]any{"type": "host-local", "subnet": fmt.Sprintf("10.233.%d.0/24", 10+i%200),
					"dataDir": filepath.Join(tmp, "ipam")}},
			n.pluginCfg,
		},
	}
	b, _ := json.MarshalIndent(conflist, "", "  ")
	if err := os.MkdirAll(n.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, n.confDir, n.name+".conflist", string(b))
	t.Cleanup(func() { exec.Command("ip", "link", "del", n.bridge).Run() })
	return n
}

// e2eRuntime is the one runtime of the tests' plugin calls: cnitool runs
// ADD, the test itself runs GC, and a GC collects only its own runtime's
// attachments.
const e2eRuntime = "NSPROXY_CNI_RUNTIME=nsproxy-e2e"

// run runs `cnitool VERB NET /var/run/netns/NS` with capability args.
func (n *cniNet) run(verb, ns, capArgs string) (stdout, stderr string, err error) {
	cmd := exec.Command(n.cnitool, verb, n.name, "/var/run/netns/"+ns)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+n.confDir, "CNI_PATH="+n.cniPath, "CNI_IFNAME=eth0", "CAP_ARGS="+capArgs,
		e2eRuntime)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// add attaches ns to the network, publishing hostPort to the container's
// port 80, and returns the container's IP. A DEL is queued for cleanup.
func (n *cniNet) add(ns string, hostPort int) string {
	n.t.Helper()
	n.t.Cleanup(func() { n.run("del", ns, "") })
	caps := fmt.Sprintf(`{"portMappings":[{"hostPort":%d,"containerPort":80,"protocol":"tcp"}]}`, hostPort)
	out, errOut, err := n.run("add", ns, caps)
	if err != nil {
		n.t.Fatalf("cnitool add: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	var res struct {
		Interfaces []struct {
			Sandbox string `json:"sandbox"`
		} `json:"interfaces"`
		IPs []struct {
			Address   string `json:"address"`
			Interface *int   `json:"interface"`
		} `json:"ips"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		n.t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	for _, ip := range res.IPs {
		if ip.Interface != nil && *ip.Interface < len(res.Interfaces) && res.Interfaces[*ip.Interface].Sandbox != "" {
			addr, _, _ := strings.Cut(ip.Address, "/")
			return addr
		}
	}
	n.t.Fatalf("no container address in %s", out)
	return ""
}

// containerID is cnitool's container ID for ns.
func containerID(ns string) string {
	s := sha512.Sum512([]byte("/var/run/netns/" + ns))
	return fmt.Sprintf("cnitool-%x", s[:10])
}

// records lists the files in the record directory.
func (n *cniNet) records() []string {
	entries, _ := os.ReadDir(n.recordDir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// invoke runs nsproxy-cni itself with CNI_COMMAND=verb and the plugin's
// config (plus extra keys) on stdin; it returns stdout and the exit error.
func (n *cniNet) invoke(verb string, extra map[string]any) (string, error) {
	cfg := map[string]any{"cniVersion": "1.1.0", "name": n.name}
	for k, v := range n.pluginCfg {
		cfg[k] = v
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(n.plugin)
	cmd.Env = []string{"CNI_COMMAND=" + verb, "CNI_PATH=" + n.cniPath, e2eRuntime}
	cmd.Stdin = bytes.NewReader(b)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil && e.Len() > 0 {
		n.t.Logf("nsproxy-cni %s stderr: %s", verb, e.String())
	}
	return o.String(), err
}

// cniCode is the code of a CNI error object.
func cniCode(t *testing.T, out string) int {
	t.Helper()
	var e struct {
		Code int `json:"code"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("not a CNI error: %q", out)
	}
	return e.Code
}

func refused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("%s still accepts connections", addr)
}

// emptyDaemon starts the real daemon with a comment-only config and waits
// for its control socket.
func emptyDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	cfg := writeFile(t, t.TempDir(), "empty.cfg", "# no frontends: attachments only\n")
	d := startDaemon(t, nil, append([]string{"-f", cfg}, args...)...)
	d.waitLog("control socket listening")
	return d
}

// TestCNICnitool: cnitool ADD with portMappings exposes the container's
// port 80 on the host through nsproxy; CHECK passes; DEL closes the
// listener and removes the record; a second DEL succeeds.
func TestCNICnitool(t *testing.T) {
	nsproxyBin(t)
	d := emptyDaemon(t)
	n := newCNINet(t, d.socket)
	ns := newNS(t, "K")
	ip := n.add(ns, 18080)
	serveTag(t, ns, ip+":80", "in-container")
	expectTag(t, "", "127.0.0.1:18080", "in-container")
	if rec := n.records(); len(rec) != 1 || !strings.HasPrefix(rec[0], containerID(ns)+"+eth0") {
		t.Errorf("records %v, want one for %s/eth0", rec, containerID(ns))
	}
	if out, err := d.cli("get", "attachments", "-o", "json"); err != nil || !strings.Contains(out, containerID(ns)) {
		t.Errorf("nsproxy get attachments: %v\n%s", err, out)
	}
	if out, errOut, err := n.run("check", ns, `{"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]}`); err != nil {
		t.Fatalf("cnitool check: %v\n%s%s", err, out, errOut)
	}
	for i := range 2 {
		if out, errOut, err := n.run("del", ns, ""); err != nil {
			t.Fatalf("cnitool del #%d: %v\n%s%s", i+1, err, out, errOut)
		}
	}
	eventually(t, "listener closed after DEL", func() error { return refused("127.0.0.1:18080") })
	if rec := n.records(); len(rec) != 0 {
		t.Errorf("records left after DEL: %v", rec)
	}
	if out, _, err := n.run("check", ns, ""); err == nil {
		t.Errorf("cnitool check succeeded after DEL: %s", out)
	}
}

// TestCNIStatus: STATUS succeeds with the daemon up, and with it down too
// unless the config is strict (a non-strict ADD succeeds with its record
// alone); strict and down, it fails with error 50.
func TestCNIStatus(t *testing.T) {
	nsproxyBin(t)
	d := emptyDaemon(t)
	n := newCNINet(t, d.socket)
	ns := newNS(t, "S") // cnitool wants a namespace argument even for status
	if out, errOut, err := n.run("status", ns, ""); err != nil {
		t.Fatalf("cnitool status with the daemon up: %v\n%s%s", err, out, errOut)
	}
	down := newCNINet(t, filepath.Join(t.TempDir(), "no-daemon.sock"))
	if out, errOut, err := down.run("status", ns, ""); err != nil {
		t.Fatalf("cnitool status with the daemon down, not strict: %v\n%s%s", err, out, errOut)
	}
	down.setPluginConfig(map[string]any{"strict": true})
	out, errOut, err := down.run("status", ns, "")
	if err == nil {
		t.Fatalf("cnitool status succeeded with the daemon down, strict: %s", out)
	}
	if !strings.Contains(errOut, "nsproxy daemon not available") {
		t.Errorf("cnitool status stderr %q", errOut)
	}
	out, err = down.invoke("STATUS", nil)
	if err == nil {
		t.Fatalf("nsproxy-cni STATUS succeeded with the daemon down, strict: %s", out)
	}
	if code := cniCode(t, out); code != 50 {
		t.Errorf("STATUS error code %d, want 50: %s", code, out)
	}
}

// TestCNIGC: GC with an empty valid list removes the attachment (listener
// and record); so does cnitool gc (no list at all) for an attachment that
// libcni's cache no longer knows.
func TestCNIGC(t *testing.T) {
	nsproxyBin(t)
	d := emptyDaemon(t)
	n := newCNINet(t, d.socket)
	ns := newNS(t, "G")
	n.add(ns, 18082)
	// Every address: a new ADD may get a new IP.
	serveTag(t, ns, "0.0.0.0:80", "gc-me")
	expectTag(t, "", "127.0.0.1:18082", "gc-me")

	if out, err := n.invoke("GC", map[string]any{"cni.dev/valid-attachments": []any{}}); err != nil {
		t.Fatalf("GC: %v %s", err, out)
	}
	eventually(t, "listener closed after GC", func() error { return refused("127.0.0.1:18082") })
	if rec := n.records(); len(rec) != 0 {
		t.Errorf("records left after GC: %v", rec)
	}

	// A valid list keeps it. (GC left bridge's veth: DEL it before ADD.)
	if out, errOut, err := n.run("del", ns, ""); err != nil {
		t.Fatalf("cnitool del: %v\n%s%s", err, out, errOut)
	}
	n.add(ns, 18082)
	expectTag(t, "", "127.0.0.1:18082", "gc-me")
	if out, err := n.invoke("GC", map[string]any{"cni.dev/valid-attachments": []any{
		map[string]string{"containerID": containerID(ns), "ifname": "eth0"}}}); err != nil {
		t.Fatalf("GC: %v %s", err, out)
	}
	expectTag(t, "", "127.0.0.1:18082", "gc-me")

	// cnitool gc first DELs what libcni cached; forget it so that the
	// plugin's own GC does the work.
	os.Remove(filepath.Join("/var/lib/cni/results", n.name+"-"+containerID(ns)+"-eth0"))
	if out, errOut, err := n.run("gc", ns, ""); err != nil {
		t.Fatalf("cnitool gc: %v\n%s%s", err, out, errOut)
	}
	eventually(t, "listener closed after cnitool gc", func() error { return refused("127.0.0.1:18082") })
	if rec := n.records(); len(rec) != 0 {
		t.Errorf("records left after cnitool gc: %v", rec)
	}
}

// TestCNIReplay: ADD while the daemon is down succeeds and leaves a record;
// the daemon started afterwards replays it and the exposure appears.
func TestCNIReplay(t *testing.T) {
	bin := nsproxyBin(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	n := newCNINet(t, sock)
	ns := newNS(t, "R")
	ip := n.add(ns, 18083)
	serveTag(t, ns, ip+":80", "replayed")
	if rec := n.records(); len(rec) != 1 {
		t.Fatalf("records %v after ADD with the daemon down, want one", rec)
	}
	if err := refused("127.0.0.1:18083"); err != nil {
		t.Fatal(err)
	}

	help, _ := exec.Command(bin, "run", "-h").CombinedOutput()
	if !strings.Contains(string(help), strings.TrimLeft(replayDirFlag, "-")) {
		t.Fatalf("nsproxy run has no %s flag: the daemon does not replay attachment records yet\n%s", replayDirFlag, help)
	}
	d := emptyDaemon(t, "--socket", sock, "--state-file", filepath.Join(dir, "state.json"), replayDirFlag, n.recordDir)
	expectTag(t, "", "127.0.0.1:18083", "replayed")
	if out, errOut, err := n.run("check", ns, `{"portMappings":[{"hostPort":18083,"containerPort":80,"protocol":"tcp"}]}`); err != nil {
		t.Errorf("cnitool check after replay: %v\n%s%s\n%s", err, out, errOut, d.logs())
	}
	if out, errOut, err := n.run("del", ns, ""); err != nil {
		t.Fatalf("cnitool del: %v\n%s%s", err, out, errOut)
	}
	eventually(t, "listener closed after DEL", func() error { return refused("127.0.0.1:18083") })
}
