//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// Names of registered namespaces are labels a hook chooses; a clash must
// never fail a container's start nor move a name someone else owns.

// clashingNetns returns two namespace names whose cnitool container IDs
// ("cnitool-" + hex of the path's hash) share their first 12 characters.
func clashingNetns(t *testing.T) (string, string) {
	t.Helper()
	seen := map[string]string{}
	for i := 0; i < 100000; i++ {
		n := fmt.Sprintf("nspe%dclash%d", os.Getpid()%10000, i)
		short := containerID(n)[:12]
		if other, ok := seen[short]; ok {
			return other, n
		}
		seen[short] = n
	}
	t.Fatal("no two cnitool IDs share 12 characters")
	return "", ""
}

// setPluginConfig merges kv into the conflist's nsproxy-cni entry.
func (n *cniNet) setPluginConfig(kv map[string]any) {
	n.t.Helper()
	p := filepath.Join(n.confDir, n.name+".conflist")
	b, err := os.ReadFile(p)
	if err != nil {
		n.t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(b, &conf); err != nil {
		n.t.Fatal(err)
	}
	plugins := conf["plugins"].([]any)
	entry := plugins[len(plugins)-1].(map[string]any)
	for k, v := range kv {
		entry[k], n.pluginCfg[k] = v, v
	}
	b, _ = json.MarshalIndent(conf, "", "  ")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// addPod is add with CNI_ARGS naming the Kubernetes pod.
func (n *cniNet) addPod(ns string, hostPort int, podNamespace, pod string) string {
	n.t.Helper()
	args := fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s", podNamespace, pod)
	n.t.Cleanup(func() { n.runArgs("del", ns, "", args) })
	caps := fmt.Sprintf(`{"portMappings":[{"hostPort":%d,"containerPort":80,"protocol":"tcp"}]}`, hostPort)
	out, errOut, err := n.runArgs("add", ns, caps, args)
	if err != nil {
		n.t.Fatalf("cnitool add (pod %s/%s): %v\nstdout: %s\nstderr: %s", podNamespace, pod, err, out, errOut)
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) == 0 {
		n.t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	addr, _, _ := strings.Cut(res.IPs[0].Address, "/")
	return addr
}

func (n *cniNet) runArgs(verb, ns, capArgs, cniArgs string) (stdout, stderr string, err error) {
	cmd := exec.Command(n.cnitool, verb, n.name, "/var/run/netns/"+ns)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+n.confDir, "CNI_PATH="+n.cniPath, "CNI_IFNAME=eth0",
		"CAP_ARGS="+capArgs, "CNI_ARGS="+cniArgs, e2eRuntime)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// attachmentNames maps container IDs to the names the daemon gave them.
func attachmentNames(t *testing.T, d *daemon) map[string]string {
	t.Helper()
	out, err := d.cli("get", "attachments", "-o", "json")
	if err != nil {
		t.Fatalf("get attachments: %v\n%s", err, out)
	}
	var list []struct {
		ContainerID string `json:"containerID"`
		Name        string `json:"name"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("get attachments: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, a := range list {
		m[a.ContainerID] = a.Name
	}
	return m
}

// distinct fails unless the names are all set and all different.
func distinct(t *testing.T, names map[string]string, want int) {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			t.Fatalf("names not distinct: %v", names)
		}
		seen[n] = true
	}
	if len(seen) != want {
		t.Fatalf("names %v, want %d", names, want)
	}
}

// TestNamesCnitoolClash: two containers whose cnitool IDs share their
// first 12 characters (the default name cni-<12>-eth0 clashes) both
// attach and are both exposed.
func TestNamesCnitoolClash(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	n := newCNINet(t, sock)
	d := emptyDaemon(t, "--socket", sock, "--state-file", filepath.Join(dir, "state.json"), replayDirFlag, n.recordDir)
	a, b := clashingNetns(t)
	testns.Add(t, a)
	testns.Add(t, b)
	for i, ns := range []string{a, b} {
		ip := n.add(ns, 19400+i)
		serveTag(t, ns, ip+":80", "in-"+ns)
	}
	expectTag(t, "", "127.0.0.1:19400", "in-"+a)
	expectTag(t, "", "127.0.0.1:19401", "in-"+b)
	names := attachmentNames(t, d)
	distinct(t, names, 2)
	if got := names[containerID(a)]; got != "cni-"+containerID(a)[:12]+"-eth0" {
		t.Errorf("the first container's name %q, want the readable default", got)
	}
	for _, ns := range []string{a, b} {
		if out, errOut, err := n.run("check", ns, ""); err != nil {
			t.Errorf("cnitool check %s: %v\n%s%s", ns, err, out, errOut)
		}
	}
}

// TestNamesPodTemplateClash: the template {{.PodNamespace}}-{{.PodName}}
// gives team-b-web for pod team-b/web and for pod team/b-web: both attach
// and are both exposed.
func TestNamesPodTemplateClash(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	n := newCNINet(t, sock)
	n.setPluginConfig(map[string]any{"nameTemplate": "{{.PodNamespace}}-{{.PodName}}"})
	d := emptyDaemon(t, "--socket", sock, "--state-file", filepath.Join(dir, "state.json"), replayDirFlag, n.recordDir)
	a, b := newNS(t, "PA"), newNS(t, "PB")
	ipA := n.addPod(a, 19402, "team-b", "web")
	ipB := n.addPod(b, 19403, "team", "b-web")
	serveTag(t, a, ipA+":80", "team-b/web")
	serveTag(t, b, ipB+":80", "team/b-web")
	expectTag(t, "", "127.0.0.1:19402", "team-b/web")
	expectTag(t, "", "127.0.0.1:19403", "team/b-web")
	names := attachmentNames(t, d)
	distinct(t, names, 2)
	if names[containerID(a)] != "team-b-web" {
		t.Errorf("the first pod's name %q, want the template's team-b-web", names[containerID(a)])
	}
	out, err := d.cli("get", "namespaces")
	if err != nil || !strings.Contains(out, "team-b-web") {
		t.Fatalf("get namespaces: %v\n%s", err, out)
	}
}

// TestNamesPodNamedLikeFileNamespace: with the template {{.PodName}}, a pod
// named like a namespace of the configuration files attaches under another
// name; the files' server still reaches the files' namespace, not the pod.
func TestNamesPodNamedLikeFileNamespace(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	n := newCNINet(t, sock)
	n.setPluginConfig(map[string]any{"nameTemplate": "{{.PodName}}"})
	file, pod := newNS(t, "FN"), newNS(t, "PD")
	serveTag(t, file, "127.0.0.1:80", "in-file-namespace")
	cfg := writeFile(t, dir, "f.cfg", fmt.Sprintf(`
frontend fe
    bind 127.0.0.1:19404
    default_backend be
backend be
    server s 127.0.0.1:80 namespace %s
`, file))
	d := startDaemon(t, nil, "-f", cfg, "--socket", sock, "--state-file", filepath.Join(dir, "state.json"), replayDirFlag, n.recordDir)
	d.waitLog("control socket listening")
	expectTag(t, "", "127.0.0.1:19404", "in-file-namespace")

	n.addPod(pod, 19405, "default", file)
	serveTag(t, pod, "0.0.0.0:80", "in-pod") // also on its 127.0.0.1, where the file's server dials
	expectTag(t, "", "127.0.0.1:19405", "in-pod")
	for i := 0; i < 3; i++ {
		if tag, err := ask(t, "", "127.0.0.1:19404"); err != nil || tag != "in-file-namespace" {
			t.Fatalf("the files' server reached %q (%v): the pod took the namespace name %s", tag, err, file)
		}
	}
	if got := attachmentNames(t, d)[containerID(pod)]; got == file || got == "" {
		t.Fatalf("the pod was given the name %q", got)
	}
}

// ociHook runs `nsproxy hook oci STAGE` for container id with the given
// pid and annotations.
func ociHook(t *testing.T, stage, id string, pid int, ann map[string]string, args ...string) (string, error) {
	t.Helper()
	st, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": pid,
		"bundle": "/nonexistent", "annotations": ann})
	cmd := exec.Command(nsproxyBin(t), append([]string{"hook", "oci", stage}, args...)...)
	cmd.Stdin = bytes.NewReader(st)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sleeper runs a process inside ns (a container's pid) until the test ends.
func sleeper(t *testing.T, ns string) int {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	want, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec enters the namespace after it started: wait for it.
	eventually(t, "process inside "+ns, func() error {
		got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if err != nil || got == want {
			return fmt.Errorf("not yet in %s: %s %v", ns, got, err)
		}
		return nil
	})
	return cmd.Process.Pid
}

// hookEnv is a private netns directory and record directory for the hook.
type hookEnv struct {
	netnsDir, records string
}

func newHookEnv(t *testing.T) hookEnv {
	h := hookEnv{netnsDir: t.TempDir(), records: t.TempDir()}
	t.Cleanup(func() { // before TempDir's removal: undo any bind mount left
		entries, _ := os.ReadDir(h.netnsDir)
		for _, e := range entries {
			exec.Command("umount", "-l", filepath.Join(h.netnsDir, e.Name())).Run()
		}
	})
	return h
}

func (h hookEnv) args(sock string) []string {
	return []string{"--socket", sock, "--netns-dir", h.netnsDir, "--attachment-dir", h.records}
}

// TestNamesOCIHookSharedPrefix: two containers whose IDs share their first
// 12 characters, started through the OCI hook, both stay attached and
// exposed; stopping one leaves the other.
func TestNamesOCIHookSharedPrefix(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	h := newHookEnv(t)
	d := emptyDaemon(t, "--socket", sock, "--state-file", filepath.Join(dir, "state.json"), replayDirFlag, h.records)
	ids := []string{"0123456789ab-first", "0123456789ab-second"}
	for i, id := range ids {
		ns := newNS(t, fmt.Sprintf("H%d", i))
		serveTag(t, ns, "127.0.0.1:80", id)
		pid := sleeper(t, ns)
		ann := map[string]string{"nsproxy.io/expose": fmt.Sprintf("127.0.0.1:%d:80", 19410+i), "nsproxy.io/target": "loopback"}
		if out, err := ociHook(t, "createRuntime", id, pid, ann, h.args(sock)...); err != nil {
			t.Fatalf("hook createRuntime %s: %v\n%s", id, err, out)
		}
		t.Cleanup(func() { ociHook(t, "poststop", id, 0, nil, h.args(sock)...) })
	}
	expectTag(t, "", "127.0.0.1:19410", ids[0])
	expectTag(t, "", "127.0.0.1:19411", ids[1])
	names := attachmentNames(t, d)
	distinct(t, names, 2)
	if names[ids[0]] != "oci-0123456789ab" {
		t.Errorf("the first container's name %q, want oci-0123456789ab", names[ids[0]])
	}

	if out, err := ociHook(t, "poststop", ids[1], 0, nil, h.args(sock)...); err != nil {
		t.Fatalf("hook poststop: %v\n%s", err, out)
	}
	eventually(t, "second container's port closed", func() error { return refused("127.0.0.1:19411") })
	expectTag(t, "", "127.0.0.1:19410", ids[0])
}

// TestNamesOCIHookReplay: a container started through the OCI hook while
// the daemon is down starts (the hook succeeds) and is exposed as soon as
// the daemon starts, from the hook's attachment record.
func TestNamesOCIHookReplay(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	h := newHookEnv(t)
	ns := newNS(t, "HR")
	serveTag(t, ns, "127.0.0.1:80", "replayed-oci")
	pid := sleeper(t, ns)
	id := "nsproxy-e2e-replay-oci"
	ann := map[string]string{"nsproxy.io/expose": "127.0.0.1:19412:80", "nsproxy.io/target": "loopback"}
	start := time.Now()
	out, err := ociHook(t, "createRuntime", id, pid, ann, h.args(sock)...)
	if err != nil {
		t.Fatalf("hook createRuntime with the daemon down failed, the container would not start: %v\n%s", err, out)
	}
	t.Cleanup(func() { ociHook(t, "poststop", id, 0, nil, h.args(sock)...) })
	t.Logf("hook with the daemon down took %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	if entries, _ := os.ReadDir(h.records); len(entries) != 1 {
		t.Fatalf("records %v after the hook, want one", entries)
	}
	emptyDaemon(t, "--socket", sock, "--state-file", filepath.Join(dir, "state.json"), replayDirFlag, h.records)
	expectTag(t, "", "127.0.0.1:19412", "replayed-oci")

	if out, err := ociHook(t, "poststop", id, 0, nil, h.args(sock)...); err != nil {
		t.Fatalf("hook poststop: %v\n%s", err, out)
	}
	eventually(t, "port closed after poststop", func() error { return refused("127.0.0.1:19412") })
	if entries, _ := os.ReadDir(h.records); len(entries) != 0 {
		t.Fatalf("records %v after poststop, want none", entries)
	}
}
