package metrics

import (
	"bufio"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

// fakeSnapshot has two frontends (one with refusals and a listener down),
// servers up, down and unchecked in the default, a named and the client's
// namespace, an empty backend and two namespaces.
func fakeSnapshot() proxy.Snapshot {
	return proxy.Snapshot{
		Connections: 5, PooledSockets: 7,
		Frontends: []proxy.FrontendStats{
			{Name: "web", Tenant: "acme", Backend: "app", Current: 4, Total: 100, BytesIn: 123456, BytesOut: 654321,
				Refusals: map[string]uint64{"timeout": 2, "netns_not_allowed": 1}, AcceptErrors: 3,
				Listeners: []proxy.ListenerState{
					{Frontend: "web", Listening: true, Addr: "10.0.0.1:80", Netns: "default"},
					{Frontend: "web", Netns: "blue", Err: "namespace gone"},
				}},
			{Name: "api", Tenant: "beta", Backend: "empty", Current: 1, Total: 7, BytesIn: 10, BytesOut: 20},
		},
		Backends: []proxy.BackendStats{
			{Name: "app", Total: 90, ConnectErrors: 4, Servers: []proxy.ServerStats{
				{Name: "s1", Addr: "10.0.0.2:8080", Up: true, Checked: true, Active: 3, Total: 60,
					BytesIn: 1000, BytesOut: 2000, ConnectErrors: 1},
				{Name: "s2", Addr: "10.0.0.3:8080", Namespace: "blue", Up: false, Checked: true,
					Total: 10, ConnectErrors: 3},
				{Name: "s3", Addr: "127.0.0.1:+1000", Namespace: "*", Up: true, Active: 1, Total: 20,
					BytesIn: 5, BytesOut: 6},
			}},
			{Name: "empty"},
		},
		Namespaces: []proxy.NamespaceStats{
			{Name: "blue", Current: 1, Total: 30, BytesIn: 7, BytesOut: 8},
			{Name: "default", Current: 4, Total: 95, BytesIn: 123450, BytesOut: 654300},
		},
		RemovedNamespaces: proxy.RemovedNamespaces{Namespaces: 2, Total: 40, BytesIn: 9, BytesOut: 11},
	}
}

// fullSeries is what fakeSnapshot with RegistrySize 3 and Attachments 2
// must expose, every engine series and nothing else.
var fullSeries = []string{
	`nsproxy_connections_current 5`,
	`nsproxy_pooled_sockets 7`,
	`nsproxy_registry_namespaces 3`,
	`nsproxy_attachments 2`,

	`nsproxy_frontend_connections_current{frontend="web",tenant="acme"} 4`,
	`nsproxy_frontend_connections_total{frontend="web",tenant="acme"} 100`,
	`nsproxy_frontend_bytes_in_total{frontend="web",tenant="acme"} 123456`,
	`nsproxy_frontend_bytes_out_total{frontend="web",tenant="acme"} 654321`,
	`nsproxy_frontend_refusals_total{frontend="web",reason="timeout",tenant="acme"} 2`,
	`nsproxy_frontend_refusals_total{frontend="web",reason="netns_not_allowed",tenant="acme"} 1`,
	`nsproxy_frontend_accept_errors_total{frontend="web",tenant="acme"} 3`,
	`nsproxy_frontend_listeners_up{frontend="web",tenant="acme"} 1`,
	`nsproxy_frontend_listeners_configured{frontend="web",tenant="acme"} 2`,
	`nsproxy_frontend_connections_current{frontend="api",tenant="beta"} 1`,
	`nsproxy_frontend_connections_total{frontend="api",tenant="beta"} 7`,
	`nsproxy_frontend_bytes_in_total{frontend="api",tenant="beta"} 10`,
	`nsproxy_frontend_accept_errors_total{frontend="api",tenant="beta"} 0`,
	`nsproxy_frontend_bytes_out_total{frontend="api",tenant="beta"} 20`,
	`nsproxy_frontend_listeners_up{frontend="api",tenant="beta"} 0`,
	`nsproxy_frontend_listeners_configured{frontend="api",tenant="beta"} 0`,

	`nsproxy_backend_connections_total{backend="app"} 90`,
	`nsproxy_backend_connect_errors_total{backend="app"} 4`,
	`nsproxy_backend_connections_total{backend="empty"} 0`,
	`nsproxy_backend_connect_errors_total{backend="empty"} 0`,

	`nsproxy_server_up{backend="app",netns="default",server="s1"} 1`,
	`nsproxy_server_checked{backend="app",netns="default",server="s1"} 1`,
	`nsproxy_server_connections_current{backend="app",netns="default",server="s1"} 3`,
	`nsproxy_server_connections_total{backend="app",netns="default",server="s1"} 60`,
	`nsproxy_server_bytes_in_total{backend="app",netns="default",server="s1"} 1000`,
	`nsproxy_server_bytes_out_total{backend="app",netns="default",server="s1"} 2000`,
	`nsproxy_server_connect_errors_total{backend="app",netns="default",server="s1"} 1`,
	`nsproxy_server_up{backend="app",netns="blue",server="s2"} 0`,
	`nsproxy_server_checked{backend="app",netns="blue",server="s2"} 1`,
	`nsproxy_server_connections_current{backend="app",netns="blue",server="s2"} 0`,
	`nsproxy_server_connections_total{backend="app",netns="blue",server="s2"} 10`,
	`nsproxy_server_bytes_in_total{backend="app",netns="blue",server="s2"} 0`,
	`nsproxy_server_bytes_out_total{backend="app",netns="blue",server="s2"} 0`,
	`nsproxy_server_connect_errors_total{backend="app",netns="blue",server="s2"} 3`,
	`nsproxy_server_up{backend="app",netns="*",server="s3"} 1`,
	`nsproxy_server_checked{backend="app",netns="*",server="s3"} 0`,
	`nsproxy_server_connections_current{backend="app",netns="*",server="s3"} 1`,
	`nsproxy_server_connections_total{backend="app",netns="*",server="s3"} 20`,
	`nsproxy_server_bytes_in_total{backend="app",netns="*",server="s3"} 5`,
	`nsproxy_server_bytes_out_total{backend="app",netns="*",server="s3"} 6`,
	`nsproxy_server_connect_errors_total{backend="app",netns="*",server="s3"} 0`,

	`nsproxy_namespace_connections_current{netns="blue"} 1`,
	`nsproxy_namespace_connections_total{netns="blue"} 30`,
	`nsproxy_namespace_bytes_in_total{netns="blue"} 7`,
	`nsproxy_namespace_bytes_out_total{netns="blue"} 8`,
	`nsproxy_namespace_connections_current{netns="default"} 4`,
	`nsproxy_namespace_connections_total{netns="default"} 95`,
	`nsproxy_namespace_bytes_in_total{netns="default"} 123450`,
	`nsproxy_namespace_bytes_out_total{netns="default"} 654300`,
	`nsproxy_namespace_removed_total 2`,
	`nsproxy_namespace_removed_connections_total 40`,
	`nsproxy_namespace_removed_bytes_in_total 9`,
	`nsproxy_namespace_removed_bytes_out_total 11`,
}

// families is every family the package defines, with its type.
var families = map[string]string{
	"nsproxy_connections_current":                 "gauge",
	"nsproxy_pooled_sockets":                      "gauge",
	"nsproxy_registry_namespaces":                 "gauge",
	"nsproxy_attachments":                         "gauge",
	"nsproxy_frontend_connections_current":        "gauge",
	"nsproxy_frontend_connections_total":          "counter",
	"nsproxy_frontend_bytes_in_total":             "counter",
	"nsproxy_frontend_bytes_out_total":            "counter",
	"nsproxy_frontend_refusals_total":             "counter",
	"nsproxy_frontend_accept_errors_total":        "counter",
	"nsproxy_frontend_listeners_up":               "gauge",
	"nsproxy_frontend_listeners_configured":       "gauge",
	"nsproxy_backend_connections_total":           "counter",
	"nsproxy_backend_connect_errors_total":        "counter",
	"nsproxy_server_up":                           "gauge",
	"nsproxy_server_checked":                      "gauge",
	"nsproxy_server_connections_current":          "gauge",
	"nsproxy_server_connections_total":            "counter",
	"nsproxy_server_bytes_in_total":               "counter",
	"nsproxy_server_bytes_out_total":              "counter",
	"nsproxy_server_connect_errors_total":         "counter",
	"nsproxy_namespace_connections_current":       "gauge",
	"nsproxy_namespace_connections_total":         "counter",
	"nsproxy_namespace_bytes_in_total":            "counter",
	"nsproxy_namespace_bytes_out_total":           "counter",
	"nsproxy_namespace_removed_total":             "counter",
	"nsproxy_namespace_removed_connections_total": "counter",
	"nsproxy_namespace_removed_bytes_in_total":    "counter",
	"nsproxy_namespace_removed_bytes_out_total":   "counter",
	"nsproxy_reconcile_duration_seconds":          "histogram",
	"nsproxy_reconcile_failures_total":            "counter",
}

// scrape GETs the handler and returns the body.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d, body:\n%s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// engineSeries returns the nsproxy_ sample lines of body, leaving out the
// reconcile instruments, which exist whatever the source.
func engineSeries(body string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "nsproxy_") && !strings.HasPrefix(l, "nsproxy_reconcile_") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

func TestHandlerExposesSnapshot(t *testing.T) {
	tests := []struct {
		name string
		src  Source
		want []string // exactly the engine series
		// also present: whole lines outside the engine series
		lines []string
	}{
		{
			name: "full snapshot",
			src: Source{
				Snapshot:     fakeSnapshot,
				RegistrySize: func() int { return 3 },
				Attachments:  func() int { return 2 },
			},
			want: fullSeries,
			lines: []string{
				"# HELP nsproxy_server_up 1 if new connections may go to the server: not disabled, weight above 0, its namespace present, and its last health check passed (or it is not checked); 0 otherwise. See nsproxy_server_checked.",
				"nsproxy_reconcile_failures_total 0",
				"nsproxy_reconcile_duration_seconds_count 0",
			},
		},
		{
			name: "empty snapshot without attachments",
			src: Source{
				Snapshot:     func() proxy.Snapshot { return proxy.Snapshot{} },
				RegistrySize: func() int { return 0 },
			},
			want: []string{"nsproxy_connections_current 0", "nsproxy_pooled_sockets 0", "nsproxy_registry_namespaces 0",
				"nsproxy_namespace_removed_total 0", "nsproxy_namespace_removed_connections_total 0",
				"nsproxy_namespace_removed_bytes_in_total 0", "nsproxy_namespace_removed_bytes_out_total 0"},
		},
		{
			name: "registry only",
			src:  Source{RegistrySize: func() int { return 12 }},
			want: []string{"nsproxy_registry_namespaces 12"},
		},
		{
			name: "nil source",
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := scrape(t, New(tt.src).Handler())
			got := engineSeries(body)
			want := slices.Sorted(slices.Values(tt.want))
			for _, l := range want {
				if !slices.Contains(got, l) {
					t.Errorf("missing %s", l)
				}
			}
			for _, l := range got {
				if !slices.Contains(want, l) {
					t.Errorf("unexpected %s", l)
				}
			}
			for _, l := range tt.lines {
				if !strings.Contains(body, "\n"+l+"\n") {
					t.Errorf("missing line %q", l)
				}
			}
			// Go and process collectors come along.
			for _, p := range []string{"go_goroutines ", "process_start_time_seconds "} {
				if !strings.Contains(body, "\n"+p) {
					t.Errorf("no %s* in the exposition", p)
				}
			}
			if t.Failed() {
				t.Logf("exposition:\n%s", body)
			}
		})
	}
}

func TestEveryFamilyHasHelpAndType(t *testing.T) {
	m := New(Source{Snapshot: fakeSnapshot, RegistrySize: func() int { return 1 }, Attachments: func() int { return 1 }})
	body := scrape(t, m.Handler())
	for name, typ := range families {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(body, "\n# TYPE "+name+" "+typ+"\n") {
				t.Errorf("no TYPE %s line", typ)
			}
			if !strings.Contains(body, "\n# HELP "+name+" ") {
				t.Error("no HELP line")
			}
		})
	}
	// and no nsproxy_ family the table does not know
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "nsproxy_") {
			if _, ok := families[f[2]]; !ok {
				t.Errorf("family %s missing from the test table", f[2])
			}
		}
	}
}

func TestObserveReconcile(t *testing.T) {
	m := New(Source{})
	m.ObserveReconcile(3*time.Millisecond, nil)
	m.ObserveReconcile(2*time.Second, errors.New("listener: address in use"))
	m.ObserveReconcile(40*time.Second, nil)
	body := scrape(t, m.Handler())
	for _, l := range []string{
		`nsproxy_reconcile_duration_seconds_bucket{le="0.001"} 0`,
		`nsproxy_reconcile_duration_seconds_bucket{le="0.005"} 1`,
		`nsproxy_reconcile_duration_seconds_bucket{le="1"} 1`,
		`nsproxy_reconcile_duration_seconds_bucket{le="2.5"} 2`,
		`nsproxy_reconcile_duration_seconds_bucket{le="30"} 2`,
		`nsproxy_reconcile_duration_seconds_bucket{le="+Inf"} 3`,
		`nsproxy_reconcile_duration_seconds_sum 42.003`,
		`nsproxy_reconcile_duration_seconds_count 3`,
		`nsproxy_reconcile_failures_total 1`,
	} {
		if !strings.Contains(body, "\n"+l+"\n") {
			t.Errorf("missing %s", l)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", body)
	}
}

// The snapshot is taken at scrape time, once per scrape, and never before.
func TestSnapshotOncePerScrape(t *testing.T) {
	var calls atomic.Int32
	m := New(Source{Snapshot: func() proxy.Snapshot { calls.Add(1); return fakeSnapshot() }})
	if n := calls.Load(); n != 0 {
		t.Fatalf("New took %d snapshots, want 0", n)
	}
	scrape(t, m.Handler())
	scrape(t, m.Handler())
	if n := calls.Load(); n != 2 {
		t.Fatalf("2 scrapes took %d snapshots", n)
	}
}

// A pedantic registry checks that Collect only sends what Describe
// announced and that the descriptors are valid.
func TestCollectorIsConsistent(t *testing.T) {
	srcs := map[string]Source{
		"full":     {Snapshot: fakeSnapshot, RegistrySize: func() int { return 3 }, Attachments: func() int { return 2 }},
		"partial":  {RegistrySize: func() int { return 3 }},
		"snapshot": {Snapshot: fakeSnapshot},
	}
	for name, src := range srcs {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			if err := reg.Register(newCollector(src)); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.Gather(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A snapshot that would break the exposition (a duplicate frontend, a
// name that is not UTF-8) costs only its own series: no panic, no 500.
func TestBadSnapshotKeepsTheRest(t *testing.T) {
	src := Source{
		Snapshot: func() proxy.Snapshot {
			s := fakeSnapshot()
			s.Frontends = append(s.Frontends, s.Frontends[0])
			s.Backends = append(s.Backends, proxy.BackendStats{Name: "bad\xff"})
			return s
		},
		RegistrySize: func() int { return 3 },
	}
	body := scrape(t, New(src).Handler())
	for _, l := range []string{
		`nsproxy_registry_namespaces 3`,
		`nsproxy_backend_connections_total{backend="app"} 90`,
		`nsproxy_namespace_connections_total{netns="blue"} 30`,
	} {
		if !strings.Contains(body, "\n"+l+"\n") {
			t.Errorf("missing %s", l)
		}
	}
	if strings.Contains(body, `backend="bad`) {
		t.Errorf("invalid label value exposed:\n%s", body)
	}
}
