package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

var updateCLIGolden = flag.Bool("update-cli-golden", false, "rewrite cmd/nsproxy/testdata/cli/*.golden")

// cliTestNow is when the fake daemon's connections are looked at.
var cliTestNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// cliState is what the fake daemon serves.
type cliState struct {
	namespaces  []api.Namespace
	frontends   []api.Frontend
	backends    []api.Backend
	servers     []api.Server
	connections []api.Connection
	attachments []api.Attachment
	stats       api.Stats
}

func cliIntp(n int) *int { return &n }

func sampleCLIState() cliState {
	s1 := api.Server{Backend: "app", Name: "s1", Source: api.SourceConfig, Addr: "10.0.0.1:8080", Namespace: "blue",
		Check: true, Inter: "2s", Rise: 2, Fall: 3, Weight: cliIntp(10), Up: true, Active: 2, Total: 1200}
	s2 := api.Server{Backend: "app", Name: "s2", Source: api.SourceAPI, Addr: "*:8080", Namespace: "*",
		Backup: true, SendProxy: 2, ConnectErrors: 7, Weight: cliIntp(0), DownReason: "weight_zero"}
	e1 := api.Server{Backend: "edge", Name: "e1", Source: api.SourceConfig, Addr: "192.168.1.1:443", Disabled: true,
		DownReason: "disabled"}
	return cliState{
		namespaces: []api.Namespace{
			{Name: "blue", Path: "/var/run/netns/blue", Source: api.SourceConfig, Tenant: "default", Allowed: true,
				State: api.StateAvailable, Identity: &api.Identity{Dev: 4, Ino: 4026532281},
				UsedBy: []string{"frontend/web", "backend/app/server/s1"}},
			{Name: "cni-0123456789ab", Path: "/var/run/netns/cni-0123456789ab", Source: api.SourceCNI, Tenant: "default",
				Allowed: true, State: api.StateAvailable, Identity: &api.Identity{Dev: 4, Ino: 4026532999, Cookie: 12345},
				Metadata: map[string]string{"pod": "default/web-0", "containerID": "0123456789abcdef0123", "ifname": "eth0"},
				UsedBy:   []string{"attachment/0123456789abcdef0123/eth0"}},
			{Name: "gone", Path: "/proc/4242/ns/net", Source: api.SourceAPI, Tenant: "default", State: api.StateMissing},
		},
		frontends: []api.Frontend{
			{Name: "web", Source: api.SourceConfig, Backend: "app", MaxConn: 100, ClientTimeout: "30s",
				Binds: []api.Bind{{Addr: "0.0.0.0:80", Namespace: "blue"}, {Addr: "[::]:80", Namespace: "blue"}},
				Listeners: []api.Listener{{Addr: "0.0.0.0:80", Namespace: "blue", Listening: true},
					{Addr: "[::]:80", Namespace: "blue", Listening: true}},
				Current: 2, Total: 1234, BytesIn: 5000, BytesOut: 70000},
			{Name: "admin", Source: api.SourceAPI, Backend: "app",
				Binds:     []api.Bind{{Addr: "127.0.0.1:9000"}},
				Listeners: []api.Listener{{Addr: "127.0.0.1:9000", Error: "address already in use"}}},
		},
		backends: []api.Backend{
			{Name: "app", Source: api.SourceConfig, Balance: "roundrobin", ConnectTimeout: "5s", ServerTimeout: "1m",
				Servers: []api.Server{s1, s2}},
			{Name: "edge", Source: api.SourceConfig, Balance: "first", Servers: []api.Server{e1}},
			{Name: "spare", Source: api.SourceAPI},
		},
		servers: []api.Server{s1, s2, e1},
		connections: []api.Connection{
			{ID: 1, Frontend: "web", Backend: "app", Server: "s1", Client: "10.1.0.5:40000", ClientNetns: "blue",
				ServerNetns: "blue", Start: cliTestNow.Add(-75 * time.Second), BytesIn: 100, BytesOut: 2000},
			{ID: 18446744073709551615, Frontend: "web", Backend: "app", Server: "s2", Client: "10.1.0.6:40001",
				ClientNetns: "cni-0123456789ab", ServerNetns: "cni-0123456789ab", Start: cliTestNow.Add(-3*time.Hour - 5*time.Minute),
				BytesIn: 1 << 40},
		},
		attachments: []api.Attachment{
			{AttachmentKey: api.AttachmentKey{ContainerID: "0123456789abcdef0123", IfName: "eth0"},
				Netns: "/var/run/netns/cni-0123456789ab", Name: "cni-0123456789ab", Source: api.SourceCNI, Tenant: "default",
				IPs: []string{"10.88.0.5/16"},
				PortMappings: []api.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
					{HostPort: 5353, ContainerPort: 53, Protocol: "UDP", HostIP: "127.0.0.1"}},
				Metadata: map[string]string{"pod": "default/web-0"},
				State:    "ready", Exposed: []string{"cni-0123456789ab-8080"}},
			{AttachmentKey: api.AttachmentKey{ContainerID: "fedcba9876543210", IfName: "eth1"},
				Netns: "/proc/99/ns/net", Source: api.SourceOCI, State: "error",
				Problems: []string{"host port 8080 already used by frontend cni-0123456789ab-8080"}},
		},
		stats: api.Stats{Uptime: "3h2m1s", Namespaces: 3, Frontends: 2, Backends: 3, Servers: 3, ServersUp: 1,
			ServersDown: map[string]int{"disabled": 1, "weight_zero": 1},
			Connections: 2, Total: 1234, BytesIn: 1099511627876, BytesOut: 2000, Attachments: 2},
	}
}

// cliRequest is one request the fake daemon received.
type cliRequest struct {
	method, path string
	body         []byte
}

// cliDaemon serves st on a unix socket, like the daemon's control API.
type cliDaemon struct {
	socket string
	mu     sync.Mutex
	reqs   []cliRequest
}

func (d *cliDaemon) requests() []cliRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]cliRequest(nil), d.reqs...)
}

// lastBody decodes the body of the last request into v.
func (d *cliDaemon) lastBody(t *testing.T, v any) {
	t.Helper()
	reqs := d.requests()
	if len(reqs) == 0 {
		t.Fatal("the daemon got no request")
	}
	if err := json.Unmarshal(reqs[len(reqs)-1].body, v); err != nil {
		t.Fatalf("request body %q: %v", reqs[len(reqs)-1].body, err)
	}
}

func startCLIDaemon(t *testing.T, st cliState) *cliDaemon {
	t.Helper()
	d := &cliDaemon{socket: filepath.Join(t.TempDir(), "s.sock")}
	if len(d.socket) >= 100 {
		// A unix socket path must fit in 108 bytes.
		dir, err := os.MkdirTemp("/tmp", "nscli")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		d.socket = filepath.Join(dir, "s.sock")
	}
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	notFound := func(w http.ResponseWriter, what, name string) {
		reply(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("%s %q not found", what, name)})
	}
	mux := http.NewServeMux()
	list := func(path string, v any) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) { reply(w, 200, v) })
	}
	list("/v1/namespaces", st.namespaces)
	list("/v1/frontends", st.frontends)
	list("/v1/backends", st.backends)
	list("/v1/servers", st.servers)
	list("/v1/connections", st.connections)
	list("/v1/attachments", st.attachments)
	list("/v1/stats", st.stats)
	mux.HandleFunc("GET /v1/namespaces/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, n := range st.namespaces {
			if n.Name == r.PathValue("name") {
				reply(w, 200, n)
				return
			}
		}
		notFound(w, "namespace", r.PathValue("name"))
	})
	mux.HandleFunc("GET /v1/frontends/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, f := range st.frontends {
			if f.Name == r.PathValue("name") {
				reply(w, 200, f)
				return
			}
		}
		notFound(w, "frontend", r.PathValue("name"))
	})
	mux.HandleFunc("GET /v1/backends/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, b := range st.backends {
			if b.Name == r.PathValue("name") {
				reply(w, 200, b)
				return
			}
		}
		notFound(w, "backend", r.PathValue("name"))
	})
	mux.HandleFunc("GET /v1/attachments/{id}/{ifname}", func(w http.ResponseWriter, r *http.Request) {
		for _, a := range st.attachments {
			if a.ContainerID == r.PathValue("id") && a.IfName == r.PathValue("ifname") {
				reply(w, 200, a)
				return
			}
		}
		notFound(w, "attachment", r.PathValue("id")+"/"+r.PathValue("ifname"))
	})
	mux.HandleFunc("POST /v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		var n api.Namespace
		_ = json.NewDecoder(r.Body).Decode(&n)
		if n.Name == "blue" {
			reply(w, http.StatusConflict, api.Error{Error: `namespace "blue" already exists`,
				Details: []string{"source: config", "path: /var/run/netns/blue"}})
			return
		}
		n.Source, n.Allowed, n.State = api.SourceAPI, true, api.StateAvailable
		reply(w, http.StatusCreated, n)
	})
	mux.HandleFunc("DELETE /v1/namespaces/{name}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("name") {
		case "blue":
			reply(w, http.StatusConflict, api.Error{Error: `namespace "blue" is in use`,
				Details: []string{"frontend/web", "backend/app/server/s1"}})
		case "gone":
			w.WriteHeader(http.StatusNoContent)
		default:
			notFound(w, "namespace", r.PathValue("name"))
		}
	})
	mux.HandleFunc("POST /v1/backends/{backend}/servers", func(w http.ResponseWriter, r *http.Request) {
		var s api.Server
		_ = json.NewDecoder(r.Body).Decode(&s)
		if r.PathValue("backend") != "app" {
			notFound(w, "backend", r.PathValue("backend"))
			return
		}
		s.Source = api.SourceAPI
		reply(w, http.StatusCreated, s)
	})
	mux.HandleFunc("DELETE /v1/backends/{backend}/servers/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("backend") != "app" || r.PathValue("name") != "s2" {
			notFound(w, "server", r.PathValue("backend")+"/"+r.PathValue("name"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.reqs = append(d.reqs, cliRequest{method: r.Method, path: r.URL.EscapedPath(), body: body})
		d.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		mux.ServeHTTP(w, r)
	})

	ln, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: record, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return d
}

// pinCLINow makes connection ages relative to cliTestNow.
func pinCLINow(t *testing.T) {
	t.Helper()
	old := cliNow
	cliNow = func() time.Time { return cliTestNow }
	t.Cleanup(func() { cliNow = old })
}

// runCLI runs cmdCLI against the socket and returns its outputs. The
// --socket flag goes last, or just before a "--".
func runCLI(socket string, args ...string) (code int, stdout, stderr string) {
	at := len(args)
	if i := slices.Index(args, "--"); i >= 0 {
		at = i
	}
	args = slices.Insert(slices.Clone(args), at, "--socket", socket)
	var out, errOut bytes.Buffer
	code = cmdCLI(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// cliGolden compares got with testdata/cli/name.golden, or rewrites the file
// with -update-cli-golden.
func cliGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "cli", name+".golden")
	if *updateCLIGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update-cli-golden to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// checkTableAligned checks that every column of a table starts where its header
// does, as tabwriter lays them out; cells hold no spaces in these tables.
func checkTableAligned(t *testing.T, table string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	starts := func(line string) []int {
		var s []int
		for i := range line {
			if line[i] != ' ' && (i == 0 || line[i-1] == ' ') {
				s = append(s, i)
			}
		}
		return s
	}
	header := starts(lines[0])
	for _, h := range strings.Fields(lines[0]) {
		if h != strings.ToUpper(h) {
			t.Errorf("header %q is not upper case", h)
		}
	}
	for _, l := range lines[1:] {
		if got := starts(l); !reflect.DeepEqual(got, header) {
			t.Errorf("row %q: columns start at %v, header's at %v", l, got, header)
		}
	}
}

func TestCLIGetTable(t *testing.T) {
	pinCLINow(t)
	d := startCLIDaemon(t, sampleCLIState())
	tests := []struct {
		golden  string
		args    []string
		aligned bool // every cell is one word, so alignment can be checked by columns
	}{
		{"get-namespaces", []string{"get", "namespaces"}, true},
		{"get-namespaces-wide", []string{"get", "ns", "-o", "wide"}, true},
		{"get-namespace-blue", []string{"get", "ns", "blue"}, true},
		{"get-frontends", []string{"get", "frontends"}, true},
		{"get-frontends-wide", []string{"get", "-o", "wide", "fe"}, false},
		{"get-backends", []string{"get", "be"}, true},
		{"get-backends-wide", []string{"get", "backends", "--output=wide"}, true},
		{"get-servers", []string{"get", "servers"}, true},
		{"get-servers-wide", []string{"get", "servers", "-o", "wide"}, true},
		{"get-servers-app", []string{"get", "servers", "app"}, true},
		{"get-server-app-s2", []string{"get", "server", "app/s2"}, true},
		{"get-connections", []string{"get", "conns"}, true},
		{"get-connections-wide", []string{"get", "connections", "-o", "wide"}, true},
		{"get-connection-1", []string{"get", "connections", "1"}, true},
		{"get-attachments", []string{"get", "attachments"}, true},
		{"get-attachments-wide", []string{"get", "attachments", "-o", "wide"}, false},
		{"get-attachments-prefix", []string{"get", "attachments", "fedc"}, true},
		{"get-attachment-key", []string{"get", "attachment", "0123456789abcdef0123/eth0"}, true},
		{"stats", []string{"stats"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := runCLI(d.socket, tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			cliGolden(t, tt.golden, out)
			if tt.aligned {
				checkTableAligned(t, out)
			}
		})
	}
}

func TestCLIGetStructured(t *testing.T) {
	st := sampleCLIState()
	d := startCLIDaemon(t, st)
	tests := []struct {
		golden string
		args   []string
		want   any // what the output decodes to: the daemon's objects
	}{
		{"get-namespaces-json", []string{"get", "namespaces", "-o", "json"}, st.namespaces},
		{"get-namespaces-yaml", []string{"get", "namespaces", "-o", "yaml"}, st.namespaces},
		{"get-namespace-blue-json", []string{"get", "ns", "blue", "-o", "json"}, st.namespaces[0]},
		{"get-server-app-s1-yaml", []string{"get", "-o", "yaml", "servers", "app/s1"}, st.servers[0]},
		{"get-connections-yaml", []string{"get", "connections", "-o", "yaml"}, st.connections},
		{"get-attachments-json", []string{"get", "attachments", "-o", "json"}, st.attachments},
		{"stats-json", []string{"stats", "-o", "json"}, st.stats},
		{"stats-yaml", []string{"stats", "-o", "yaml"}, st.stats},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := runCLI(d.socket, tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			cliGolden(t, tt.golden, out)
			// Decode the output back: YAML through a generic value and JSON,
			// so it must use the json tags as keys.
			text := []byte(out)
			if strings.HasSuffix(tt.golden, "-yaml") {
				var generic any
				if err := yaml.Unmarshal(text, &generic); err != nil {
					t.Fatalf("output is not YAML: %v", err)
				}
				var err error
				if text, err = json.Marshal(generic); err != nil {
					t.Fatal(err)
				}
			}
			got := reflect.New(reflect.TypeOf(tt.want))
			if err := json.Unmarshal(text, got.Interface()); err != nil {
				t.Fatalf("output does not decode: %v", err)
			}
			if !reflect.DeepEqual(got.Elem().Interface(), tt.want) {
				t.Errorf("output decodes to\n%#v\nwant\n%#v", got.Elem().Interface(), tt.want)
			}
		})
	}
}

func TestCLIGetEmpty(t *testing.T) {
	d := startCLIDaemon(t, cliState{}) // lists answered with null, as a nil slice encodes
	tests := []struct {
		name       string
		args       []string
		wantStdout string
		wantStderr string
	}{
		{"table", []string{"get", "namespaces"}, "", "No resources found.\n"},
		{"wide", []string{"get", "servers", "-o", "wide"}, "", "No resources found.\n"},
		{"json", []string{"get", "frontends", "-o", "json"}, "[]\n", ""},
		{"yaml", []string{"get", "connections", "-o", "yaml"}, "[]\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(d.socket, tt.args...)
			if code != 0 || out != tt.wantStdout || errOut != tt.wantStderr {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q, %q", code, out, errOut, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestCLINamespaceAdd(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want api.Namespace
	}{
		{"by name", []string{"ns", "add", "red"}, api.Namespace{Name: "red"}},
		{"by pid", []string{"ns", "add", "red", "--pid", "4242"}, api.Namespace{Name: "red", Pid: 4242}},
		{"pid before name", []string{"ns", "add", "-pid=4242", "red"}, api.Namespace{Name: "red", Pid: 4242}},
		{"by path", []string{"ns", "add", "--path", "/proc/7/ns/net", "red"}, api.Namespace{Name: "red", Path: "/proc/7/ns/net"}},
		{"name after --", []string{"ns", "add", "--pid", "1", "--", "-odd"}, api.Namespace{Name: "-odd", Pid: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startCLIDaemon(t, sampleCLIState())
			code, out, errOut := runCLI(d.socket, tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if want := "namespace/" + tt.want.Name + " created\n"; out != want {
				t.Errorf("stdout %q, want %q", out, want)
			}
			reqs := d.requests()
			if len(reqs) != 1 || reqs[0].method != "POST" || reqs[0].path != "/v1/namespaces" {
				t.Fatalf("requests %+v, want one POST /v1/namespaces", reqs)
			}
			var got api.Namespace
			d.lastBody(t, &got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("sent %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCLIServerAdd(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want api.Server
	}{
		{
			name: "plain",
			args: []string{"server", "add", "app", "s3", "10.0.0.3:80"},
			want: api.Server{Backend: "app", Name: "s3", Addr: "10.0.0.3:80"},
		},
		{
			name: "every flag, interleaved",
			args: []string{"server", "add", "--check", "app", "--inter", "2s", "s3", "--rise=2", "--fall", "3",
				"10.0.0.3:80", "--weight", "10", "--backup", "--disabled", "--send-proxy-v2", "--namespace", "blue"},
			want: api.Server{Backend: "app", Name: "s3", Addr: "10.0.0.3:80", Namespace: "blue", Check: true, Inter: "2s",
				Rise: 2, Fall: 3, Weight: cliIntp(10), Backup: true, Disabled: true, SendProxy: 2},
		},
		{
			name: "client namespace",
			args: []string{"server", "add", "app", "s3", "*:8080", "--namespace", "*", "--send-proxy"},
			want: api.Server{Backend: "app", Name: "s3", Addr: "*:8080", Namespace: "*", SendProxy: 1},
		},
		{
			name: "weight zero is sent",
			args: []string{"server", "add", "-weight", "0", "app", "s3", "10.0.0.3:80"},
			want: api.Server{Backend: "app", Name: "s3", Addr: "10.0.0.3:80", Weight: cliIntp(0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startCLIDaemon(t, sampleCLIState())
			code, out, errOut := runCLI(d.socket, tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if want := "server/app/s3 created\n"; out != want {
				t.Errorf("stdout %q, want %q", out, want)
			}
			reqs := d.requests()
			if len(reqs) != 1 || reqs[0].method != "POST" || reqs[0].path != "/v1/backends/app/servers" {
				t.Fatalf("requests %+v, want one POST /v1/backends/app/servers", reqs)
			}
			var got api.Server
			d.lastBody(t, &got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("sent %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCLIDelete(t *testing.T) {
	d := startCLIDaemon(t, sampleCLIState())
	tests := []struct {
		name     string
		args     []string
		wantPath string
		wantOut  string
	}{
		{"namespace", []string{"ns", "del", "gone"}, "/v1/namespaces/gone", "namespace/gone deleted\n"},
		{"namespace alias", []string{"ns", "rm", "gone"}, "/v1/namespaces/gone", "namespace/gone deleted\n"},
		{"server", []string{"server", "del", "app", "s2"}, "/v1/backends/app/servers/s2", "server/app/s2 deleted\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(d.requests())
			code, out, errOut := runCLI(d.socket, tt.args...)
			if code != 0 || errOut != "" || out != tt.wantOut {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0, %q", code, out, errOut, tt.wantOut)
			}
			reqs := d.requests()[before:]
			if len(reqs) != 1 || reqs[0].method != "DELETE" || reqs[0].path != tt.wantPath {
				t.Errorf("requests %+v, want one DELETE %s", reqs, tt.wantPath)
			}
		})
	}
}

func TestCLIUsageErrors(t *testing.T) {
	d := startCLIDaemon(t, sampleCLIState())
	tests := []struct {
		name string
		args []string
		want string // the start of stderr's first line
	}{
		{"no command", nil, "Control a running daemon"},
		{"unknown command", []string{"frobnicate"}, `nsproxy: unknown control command "frobnicate"`},
		{"get without resource", []string{"get"}, "nsproxy get: missing RESOURCE"},
		{"get unknown resource", []string{"get", "pods"}, `nsproxy get: unknown resource "pods"`},
		{"get too many", []string{"get", "ns", "a", "b"}, "nsproxy get: too many arguments: b"},
		{"get bad output", []string{"get", "ns", "-o", "xml"}, `nsproxy get: bad -o "xml": use json, yaml, wide`},
		{"get unknown flag", []string{"get", "ns", "--all"}, "nsproxy get: flag provided but not defined: -all"},
		{"ns without subcommand", []string{"ns"}, "nsproxy ns: missing add or del"},
		{"ns unknown subcommand", []string{"ns", "list"}, `nsproxy ns: unknown subcommand "list"`},
		{"ns add without name", []string{"ns", "add"}, "nsproxy ns add: want one NAME, got 0 arguments"},
		{"ns add path and pid", []string{"ns", "add", "red", "--path", "/x", "--pid", "1"}, "nsproxy ns add: give --path or --pid, not both"},
		{"ns add negative pid", []string{"ns", "add", "red", "--pid", "-1"}, "nsproxy ns add: bad --pid -1"},
		{"ns add bad pid", []string{"ns", "add", "red", "--pid", "x"}, `nsproxy ns add: invalid value "x" for flag -pid: parse error`},
		{"ns del two names", []string{"ns", "del", "a", "b"}, "nsproxy ns del: want one NAME, got 2 arguments"},
		{"server without subcommand", []string{"server"}, "nsproxy server: missing add or del"},
		{"server add missing addr", []string{"server", "add", "app", "s3"}, "nsproxy server add: want BACKEND NAME ADDR, got 2 arguments"},
		{"server add both proxy versions", []string{"server", "add", "app", "s3", "10.0.0.3:80", "--send-proxy", "--send-proxy-v2"},
			"nsproxy server add: give --send-proxy or --send-proxy-v2, not both"},
		{"server add bad weight", []string{"server", "add", "app", "s3", "10.0.0.3:80", "--weight", "ten"},
			`nsproxy server add: invalid value "ten" for flag -weight: parse error`},
		{"server del one argument", []string{"server", "del", "app"}, "nsproxy server del: want BACKEND NAME, got 1 arguments"},
		{"stats with argument", []string{"stats", "now"}, "nsproxy stats: unexpected arguments: now"},
		{"stats wide", []string{"stats", "-o", "wide"}, `nsproxy stats: bad -o "wide": use json, yaml`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(d.requests())
			var out, errOut bytes.Buffer
			args := tt.args
			if len(args) > 1 { // after the subcommand, if any
				args = append(args, "--socket", d.socket)
			}
			code := cmdCLI(args, &out, &errOut)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
			first, _, _ := strings.Cut(strings.TrimPrefix(errOut.String(), "\n"), "\n")
			if !strings.HasPrefix(first, tt.want) {
				t.Errorf("stderr starts %q, want %q", first, tt.want)
			}
			if !strings.Contains(errOut.String(), "usage:") && !strings.Contains(errOut.String(), "nsproxy get RESOURCE") {
				t.Errorf("stderr %q has no usage line", errOut.String())
			}
			if n := len(d.requests()) - before; n != 0 {
				t.Errorf("%d requests reached the daemon, want none", n)
			}
		})
	}
}

func TestCLIDaemonErrors(t *testing.T) {
	d := startCLIDaemon(t, sampleCLIState())
	missing := filepath.Join(filepath.Dir(d.socket), "missing.sock")
	tests := []struct {
		name   string
		socket string
		args   []string
		want   string // all of stderr
	}{
		{"get unknown namespace", d.socket, []string{"get", "ns", "nope"}, "namespace \"nope\" not found\n"},
		{"get unknown frontend as json", d.socket, []string{"get", "fe", "nope", "-o", "json"}, "frontend \"nope\" not found\n"},
		{"servers of unknown backend", d.socket, []string{"get", "servers", "nope"}, "backend \"nope\" not found\n"},
		{"unknown server", d.socket, []string{"get", "servers", "app/s9"}, "server \"s9\" not found in backend \"app\"\n"},
		{"unknown connection", d.socket, []string{"get", "conns", "77"}, "connection 77 not found\n"},
		{"bad connection id", d.socket, []string{"get", "conns", "web"}, "bad connection ID \"web\": want a number\n"},
		{"unknown attachment", d.socket, []string{"get", "attachments", "abc/eth0"}, "attachment \"abc/eth0\" not found\n"},
		{"no attachment of container", d.socket, []string{"get", "attachments", "abc"}, "no attachment of container \"abc\"\n"},
		{"ns add conflict with details", d.socket, []string{"ns", "add", "blue", "--pid", "1"},
			"namespace \"blue\" already exists\nsource: config\npath: /var/run/netns/blue\n"},
		{"ns del in use", d.socket, []string{"ns", "del", "blue"}, "namespace \"blue\" is in use\nfrontend/web\nbackend/app/server/s1\n"},
		{"server add to unknown backend", d.socket, []string{"server", "add", "nope", "s1", "10.0.0.1:80"}, "backend \"nope\" not found\n"},
		{"server del unknown", d.socket, []string{"server", "del", "app", "s9"}, "server \"app/s9\" not found\n"},
		{"daemon not running", missing, []string{"stats"},
			"cannot reach nsproxy at " + missing + ": no such file or directory; is the daemon running (nsproxy run) and are you root?\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(tt.socket, tt.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if errOut != tt.want {
				t.Errorf("stderr\n got %q\nwant %q", errOut, tt.want)
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"get", []string{"get", "-h"}, []string{"usage: nsproxy get namespaces|", "-o string", "-socket string"}},
		{"server add", []string{"server", "add", "--help"}, []string{"usage: nsproxy server add BACKEND NAME ADDR", "-send-proxy-v2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := cmdCLI(tt.args, &out, &errOut); code != 0 {
				t.Errorf("exit %d, want 0", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestCLISocketFromEnvironment(t *testing.T) {
	d := startCLIDaemon(t, sampleCLIState())
	t.Setenv(socketEnv, d.socket)
	var out, errOut bytes.Buffer
	if code := cmdCLI([]string{"ns", "del", "gone"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if len(d.requests()) != 1 {
		t.Errorf("the daemon at $%s got %d requests, want 1", socketEnv, len(d.requests()))
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{90 * time.Second, "90s"},
		{2*time.Minute + 5*time.Second, "2m5s"},
		{45 * time.Minute, "45m"},
		{3*time.Hour + 5*time.Minute, "3h5m"},
		{20 * time.Hour, "20h"},
		{50 * time.Hour, "2d2h"},
		{30 * 24 * time.Hour, "30d"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := humanAge(tt.d); got != tt.want {
				t.Errorf("age(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestCLIUsageMentionsEveryCommand(t *testing.T) {
	for _, cmd := range []string{"nsproxy get", "nsproxy ns add", "nsproxy ns del", "nsproxy server add", "nsproxy server del", "nsproxy stats"} {
		t.Run(cmd, func(t *testing.T) {
			if !strings.Contains(cliUsage, cmd) {
				t.Errorf("cliUsage lacks %q", cmd)
			}
		})
	}
}

// TestGlobalFlagsBeforeCommand: --socket and --timeout work before the
// command as well as after it, as in kubectl and podman.
func TestGlobalFlagsBeforeCommand(t *testing.T) {
	d := startCLIDaemon(t, sampleCLIState())
	tests := []struct {
		name string
		args []string
	}{
		{"socket before get", []string{"--socket", d.socket, "get", "ns"}},
		{"socket= before get", []string{"--socket=" + d.socket, "get", "ns"}},
		{"single dash", []string{"-socket", d.socket, "get", "ns"}},
		{"timeout and socket before stats", []string{"--timeout", "5s", "--socket", d.socket, "stats"}},
		{"socket before get with --", []string{"--socket", d.socket, "get", "--", "ns"}},
		{"socket after get", []string{"get", "ns", "--socket", d.socket}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(d.requests())
			var out, errOut bytes.Buffer
			if code := run(tt.args, &out, &errOut); code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut.String())
			}
			if n := len(d.requests()) - before; n != 1 {
				t.Errorf("%d requests reached the daemon, want 1", n)
			}
		})
	}
	bad := []struct {
		name string
		args []string
		want string
	}{
		{"socket without value", []string{"--socket"}, "nsproxy: flag needs an argument: --socket"},
		{"unknown global flag", []string{"--frob", "get", "ns"}, `nsproxy: unknown global flag "--frob"; global flags: --socket PATH, --timeout D`},
		{"timeout for validate", []string{"--timeout", "1s", "validate", "-f", "x"}, "nsproxy: --timeout is not a flag of validate"},
		{"only flags", []string{"--socket", d.socket}, "nsproxy: missing command after the global flags"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tt.args, &out, &errOut); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if first, _, _ := strings.Cut(errOut.String(), "\n"); first != tt.want {
				t.Errorf("stderr starts %q, want %q", first, tt.want)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"details one per line", &api.StatusError{Code: 409, Message: "in use", Details: []string{"frontend/web", "backend/app"}}, "in use\nfrontend/web\nbackend/app"},
		{"no message", &api.StatusError{Code: 503}, "503 Service Unavailable"},
		{"wrapped keeps its context", fmt.Errorf("apply x.yaml: %w", &api.StatusError{Code: 400, Message: "bad", Details: []string{"a"}}), "apply x.yaml: nsproxy: bad: a"},
		{"other error", errors.New("connection refused"), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorText(tt.err); got != tt.want {
				t.Errorf("errorText = %q, want %q", got, tt.want)
			}
		})
	}
}
