package sidecar

import (
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/metrics"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// scrape returns the /metrics page's samples: series (name{labels}) to value.
func scrape(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// serveTagIn answers tag on 127.0.0.1:port inside the namespace ns.
func serveTagIn(t *testing.T, ns string, port uint16, tag string) {
	t.Helper()
	h, err := netns.OpenPath("/var/run/netns/"+ns, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ln, err := h.Listen(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))
	if err != nil {
		t.Fatal(err)
	}
	serveTag(t, ln, tag)
}

// serveTag answers every connection to ln with tag and closes it, until
// the test ends.
func serveTag(t *testing.T, ln net.Listener, tag string) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(tag))
			c.Close()
		}
	}()
}

// TestMetricsForgetRemovedNamespaces: after attachments that carried
// traffic are deleted, /metrics keeps no series of their namespaces,
// exposures' frontends, backends or servers; the namespaces' totals are
// folded into the nsproxy_namespace_removed_* counters. Before, every
// namespace that ever carried a connection kept its four series forever.
func TestMetricsForgetRemovedNamespaces(t *testing.T) {
	const n = 12
	td := startTestDaemon(t, restoreCfg("127.0.0.1:19370", "127.0.0.1:19371"), "")
	d := td.d
	m := metrics.New(metrics.Source{Snapshot: d.Engine().Snapshot,
		RegistrySize: func() int { return len(d.Registry().Status()) }, Attachments: d.AttachmentCount})
	var keys []api.AttachmentKey
	for i := 0; i < n; i++ {
		ns := testns.New(t, fmt.Sprintf("m%d", i))
		serveTagIn(t, ns, 80, "hello")
		a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: fmt.Sprintf("churn%d", i), IfName: "eth0"},
			Netns: "/var/run/netns/" + ns, Metadata: map[string]string{hooks.MetaTarget: "loopback"},
			PortMappings: []api.PortMapping{{HostPort: 19372 + i, ContainerPort: 80, Protocol: "tcp"}}}
		if _, err := d.PutAttachment(a); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.AttachmentKey)
		if err := answers(fmt.Sprintf("127.0.0.1:%d", 19372+i), "hello", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Every connection has ended (no series moves any more) before the
	// totals are read.
	var before map[string]float64
	for deadline := time.Now().Add(5 * time.Second); ; {
		before = scrape(t, m)
		if before["nsproxy_connections_current"] == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var conns, in, out float64
	for i := 0; i < n; i++ {
		lv := fmt.Sprintf(`{netns="cni-churn%d-eth0"}`, i)
		if before["nsproxy_namespace_connections_total"+lv] < 1 {
			t.Fatalf("no connection counted for %s before the delete", lv)
		}
		conns += before["nsproxy_namespace_connections_total"+lv]
		in += before["nsproxy_namespace_bytes_in_total"+lv]
		out += before["nsproxy_namespace_bytes_out_total"+lv]
	}
	for _, k := range keys {
		if err := d.DeleteAttachment(k); err != nil {
			t.Fatal(err)
		}
	}
	after := scrape(t, m)
	for series := range after {
		if strings.Contains(series, `"cni-churn`) {
			t.Errorf("series of a deleted attachment left: %s", series)
		}
	}
	for series, want := range map[string]float64{
		"nsproxy_namespace_removed_total":                      n,
		"nsproxy_namespace_removed_connections_total":          conns,
		"nsproxy_namespace_removed_bytes_in_total":             in,
		"nsproxy_namespace_removed_bytes_out_total":            out,
		`nsproxy_namespace_connections_total{netns="default"}`: before[`nsproxy_namespace_connections_total{netns="default"}`],
	} {
		if got, ok := after[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
}
