//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tenantWithFrontend is a Tenant with one frontend on the host's loopback
// and one server.
func tenantWithFrontend(name string, bindPort, serverPort int) string {
	return fmt.Sprintf(`apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: %[1]s
spec:
  frontends:
  - name: %[1]s-web
    binds:
    - addr: 127.0.0.1:%[2]d
    backend: %[1]s-app
  backends:
  - name: %[1]s-app
    servers:
    - name: s1
      addr: 127.0.0.1:%[3]d
`, name, bindPort, serverPort)
}

// TestTenantsManifestEditKeepsConnection: with run --manifests DIR, an edit
// of tenant B's file (inotify), a refused invalid edit, a SIGHUP and an API
// apply of another tenant all leave tenant A's listener and its
// established connection alone; B's change is served.
func TestTenantsManifestEditKeepsConnection(t *testing.T) {
	nsproxyBin(t)
	serveTag(t, "", "127.0.0.1:20061", "A")
	serveTag(t, "", "127.0.0.1:20063", "B")
	serveTag(t, "", "127.0.0.1:20066", "C")
	mdir := t.TempDir()
	writeFile(t, mdir, "a.yaml", tenantWithFrontend("a", 20060, 20061))
	writeFile(t, mdir, "b.yaml", tenantWithFrontend("b", 20062, 20063))
	d := startDaemon(t, nil, "--manifests", mdir, "--netns-dir", t.TempDir())
	d.waitLog("nsproxy running")
	expectTag(t, "", "127.0.0.1:20060", "A")
	expectTag(t, "", "127.0.0.1:20062", "B")
	c, tag, err := open(t, "", "127.0.0.1:20060")
	if err != nil || tag != "A" {
		t.Fatalf("connection through a-web: %q %v", tag, err)
	}
	defer c.c.Close()
	alive := func(when string) {
		t.Helper()
		if err := c.echo("still here " + when); err != nil {
			t.Fatalf("A's established connection broke %s: %v", when, err)
		}
	}
	alive("before")

	// B moves to another port: picked up by the directory watch.
	writeFile(t, mdir, "b.yaml", tenantWithFrontend("b", 20064, 20063))
	expectTag(t, "", "127.0.0.1:20064", "B")
	alive("after B's file changed")

	// An invalid edit is refused with FILE:LINE:COLUMN and changes nothing.
	writeFile(t, mdir, "b.yaml", tenantWithFrontend("b", 20065, 20063)+"---\napiVersion: nope\nkind: Tenant\nmetadata:\n  name: x\n")
	d.waitLog(filepath.Join(mdir, "b.yaml") + ":")
	expectTag(t, "", "127.0.0.1:20064", "B")
	alive("after a refused edit")

	// SIGHUP with the directory fixed again.
	writeFile(t, mdir, "b.yaml", tenantWithFrontend("b", 20064, 20063))
	d.signal(syscall.SIGHUP)
	alive("after SIGHUP")

	// An API apply of a third tenant.
	c3 := writeFile(t, t.TempDir(), "c.yaml", tenantWithFrontend("c", 20067, 20066))
	if out, err := d.cli("apply", "-f", c3); err != nil {
		t.Fatalf("apply c: %v\n%s", err, out)
	}
	expectTag(t, "", "127.0.0.1:20067", "C")
	alive("after an API apply")
	// The directory owns a: the API may not change it.
	a2 := writeFile(t, t.TempDir(), "a.yaml", tenantWithFrontend("a", 20068, 20061))
	if out, err := d.cli("apply", "-f", a2); err == nil || !strings.Contains(out, mdir) {
		t.Fatalf("API apply of a directory tenant: %v\n%s", err, out)
	}
	alive("after a refused API apply")

	// A refused connection counts on its frontend's tenant: d's bind
	// expects a PROXY header and gets garbage.
	dDoc := strings.Replace(tenantWithFrontend("d", 20069, 20066), "    - addr: 127.0.0.1:20069\n",
		"    - addr: 127.0.0.1:20069\n      acceptProxy: true\n", 1)
	if out, err := d.cli("apply", "-f", writeFile(t, t.TempDir(), "d.yaml", dDoc)); err != nil {
		t.Fatalf("apply d: %v\n%s", err, out)
	}
	eventually(t, "d's refusal in get tenants", func() error {
		if g, err := dialIn(t, "", "127.0.0.1:20069"); err == nil {
			g.Write([]byte("GARBAGE GARBAGE GARBAGE\r\n"))
			g.Close()
		}
		out, err := d.cli("get", "tenants", "d")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || strings.Fields(lines[1])[5] == "0" {
			return fmt.Errorf("no refusal yet:\n%s", out)
		}
		return nil
	})
	alive("after d's refusals")

	// get tenants: each tenant with its frontends and who owns it.
	out, err := d.cli("get", "tenants", "-o", "json")
	if err != nil {
		t.Fatalf("get tenants: %v\n%s", err, out)
	}
	var ts []struct {
		Name      string   `json:"name"`
		Source    string   `json:"source"`
		Owner     string   `json:"owner"`
		Frontends []string `json:"frontends"`
	}
	if err := json.Unmarshal([]byte(out), &ts); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]string{}
	for _, x := range ts {
		got[x.Name] = fmt.Sprintf("%s %s %v", x.Source, x.Owner, x.Frontends)
	}
	want := map[string]string{
		"a": "manifest-dir " + mdir + " [a-web]", "b": "manifest-dir " + mdir + " [b-web]",
		"c": "api  [c-web]", "d": "api  [d-web]", "default": "  []",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("tenants %v, want %v", got, want)
	}
}

// TestTenantsManifestDirInvalidAtStart: run --manifests with a directory
// that does not decode exits non-zero and names FILE:LINE:COLUMN, as an
// invalid -f file does.
func TestTenantsManifestDirInvalidAtStart(t *testing.T) {
	nsproxyBin(t)
	mdir := t.TempDir()
	writeFile(t, mdir, "ok.yaml", tenantWithFrontend("a", 20060, 20061))
	bad := writeFile(t, mdir, "bad.yml", "apiVersion: nsproxy.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: a\n")
	d := startDaemon(t, nil, "--manifests", mdir, "--netns-dir", t.TempDir())
	if err := d.wait(10 * time.Second); err == nil {
		t.Fatalf("the daemon started with an invalid manifest directory:\n%s", d.logs())
	}
	if !strings.Contains(d.logs(), bad+":1:1") {
		t.Fatalf("the error does not name %s:1:1:\n%s", bad, d.logs())
	}
	// A directory that does not exist is an error too.
	d2 := startDaemon(t, nil, "--manifests", filepath.Join(mdir, "nope"), "--netns-dir", t.TempDir())
	if err := d2.wait(10 * time.Second); err == nil || !strings.Contains(d2.logs(), "nope") {
		t.Fatalf("the daemon started without its manifest directory (%v):\n%s", err, d2.logs())
	}
}
