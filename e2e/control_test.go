//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metric scrapes one sample of the metrics endpoint.
func metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestControlPlaneLifecycle: a namespace and a server are added through
// the CLI while a connection flows elsewhere; the daemon is killed with
// SIGKILL and restarted on the same state file: the run-time objects are
// back and serving; the metrics endpoint counts the traffic.
func TestControlPlaneLifecycle(t *testing.T) {
	nsproxyBin(t)
	b, c := newNS(t, "B"), newNS(t, "C")
	serveTag(t, b, "127.0.0.1:80", "in-B")
	serveTag(t, c, "127.0.0.1:80", "in-C")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "cp.cfg", fmt.Sprintf(`
frontend fe
    bind 127.0.0.1:17800
    default_backend be
backend be
    server sb 127.0.0.1:80 namespace %s
`, b))
	sock, state := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json")
	args := []string{"-f", cfg, "--socket", sock, "--state-file", state, "--metrics-addr", "127.0.0.1:17890"}
	d := startDaemon(t, nil, args...)
	d.waitLog("control socket listening")
	expectTag(t, "", "127.0.0.1:17800", "in-B")

	// An established connection keeps flowing through the changes.
	flow, tag, err := open(t, "", "127.0.0.1:17800")
	if err != nil || tag != "in-B" {
		t.Fatalf("flow: %q %v", tag, err)
	}
	defer flow.c.Close()

	before := metric(t, "127.0.0.1:17890", `nsproxy_frontend_connections_total{frontend="fe",tenant="default"}`)
	if out, err := d.cli("ns", "add", "tenant-c", "--path", "/var/run/netns/"+c); err != nil {
		t.Fatalf("ns add: %v\n%s", err, out)
	}
	if out, err := d.cli("server", "add", "be", "sc", "127.0.0.1:80", "--namespace", "tenant-c"); err != nil {
		t.Fatalf("server add: %v\n%s", err, out)
	}
	if err := flow.echo("still-flowing"); err != nil {
		t.Fatalf("established connection broken by the API change: %v", err)
	}
	seen := map[string]bool{}
	for i := 0; i < 6; i++ {
		tag, err := ask(t, "", "127.0.0.1:17800")
		if err != nil {
			t.Fatal(err)
		}
		seen[tag] = true
	}
	if !seen["in-B"] || !seen["in-C"] {
		t.Fatalf("round robin after server add reached %v, want both namespaces", seen)
	}
	out, err := d.cli("get", "servers")
	if err != nil || !strings.Contains(out, "sc") || !strings.Contains(out, "tenant-c") {
		t.Fatalf("get servers: %v\n%s", err, out)
	}
	out, err = d.cli("get", "namespaces", "-o", "json")
	if err != nil || !strings.Contains(out, `"tenant-c"`) || !strings.Contains(out, `"available"`) {
		t.Fatalf("get namespaces: %v\n%s", err, out)
	}
	after := metric(t, "127.0.0.1:17890", `nsproxy_frontend_connections_total{frontend="fe",tenant="default"}`)
	if before < 1 || after < before+6 {
		t.Fatalf("connections_total did not move: %v -> %v", before, after)
	}
	if v := metric(t, "127.0.0.1:17890", `nsproxy_namespace_connections_total{netns="tenant-c"}`); v < 1 {
		t.Fatalf("per-namespace counter for tenant-c: %v", v)
	}

	// kill -9, then restart on the same state: sc in tenant-c is back.
	d.signal(syscall.SIGKILL)
	d.wait(5 * time.Second)
	d2 := startDaemon(t, nil, args...)
	d2.waitLog("restored run-time state")
	seen = map[string]bool{}
	eventually(t, "both servers after restart", func() error {
		tag, err := ask(t, "", "127.0.0.1:17800")
		if err != nil {
			return err
		}
		seen[tag] = true
		if !seen["in-B"] || !seen["in-C"] {
			return fmt.Errorf("seen %v", seen)
		}
		return nil
	})

	// Errors from the daemon reach the user as they are.
	out, err = d2.cli("server", "del", "be", "sb")
	if err == nil || !strings.Contains(out, "cp.cfg") {
		t.Fatalf("deleting a config server: %v\n%s", err, out)
	}
	if out, err := d2.cli("server", "del", "be", "sc"); err != nil {
		t.Fatalf("server del: %v\n%s", err, out)
	}
	if out, err := d2.cli("ns", "del", "tenant-c"); err != nil {
		t.Fatalf("ns del: %v\n%s", err, out)
	}
	expectTag(t, "", "127.0.0.1:17800", "in-B")
}
