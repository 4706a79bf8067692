//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Host ports of these tests (the tenant helper's range, 20100-20199):
// exposures on 127.0.0.1:20100-20199, the accept-proxy frontend on
// 127.0.0.2:20160, metrics on 127.0.0.2:20199.

// applyYAML writes manifest documents to a file and applies them with
// `nsproxy apply -f`, the user's own path.
func applyYAML(t *testing.T, d *daemon, docs string) {
	t.Helper()
	f := writeFile(t, t.TempDir(), "tenants.yaml", docs)
	if out, err := d.cli("apply", "-f", f); err != nil {
		t.Fatalf("nsproxy apply -f %s: %v\n%s\n%s", f, err, out, docs)
	}
}

// tenantYAMLFor is a Tenant whose containers are those of the CNI network
// network; extra is more of its spec, indented by four spaces.
func tenantYAMLFor(name, network, extra string) string {
	return fmt.Sprintf(`apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: %s
spec:
  select:
    - network: %s
%s`, name, network, extra)
}

// sameSubnet rewrites n's conflist to give its containers addresses of
// subnet from a bridge without a gateway address, so that two networks
// can hand out the same container addresses on one host.
func sameSubnet(t *testing.T, n *cniNet, subnet string) {
	t.Helper()
	path := filepath.Join(n.confDir, n.name+".conflist")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cl map[string]any
	if err := json.Unmarshal(b, &cl); err != nil {
		t.Fatal(err)
	}
	br := cl["plugins"].([]any)[0].(map[string]any)
	br["isGateway"] = false
	br["ipam"].(map[string]any)["subnet"] = subnet
	b, _ = json.MarshalIndent(cl, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// attachmentsJSON is `nsproxy get attachments -o json`, by container ID.
func attachmentsJSON(t *testing.T, d *daemon) map[string]attachmentView {
	t.Helper()
	out, err := d.cli("get", "attachments", "-o", "json")
	if err != nil {
		t.Fatalf("get attachments: %v\n%s", err, out)
	}
	var list []attachmentView
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("get attachments printed %q: %v", out, err)
	}
	m := map[string]attachmentView{}
	for _, a := range list {
		m[a.ContainerID] = a
	}
	return m
}

// attachmentView is what these tests read of an attachment.
type attachmentView struct {
	ContainerID string   `json:"containerID"`
	Name        string   `json:"name"`
	IPs         []string `json:"ips"`
	Owner       string   `json:"owner"`
	Problems    []string `json:"problems"`
	Exposures   []struct {
		HostPort      int    `json:"hostPort"`
		HostIP        string `json:"hostIP"`
		ContainerPort int    `json:"containerPort"`
		Rule          string `json:"rule"`
	} `json:"exposures"`
}

// scrapeMetric is the value of the first /metrics sample whose line starts
// with prefix.
func scrapeMetric(t *testing.T, addr, prefix string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		if line := s.Text(); strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestTenantsIsolation: two tenants on one host whose containers have the
// same address (two bridges, one subnet), their namespaces registered by
// nsproxy-cni through cnitool and claimed by the tenants' network
// selectors. Each attachment belongs to its tenant; a PROXY v2 NETNS TLV
// naming a namespace of another tenant than the frontend's is refused,
// logged and counted with reason "tenant"; a TLV naming one of the
// frontend's tenant is served.
//
// Two frontends: the files' (the default tenant's) and tenant ta's own
// (spec.frontends of its manifest).
func TestTenantsIsolation(t *testing.T) {
	nsproxyBin(t)
	own := newNS(t, "D")
	sh(t, "ip", "-n", own, "addr", "add", "10.234.7.2/32", "dev", "lo")
	serveTag(t, own, "10.234.7.2:80", "default-ns")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "nsproxy.cfg", fmt.Sprintf(`
namespace_list
    namespace %s
frontend pp
    bind 127.0.0.2:20160 accept-proxy
    default_backend star
backend star
    server any *:80 namespace *
`, own))
	// The nets' names are known only once made: make them first, with a
	// placeholder socket, then point them at the daemon.
	sock := filepath.Join(dir, "ctl.sock")
	netA, netB := newCNINet(t, sock), newCNINet(t, sock)
	sameSubnet(t, netA, "10.234.9.0/24")
	sameSubnet(t, netB, "10.234.9.0/24")
	d := startDaemon(t, nil, "-f", cfg, "--socket", sock, "--state-file", filepath.Join(dir, "state.json"),
		"--attachment-dir", "none", "--metrics-addr", "127.0.0.2:20199")
	d.waitLog("control socket listening")
	// Tenant ta's own PROXY entry point: its TLVs pick the namespace.
	applyYAML(t, d, tenantYAMLFor("ta", netA.name, `  frontends:
    - name: ta-pp
      binds:
        - addr: 127.0.0.2:20161
          acceptProxy: true
      backend: ta-star
  backends:
    - name: ta-star
      servers:
        - name: any
          addr: "*:80"
          namespace: "*"
`)+"---\n"+tenantYAMLFor("tb", netB.name, ""))

	nsA, nsB := newNS(t, "TA"), newNS(t, "TB")
	ipA, ipB := netA.add(nsA, 0), netB.add(nsB, 0)
	if ipA != ipB {
		t.Fatalf("containers got %s and %s; the test needs the same address in both", ipA, ipB)
	}
	serveTag(t, nsA, ipA+":80", "tenant-a")
	serveTag(t, nsB, ipB+":80", "tenant-b")
	atts := attachmentsJSON(t, d)
	a, b := atts[containerID(nsA)], atts[containerID(nsB)]
	if a.Owner != "ta" || b.Owner != "tb" {
		t.Fatalf("owners: %s=%q %s=%q, want ta and tb", a.Name, a.Owner, b.Name, b.Owner)
	}
	out, err := d.cli("get", "namespaces", "-o", "json")
	if flat := strings.ReplaceAll(out, " ", ""); err != nil || !strings.Contains(flat, `"tenant":"ta"`) || !strings.Contains(flat, `"tenant":"tb"`) {
		t.Errorf("get namespaces: %v, want ta's and tb's namespaces\n%s", err, out)
	}

	d.waitLog("msg=listening")
	src := netip.MustParseAddrPort("192.0.2.9:4000")
	dst := netip.MustParseAddrPort(ipA + ":80")
	var got string
	eventually(t, "the files' namespace served by TLV", func() error {
		var err error
		got, err = trySendHeader(t, "", "127.0.0.2:20160", v2Header(src, netip.MustParseAddrPort("10.234.7.2:80"), own))
		if err == nil && got != "default-ns" {
			return fmt.Errorf("answered %q", got)
		}
		return err
	})
	for _, ns := range []string{a.Name, b.Name} {
		if got := sendHeader(t, "", "127.0.0.2:20160", v2Header(src, dst, ns)); got != "" {
			t.Errorf("TLV %s (a tenant's) on the default tenant's frontend: served %q, want refused", ns, got)
		}
	}
	d.waitLog("reason=tenant")

	// Tenant ta's frontend: its TLV reaches ta's container, and is refused
	// for tb's container (the same address) and for the files' namespace.
	eventually(t, "ta's container by TLV on ta's frontend", func() error {
		got, err := trySendHeader(t, "", "127.0.0.2:20161", v2Header(src, dst, a.Name))
		if err == nil && got != "tenant-a" {
			return fmt.Errorf("answered %q", got)
		}
		return err
	})
	for _, ns := range []string{b.Name, own} {
		if got := sendHeader(t, "", "127.0.0.2:20161", v2Header(src, dst, ns)); got != "" {
			t.Errorf("TLV %s on tenant ta's frontend: served %q, want refused", ns, got)
		}
	}
	d.waitLog(fmt.Sprintf(`frontend=ta-pp client=192.0.2.9:4000 netns_tlv="\"%s\"" reason=tenant`, b.Name))
	eventually(t, "refusals counted by reason tenant", func() error {
		for _, m := range []string{`nsproxy_frontend_refusals_total{frontend="pp",reason="tenant",tenant="default"}`,
			`nsproxy_frontend_refusals_total{frontend="ta-pp",reason="tenant",tenant="ta"}`} {
			if v, ok := scrapeMetric(t, "127.0.0.2:20199", m); !ok || v != 2 {
				return fmt.Errorf("%s = %v (found %v), want 2", m, v, ok)
			}
		}
		return nil
	})
}

// TestTenantsExposure100: an Exposure rule with a port range exposes each
// of 100 containers of its tenant (cnitool + nsproxy-cni) on its own host
// port, reported in `get attachments`; CNI DEL of all of them closes every
// port, and the daemon's fds and goroutines come back to where they were.
func TestTenantsExposure100(t *testing.T) {
	nsproxyBin(t)
	const n = 100
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	cn := newCNINet(t, sock)
	cfg := writeFile(t, dir, "empty.cfg", "# attachments only\n")
	d := startDaemon(t, nil, "-f", cfg, "--socket", sock, "--state-file", filepath.Join(dir, "state.json"),
		"--attachment-dir", "none", "--metrics-addr", "127.0.0.2:20199")
	d.waitLog("control socket listening")
	applyYAML(t, d, tenantYAMLFor("ta", cn.name, "")+fmt.Sprintf(`---
apiVersion: nsproxy.io/v1alpha1
kind: Exposure
metadata:
  name: web
  tenant: ta
spec:
  select:
    network: %s
  containerPort: 80
  hostAddr: 127.0.0.1
  portRange: 20100-20199
`, cn.name))
	pid := d.cmd.Process.Pid
	var goBase float64
	eventually(t, "metrics", func() error {
		var ok bool
		if goBase, ok = scrapeMetric(t, "127.0.0.2:20199", "go_goroutines "); !ok {
			return fmt.Errorf("no go_goroutines")
		}
		return nil
	})
	fdBase := fdCount(t, pid)

	nss := make([]string, n)
	ips := map[string]string{}
	hc := controlHTTP(sock)
	var lat []time.Duration
	start := time.Now()
	for i := range nss {
		nss[i] = newNS(t, "X")
		ips[containerID(nss[i])] = cn.add(nss[i], 0)
		// Exposed when ADD returns: the first connect after it, to the
		// port the daemon reports, is accepted (no retry).
		added := time.Now()
		port := exposedPort(t, hc, containerID(nss[i]))
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			t.Fatalf("container %d: its port %d refused right after ADD returned: %v", i, port, err)
		}
		lat = append(lat, time.Since(added))
		c.Close()
	}
	slices.Sort(lat)
	t.Logf("%d cnitool ADDs in %v; from ADD's return to the exposure accepting (GET of its port included): p50 %v, p99 %v, max %v",
		n, time.Since(start).Round(time.Millisecond), lat[n/2], lat[n*99/100], lat[n-1])
	atts := attachmentsJSON(t, d)
	ports := map[int]string{}
	for i, ns := range nss {
		a := atts[containerID(ns)]
		if len(a.Exposures) != 1 || a.Exposures[0].Rule != "web" || a.Exposures[0].ContainerPort != 80 {
			t.Fatalf("container %d (%s): exposures %+v problems %v", i, a.Name, a.Exposures, a.Problems)
		}
		p := a.Exposures[0].HostPort
		if p < 20100 || p > 20199 || ports[p] != "" {
			t.Fatalf("container %d got host port %d (also %q's)", i, p, ports[p])
		}
		ports[p] = ns
		serveTag(t, ns, ips[containerID(ns)]+":80", ns)
	}
	for p, ns := range ports {
		expectTag(t, "", fmt.Sprintf("127.0.0.1:%d", p), ns)
	}
	g, _ := scrapeMetric(t, "127.0.0.2:20199", "go_goroutines ")
	t.Logf("with %d containers exposed: fds %d (before %d), goroutines %v (before %v)", n, fdCount(t, pid), fdBase, g, goBase)

	for _, ns := range nss {
		if out, errOut, err := cn.run("del", ns, ""); err != nil {
			t.Fatalf("cnitool del: %v\n%s%s", err, out, errOut)
		}
	}
	for p := range ports {
		eventually(t, "listener closed after DEL", func() error { return refused(fmt.Sprintf("127.0.0.1:%d", p)) })
	}
	if atts := attachmentsJSON(t, d); len(atts) != 0 {
		t.Errorf("%d attachments left after DEL", len(atts))
	}
	// Every fd and goroutine of the 100 containers is gone (a little
	// slack for the CLI's and the scrape's own connections).
	eventually(t, "fds and goroutines back to the baseline", func() error {
		fds := fdCount(t, pid)
		g, _ := scrapeMetric(t, "127.0.0.2:20199", "go_goroutines ")
		if fds > fdBase+2 || g > goBase+4 {
			return fmt.Errorf("fds %d (before %d), goroutines %v (before %v)", fds, fdBase, g, goBase)
		}
		t.Logf("after DEL of all: fds %d (before %d), goroutines %v (before %v)", fds, fdBase, g, goBase)
		return nil
	})
}

// exposedPort asks the daemon (control API) for the host port of the
// container's one exposure.
func exposedPort(t *testing.T, hc *http.Client, id string) int {
	t.Helper()
	resp, err := hc.Get("http://nsproxy/v1/attachments/" + id + "/eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a attachmentView
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || len(a.Exposures) != 1 {
		t.Fatalf("attachment %s: %v %+v (status %d)", id, err, a, resp.StatusCode)
	}
	return a.Exposures[0].HostPort
}
