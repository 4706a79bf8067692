//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// podmanEnv is a private podman setup: containers.conf as cni-facts.md
// describes, a busybox rootfs (no registry needed) and a hooks directory.
type podmanEnv struct {
	t         *testing.T
	dir       string
	rootfs    string
	hooksDir  string
	netDir    string // private CNI config dir (network_config_dir)
	pluginDir string // extra CNI plugin dir, searched after Debian's
	env       []string
}

func newPodman(t *testing.T) *podmanEnv {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman not installed (make deps installs it)")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox-static not installed (make deps installs it)")
	}
	dir := t.TempDir()
	p := &podmanEnv{t: t, dir: dir, rootfs: filepath.Join(dir, "rootfs"), hooksDir: filepath.Join(dir, "hooks"),
		netDir: filepath.Join(dir, "net.d"), pluginDir: filepath.Join(dir, "cni-bin")}
	os.MkdirAll(p.netDir, 0o755)
	os.MkdirAll(p.pluginDir, 0o755)
	for _, d := range []string{"bin", "www", "proc", "sys", "dev", "etc", "tmp"} {
		os.MkdirAll(filepath.Join(p.rootfs, d), 0o755)
	}
	os.MkdirAll(p.hooksDir, 0o755)
	sh(t, "cp", bb, filepath.Join(p.rootfs, "bin", "busybox"))
	writeFile(t, filepath.Join(p.rootfs, "www"), "index.html", "hello from a podman container\n")
	conf := writeFile(t, dir, "containers.conf", fmt.Sprintf(`[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
network_config_dir = %q
cni_plugin_dirs = ["/usr/lib/cni", %q]
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
`, p.netDir, p.pluginDir))
	p.env = append(os.Environ(), "CONTAINERS_CONF="+conf)
	return p
}

func (p *podmanEnv) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", append([]string{"--hooks-dir", p.hooksDir}, args...)...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (p *podmanEnv) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// httpGet fetches url from the test's (host) namespace.
func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPodmanOCIHook: podman runs a container with the nsproxy.io/expose
// annotation; the OCI hook registers its namespace with the daemon, which
// exposes the port (to the container's own 127.0.0.1: no network at all);
// podman stop unregisters it, start brings it back, rm leaves nothing.
func TestPodmanOCIHook(t *testing.T) {
	bin := nsproxyBin(t)
	p := newPodman(t)
	records := filepath.Join(p.dir, "attachments") // never the host's
	d := startDaemon(t, nil, "-f", writeFile(t, t.TempDir(), "empty.cfg", "# run-time objects only\n"),
		"--attachment-dir", records)
	d.waitLog("control socket listening")
	for stage, file := range map[string]string{"createRuntime": "nsproxy-start.json", "poststop": "nsproxy-stop.json"} {
		writeFile(t, p.hooksDir, file, fmt.Sprintf(`{"version":"1.0.0",
  "hook":{"path":%q,"args":["nsproxy","hook","oci",%q,"--socket",%q,"--attachment-dir",%q]},
  "when":{"annotations":{"^nsproxy\\.io/expose$":".+"}},
  "stages":[%q]}`, bin, stage, d.socket, records, stage))
	}
	name := name("hk")
	t.Cleanup(func() { p.run("rm", "-f", "-t", "0", name) })
	p.must("run", "-d", "--name", name, "--network", "none",
		"--annotation", "nsproxy.io/expose=18480:80", "--annotation", "nsproxy.io/target=loopback",
		"--rootfs", p.rootfs, "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
	eventually(t, "container answers through nsproxy", func() error {
		body, err := httpGet("http://127.0.0.1:18480/")
		if err == nil && !strings.Contains(body, "hello from a podman container") {
			return fmt.Errorf("body %q", body)
		}
		return err
	})
	out, err := d.cli("get", "attachments")
	if err != nil || !strings.Contains(out, "oci") || !strings.Contains(out, "18480->80/tcp") {
		t.Fatalf("get attachments: %v\n%s", err, out)
	}

	p.must("stop", "-t", "1", name)
	eventually(t, "listener gone after podman stop", func() error {
		if _, err := httpGet("http://127.0.0.1:18480/"); err == nil {
			return fmt.Errorf("still answering")
		}
		return nil
	})
	p.must("start", name)
	eventually(t, "back after podman start", func() error {
		_, err := httpGet("http://127.0.0.1:18480/")
		return err
	})
	p.must("rm", "-f", "-t", "1", name)
	eventually(t, "nothing left after podman rm", func() error {
		out, _ := d.cli("get", "attachments", "-o", "json")
		if strings.TrimSpace(out) != "[]" {
			return fmt.Errorf("attachments left: %s", out)
		}
		if entries, _ := filepath.Glob("/var/run/netns/oci-*"); len(entries) > 0 {
			return fmt.Errorf("namespace names left: %v", entries)
		}
		return nil
	})
}

// TestPodmanCNI: a podman network whose conflist chains nsproxy-cni
// instead of portmap (installed with nsproxy install-cni). podman run -p
// exposes the container's port through nsproxy; stop removes the listener,
// start brings it back, rm leaves nothing.
func TestPodmanCNI(t *testing.T) {
	bin := nsproxyBin(t)
	plugin := filepath.Join(filepath.Dir(bin), "nsproxy-cni")
	if _, err := os.Stat(plugin); err != nil {
		t.Skip("nsproxy-cni not built next to NSPROXY_BIN (make build builds it)")
	}
	p := newPodman(t)
	sh(t, "cp", plugin, filepath.Join(p.pluginDir, "nsproxy-cni"))
	records := filepath.Join(p.dir, "attachments")
	d := startDaemon(t, nil, "-f", writeFile(t, t.TempDir(), "empty.cfg", "# run-time objects only\n"),
		"--attachment-dir", records)
	d.waitLog("control socket listening")

	net := name("pn")
	p.must("network", "create", "--disable-dns", "--subnet", "10.234.77.0/24", net)
	t.Cleanup(func() { p.run("network", "rm", "-f", net) })
	conflist := filepath.Join(p.netDir, net+".conflist")
	// Rootful podman reserves every -p host port itself (conmon holds a
	// listening socket): the daemon adopts that socket instead of binding.
	cfg := fmt.Sprintf(`{"socket":%q,"attachmentDir":%q,"hostPorts":"adopt"}`, d.socket, records)
	if out, err := exec.Command(bin, "install-cni", "--conflist", conflist, "--replace-portmap", "--plugin-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("install-cni: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(conflist)
	var parsed struct {
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	json.Unmarshal(b, &parsed)
	var types []string
	for _, pl := range parsed.Plugins {
		types = append(types, pl.Type)
	}
	if !slices.Contains(types, "nsproxy-cni") || slices.Contains(types, "portmap") {
		t.Fatalf("chain after install-cni --replace-portmap: %v\n%s", types, b)
	}

	ctr := name("pc")
	t.Cleanup(func() { p.run("rm", "-f", "-t", "0", ctr) })
	p.must("run", "-d", "--name", ctr, "--network", net, "-p", "18490:80",
		"--rootfs", p.rootfs, "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
	answers := func() error {
		body, err := httpGet("http://127.0.0.1:18490/")
		if err == nil && !strings.Contains(body, "hello from a podman container") {
			return fmt.Errorf("body %q", body)
		}
		return err
	}
	eventually(t, "podman -p answers through nsproxy", answers)
	out, err := d.cli("get", "attachments", "-o", "json")
	if err != nil || !strings.Contains(out, "10.234.77.") || !strings.Contains(out, `"hostPort": 18490`) {
		t.Fatalf("attachment: %v\n%s", err, out)
	}
	d.waitLog("server_netns=cni-")

	p.must("stop", "-t", "1", ctr)
	eventually(t, "listener gone after podman stop", func() error {
		if answers() == nil {
			return fmt.Errorf("still answering")
		}
		return nil
	})
	p.must("start", ctr)
	eventually(t, "back after podman start", answers)
	p.must("rm", "-f", "-t", "1", ctr)
	eventually(t, "nothing left after podman rm", func() error {
		out, _ := d.cli("get", "attachments", "-o", "json")
		if strings.TrimSpace(out) != "[]" {
			return fmt.Errorf("attachments left: %s", out)
		}
		if recs, _ := filepath.Glob(filepath.Join(records, "*.json")); len(recs) > 0 {
			return fmt.Errorf("records left: %v", recs)
		}
		out, _ = d.cli("get", "namespaces", "-o", "json")
		if strings.Contains(out, "cni-") {
			return fmt.Errorf("namespaces left: %s", out)
		}
		return nil
	})
}
