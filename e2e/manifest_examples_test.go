//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestManifestExamples applies manifests/examples/ (the two-tenant example
// the README shows) exactly as a user would: `nsproxy apply -f DIR`. The
// daemon runs in a namespace of its own (its "host", so the example's
// fixed host ports are free) with a private netns directory holding the
// example's static namespaces. `get tenants` lists both tenants with their
// namespaces and frontends; `diff -f` exits 0 after the apply and 1 after
// an edit; both tenants' frontends serve: analytics' reports through its
// server in analytics-db (with the PROXY v2 header it asks for), shop's
// shop-https to web1 in shop-web for a PROXY header from a trusted peer,
// and not for one from another peer.
func TestManifestExamples(t *testing.T) {
	nsproxyBin(t)
	examples, err := filepath.Abs("../manifests/examples")
	if err != nil {
		t.Fatal(err)
	}
	host := newNS(t, "H")
	// The example's frontend reports listens on 192.0.2.10:9000 of the host.
	sh(t, "ip", "-n", host, "addr", "add", "192.0.2.10/32", "dev", "lo")
	static := map[string]string{}
	for _, n := range []string{"shop-web", "shop-db", "analytics-db"} {
		static[n] = newNS(t, "S")
	}
	// Server r1 of backend reports: 10.88.0.5:9000 in analytics-db, sent
	// a PROXY v2 header (sendProxy: 2); it answers with the header's source.
	sh(t, "ip", "-n", static["analytics-db"], "addr", "add", "10.88.0.5/32", "dev", "lo")
	serveFunc(t, static["analytics-db"], "10.88.0.5:9000", func(c io.ReadWriter) {
		hdr := make([]byte, 16)
		if _, err := io.ReadFull(c, hdr); err != nil || !bytes.HasPrefix(hdr, []byte("\r\n\r\n\x00\r\nQUIT\n")) {
			fmt.Fprintf(c, "no PROXY v2 header: %q\n", hdr)
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[14:]))
		if _, err := io.ReadFull(c, body); err != nil || hdr[13] != 0x11 || len(body) < 12 {
			fmt.Fprintf(c, "bad PROXY v2 header: %q %q\n", hdr, body)
			return
		}
		fmt.Fprintf(c, "reports from %s\n", netip.AddrFrom4([4]byte(body[:4])))
	})
	// Server web1 of backend shop-web: 127.0.0.1:8080 in shop-web.
	serveFunc(t, static["shop-web"], "127.0.0.1:8080", func(c io.ReadWriter) { io.WriteString(c, "shop-web\n") })
	// A peer of shop's trusted load balancers (spec.proxy.trustedProxies:
	// 10.0.0.0/24) on the host.
	sh(t, "ip", "-n", host, "addr", "add", "10.0.0.7/32", "dev", "lo")
	dir := netnsDir(t, static)
	d := startDaemon(t, []string{"ip", "netns", "exec", host}, "--netns-dir", dir)
	d.waitLog("control socket listening")

	if out, err := d.cli("apply", "-f", examples); err != nil {
		t.Fatalf("nsproxy apply -f %s: %v\n%s", examples, err, out)
	}
	out, err := d.cli("get", "tenants")
	if err != nil {
		t.Fatalf("get tenants: %v\n%s", err, out)
	}
	for tenant, want := range map[string][]string{
		"shop":      {"shop-web", "shop-db", "shop-https"},
		"analytics": {"analytics-db", "reports"},
	} {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == tenant {
				line = l
			}
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("get tenants: tenant %s's line %q lacks %s\n%s", tenant, line, w, out)
			}
		}
	}

	if code, out := exitCode(d.cli("diff", "-f", examples)); code != 0 {
		t.Errorf("diff right after apply: exit %d, want 0\n%s", code, out)
	}
	// An edited copy of the example: diff shows the change and exits 1.
	b, err := os.ReadFile(filepath.Join(examples, "tenants.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "maxConnections: 2000\n", "maxConnections: 3000\n", 1)
	if edited == string(b) {
		t.Fatal("the example no longer says maxConnections: 2000; update this test's edit")
	}
	f := writeFile(t, t.TempDir(), "tenants.yaml", edited)
	if code, out := exitCode(d.cli("diff", "-f", f)); code != 1 || !strings.Contains(out, "Tenant/analytics") {
		t.Errorf("diff after an edit: exit %d, want 1 naming Tenant/analytics\n%s", code, out)
	}

	for _, n := range []string{"shop-web", "shop-db", "analytics-db"} {
		d.waitLog(`msg="namespace available" netns=` + n + " ")
	}
	d.waitLog("msg=listening frontend=reports")
	eventually(t, "frontend reports (analytics) serves with PROXY v2 to its server", func() error {
		c, err := dialIn(t, host, "192.0.2.10:9000")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if line != "reports from 192.0.2.10\n" {
			return fmt.Errorf("answered %q (%v)", line, err)
		}
		return nil
	})
	// shop-https takes a PROXY v2 header from a trusted peer and forwards to
	// web1 in shop-web (or the backup in the namespace the header names).
	d.waitLog("msg=listening frontend=shop-https")
	hdr := v2Header(netip.MustParseAddrPort("198.51.100.7:40000"), netip.MustParseAddrPort("10.0.0.7:8443"), "")
	eventually(t, "frontend shop-https (shop) serves", func() error {
		got, err := trySendHeader(t, host, "10.0.0.7:8443", hdr)
		if err == nil && got != "shop-web" {
			return fmt.Errorf("answered %q", got)
		}
		return err
	})
	d.waitLog("frontend=shop-https backend=shop-web server=web1 client=198.51.100.7:40000")
	if got := sendHeader(t, host, "127.0.0.1:8443", hdr); got != "" {
		t.Errorf("a PROXY header from 127.0.0.1 (not in shop's trustedProxies) was served: %q", got)
	}
}

// exitCode is a CLI run's exit status (-1: it did not run) and output.
func exitCode(out string, err error) (int, string) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out
	case errors.As(err, &ee):
		return ee.ExitCode(), out
	}
	return -1, fmt.Sprint(out, err)
}
