//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImage builds the container image from the binary under test
// (scripts/image.sh, FROM scratch: no registry) and runs the daemon from it
// the way the DaemonSet does: host network, privileged, /var/run/netns
// shared. A frontend on the host's 127.0.0.1 reaches a server inside a test
// namespace, so the daemon in the container proxies into namespaces. The
// image gets its own tag (not localhost/nsproxy:dev, which may be someone's
// `make image`) and is removed at the end.
func TestImage(t *testing.T) {
	bin := nsproxyBin(t)
	p := newPodman(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "scripts", "image.sh")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("no %s: %v", script, err)
	}
	image := fmt.Sprintf("localhost/nsproxy:e2e-%d", os.Getpid())
	t.Cleanup(func() { p.run("rmi", "-f", image) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, script, image)
	build.Env = append(p.env, "NSPROXY_BIN="+bin)
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Logf("scripts/image.sh: %s", strings.TrimSpace(string(out)))
	hasPlugin := !strings.Contains(string(out), "the image has no nsproxy-cni")

	ns := newNS(t, "img")
	serveTag(t, ns, "127.0.0.1:8080", "in-"+ns)
	cfgDir := t.TempDir()
	writeFile(t, cfgDir, "nsproxy.cfg", fmt.Sprintf(`namespace_list
    namespace %s

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m

frontend img
    bind 127.0.0.1:18600
    default_backend img

backend img
    server s1 127.0.0.1:8080 namespace %s
`, ns, ns))
	const socket = "/run/nsproxy-test.sock"
	cname := name("img")
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := p.run("logs", cname)
			t.Logf("container log:\n%s", logs)
		}
		p.run("rm", "-f", "-t", "0", cname)
	})
	p.must("run", "-d", "--name", cname, "--network", "host", "--privileged",
		"-v", "/var/run/netns:/var/run/netns:rshared", "-v", cfgDir+":/etc/nsproxy",
		image, "run", "-f", "/etc/nsproxy/nsproxy.cfg", "--socket", socket, "--state-file", "none")
	expectTag(t, "", "127.0.0.1:18600", "in-"+ns)

	// The DaemonSet's probe command works inside the image.
	if out, err := p.run("exec", cname, "/usr/local/bin/nsproxy", "stats", "--socket", socket, "--timeout", "3s"); err != nil {
		t.Errorf("probe: nsproxy stats in the container: %v\n%s", err, out)
	}

	t.Run("plugin", func(t *testing.T) {
		if !hasPlugin {
			t.Skip("cmd/nsproxy-cni was not built, so the image has no nsproxy-cni")
		}
		cmd := exec.Command("podman", "run", "--rm", "-i", "--network", "none", "-e", "CNI_COMMAND=VERSION",
			"--entrypoint", "/usr/local/bin/nsproxy-cni", image)
		cmd.Env = p.env
		cmd.Stdin = strings.NewReader(`{"cniVersion": "1.0.0"}`)
		out, err := cmd.Output()
		var v struct {
			SupportedVersions []string `json:"supportedVersions"`
		}
		if err != nil || json.Unmarshal(out, &v) != nil || len(v.SupportedVersions) == 0 {
			t.Fatalf("nsproxy-cni VERSION in the image: %v\n%s", err, out)
		}
	})

	// What the DaemonSet's init container runs: copy the plugin onto the
	// node and chain it into the node's conflists.
	t.Run("install-cni", func(t *testing.T) {
		if !hasPlugin {
			t.Skip("cmd/nsproxy-cni was not built, so the image has no nsproxy-cni")
		}
		confDir, binDir := t.TempDir(), t.TempDir()
		conflist := writeFile(t, confDir, "10-test.conflist", `{"cniVersion": "1.0.0", "name": "test",
  "plugins": [{"type": "bridge", "bridge": "cni-test0"}, {"type": "portmap", "capabilities": {"portMappings": true}}]}`)
		out, err := p.run("run", "--rm", "--network", "none",
			"-v", confDir+":/host/etc/cni/net.d", "-v", binDir+":/host/opt/cni/bin", image,
			"install-cni", "--all", "--dir", "/host/etc/cni/net.d",
			"--plugin-binary", "/usr/local/bin/nsproxy-cni", "--bin-dir", "/host/opt/cni/bin")
		if strings.Contains(out, `unknown command "install-cni"`) {
			t.Skip("this nsproxy has no install-cni command yet (cmd/nsproxy/main.go does not dispatch it)")
		}
		if err != nil {
			t.Fatalf("install-cni in the container: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(conflist)
		if !strings.Contains(string(b), `"type": "nsproxy-cni"`) {
			t.Errorf("conflist after install-cni:\n%s", b)
		}
		if fi, err := os.Stat(filepath.Join(binDir, "nsproxy-cni")); err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("plugin binary on the host: %v", err)
		}
	})

	p.must("stop", "-t", "5", cname)
	eventually(t, "frontend closed after podman stop", func() error {
		if _, err := ask(t, "", "127.0.0.1:18600"); err == nil {
			return fmt.Errorf("still answering")
		}
		return nil
	})
}
