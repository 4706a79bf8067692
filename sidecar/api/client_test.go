package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeDaemon serves h on a unix socket and returns the socket's path. It
// stops the server when the test ends.
func fakeDaemon(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := shortSocketPath(t)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return sock
}

// shortSocketPath is a socket path in a fresh directory. A unix socket path
// must fit in 108 bytes, which t.TempDir can outgrow with a long TMPDIR.
func shortSocketPath(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	if len(sock) < 100 {
		return sock
	}
	dir, err := os.MkdirTemp("/tmp", "nsapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("request body %q: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad wantBody %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func intp(n int) *int { return &n }

func TestClientMethods(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	notFound := `{"error":"namespace \"nope\" not found"}`
	tests := []struct {
		name     string
		pattern  string // the fake daemon's route, Go 1.22 mux syntax
		wantPath string // escaped path the client must use; default: the pattern's
		wantBody string // JSON the client must send; "" for none
		status   int
		answer   string
		call     func(context.Context, *Client) (any, error)
		want     any
		wantErr  string // the whole error text; "" for success
		errStart bool   // wantErr is only the start (the rest names the socket)
		notFound bool
	}{
		{
			name: "healthz", pattern: "GET /v1/healthz", status: 200, answer: `{"status":"ok"}`,
			call: func(ctx context.Context, c *Client) (any, error) { return nil, c.Healthz(ctx) },
		},
		{
			name: "readyz ready", pattern: "GET /v1/readyz", status: 200, answer: `{"status":"ready"}`,
			call: func(ctx context.Context, c *Client) (any, error) { return nil, c.Readyz(ctx) },
		},
		{
			name: "readyz not ready", pattern: "GET /v1/readyz", status: 503,
			answer:  `{"error":"not ready","details":["frontend web: listener 1 not up","namespace blue missing"]}`,
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Readyz(ctx) },
			wantErr: "nsproxy: not ready: frontend web: listener 1 not up; namespace blue missing",
		},
		{
			name: "namespaces", pattern: "GET /v1/namespaces", status: 200,
			answer: `[{"name":"blue","source":"api","allowed":true,"state":"available","identity":{"dev":4,"ino":4026532281},"usedBy":["frontend/web"]}]`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Namespaces(ctx) },
			want: []Namespace{{Name: "blue", Source: SourceAPI, Allowed: true, State: StateAvailable,
				Identity: &Identity{Dev: 4, Ino: 4026532281}, UsedBy: []string{"frontend/web"}}},
		},
		{
			name: "namespaces empty", pattern: "GET /v1/namespaces", status: 200, answer: `[]`,
			call: func(ctx context.Context, c *Client) (any, error) { return c.Namespaces(ctx) },
			want: []Namespace{},
		},
		{
			name: "namespace escaped", pattern: "GET /v1/namespaces/{name}", wantPath: "/v1/namespaces/a%2Fb%20c",
			status: 200, answer: `{"name":"a/b c","allowed":false}`,
			call: func(ctx context.Context, c *Client) (any, error) { return c.Namespace(ctx, "a/b c") },
			want: Namespace{Name: "a/b c"},
		},
		{
			name: "namespace not found", pattern: "GET /v1/namespaces/{name}", wantPath: "/v1/namespaces/nope",
			status: 404, answer: notFound,
			call: func(ctx context.Context, c *Client) (any, error) { return c.Namespace(ctx, "nope") },
			want: Namespace{}, wantErr: `nsproxy: namespace "nope" not found`, notFound: true,
		},
		{
			name: "add namespace by pid", pattern: "POST /v1/namespaces", wantBody: `{"name":"web","pid":42,"allowed":false}`,
			status: 201, answer: `{"name":"web","path":"/proc/42/ns/net","source":"api","allowed":true,"state":"available"}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddNamespace(ctx, Namespace{Name: "web", Pid: 42})
			},
			want: Namespace{Name: "web", Path: "/proc/42/ns/net", Source: SourceAPI, Allowed: true, State: StateAvailable},
		},
		{
			name: "add namespace without answer body", pattern: "POST /v1/namespaces",
			wantBody: `{"name":"web","path":"/var/run/netns/web","allowed":false}`, status: 201,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddNamespace(ctx, Namespace{Name: "web", Path: "/var/run/netns/web"})
			},
			want: Namespace{Name: "web", Path: "/var/run/netns/web"},
		},
		{
			name: "add namespace refused", pattern: "POST /v1/namespaces", wantBody: `{"name":"web","path":"/x","pid":1,"allowed":false}`,
			status: 400, answer: `{"error":"namespace \"web\": invalid","details":["give path or pid, not both"]}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddNamespace(ctx, Namespace{Name: "web", Path: "/x", Pid: 1})
			},
			want:    Namespace{},
			wantErr: "nsproxy: namespace \"web\": invalid: give path or pid, not both",
		},
		{
			name: "delete namespace", pattern: "DELETE /v1/namespaces/{name}", wantPath: "/v1/namespaces/web", status: 204,
			call: func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteNamespace(ctx, "web") },
		},
		{
			name: "delete namespace in use", pattern: "DELETE /v1/namespaces/{name}", wantPath: "/v1/namespaces/web", status: 409,
			answer:  `{"error":"namespace \"web\" is in use","details":["frontend/web","backend/app/server/s1"]}`,
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteNamespace(ctx, "web") },
			wantErr: "nsproxy: namespace \"web\" is in use: frontend/web; backend/app/server/s1",
		},
		{
			name: "frontends", pattern: "GET /v1/frontends", status: 200,
			answer: `[{"name":"web","binds":[{"addr":"0.0.0.0:80","namespace":"blue"}],"backend":"app","listeners":[{"addr":"0.0.0.0:80","namespace":"blue","listening":true}],"current":2,"total":10,"bytesIn":5,"bytesOut":6}]`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Frontends(ctx) },
			want: []Frontend{{Name: "web", Binds: []Bind{{Addr: "0.0.0.0:80", Namespace: "blue"}}, Backend: "app",
				Listeners: []Listener{{Addr: "0.0.0.0:80", Namespace: "blue", Listening: true}}, Current: 2, Total: 10, BytesIn: 5, BytesOut: 6}},
		},
		{
			name: "frontend", pattern: "GET /v1/frontends/{name}", wantPath: "/v1/frontends/web", status: 200,
			answer: `{"name":"web","binds":[],"backend":"app"}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Frontend(ctx, "web") },
			want:   Frontend{Name: "web", Binds: []Bind{}, Backend: "app"},
		},
		{
			name: "add frontend", pattern: "POST /v1/frontends",
			wantBody: `{"name":"web","binds":[{"addr":"127.0.0.1:8080","acceptProxy":true}],"backend":"app","current":0,"total":0,"bytesIn":0,"bytesOut":0}`,
			status:   201, answer: `{"name":"web","source":"api","binds":[{"addr":"127.0.0.1:8080","acceptProxy":true}],"backend":"app"}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddFrontend(ctx, Frontend{Name: "web", Binds: []Bind{{Addr: "127.0.0.1:8080", AcceptProxy: true}}, Backend: "app"})
			},
			want: Frontend{Name: "web", Source: SourceAPI, Binds: []Bind{{Addr: "127.0.0.1:8080", AcceptProxy: true}}, Backend: "app"},
		},
		{
			name: "delete frontend", pattern: "DELETE /v1/frontends/{name}", wantPath: "/v1/frontends/web", status: 204,
			call: func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteFrontend(ctx, "web") },
		},
		{
			name: "backends", pattern: "GET /v1/backends", status: 200,
			answer: `[{"name":"app","balance":"roundrobin","servers":[{"backend":"app","name":"s1","addr":"10.0.0.1:80","up":true,"active":1,"total":2,"connectErrors":0}]}]`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Backends(ctx) },
			want: []Backend{{Name: "app", Balance: "roundrobin",
				Servers: []Server{{Backend: "app", Name: "s1", Addr: "10.0.0.1:80", Up: true, Active: 1, Total: 2}}}},
		},
		{
			name: "backend", pattern: "GET /v1/backends/{name}", wantPath: "/v1/backends/app", status: 200,
			answer: `{"name":"app"}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Backend(ctx, "app") },
			want:   Backend{Name: "app"},
		},
		{
			name: "add backend", pattern: "POST /v1/backends", wantBody: `{"name":"app","connectTimeout":"5s"}`,
			status: 201, answer: `{"name":"app","source":"api","connectTimeout":"5s"}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddBackend(ctx, Backend{Name: "app", ConnectTimeout: "5s"})
			},
			want: Backend{Name: "app", Source: SourceAPI, ConnectTimeout: "5s"},
		},
		{
			name: "delete backend", pattern: "DELETE /v1/backends/{name}", wantPath: "/v1/backends/app", status: 204,
			call: func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteBackend(ctx, "app") },
		},
		{
			name: "servers", pattern: "GET /v1/servers", status: 200,
			answer: `[{"backend":"app","name":"s1","addr":"*:80","namespace":"*","weight":0,"up":false,"active":0,"total":0,"connectErrors":3}]`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Servers(ctx) },
			want:   []Server{{Backend: "app", Name: "s1", Addr: "*:80", Namespace: "*", Weight: intp(0), ConnectErrors: 3}},
		},
		{
			name: "add server", pattern: "POST /v1/backends/{backend}/servers", wantPath: "/v1/backends/my%20app/servers",
			wantBody: `{"backend":"my app","name":"s1","addr":"10.0.0.1:80","namespace":"blue","check":true,"inter":"2s","weight":5,"sendProxy":2,"up":false,"active":0,"total":0,"connectErrors":0}`,
			status:   201, answer: `{"backend":"my app","name":"s1","source":"api","addr":"10.0.0.1:80","namespace":"blue","check":true,"inter":"2s","weight":5,"sendProxy":2}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddServer(ctx, Server{Backend: "my app", Name: "s1", Addr: "10.0.0.1:80", Namespace: "blue",
					Check: true, Inter: "2s", Weight: intp(5), SendProxy: 2})
			},
			want: Server{Backend: "my app", Name: "s1", Source: SourceAPI, Addr: "10.0.0.1:80", Namespace: "blue",
				Check: true, Inter: "2s", Weight: intp(5), SendProxy: 2},
		},
		{
			name: "add server to unknown backend", pattern: "POST /v1/backends/{backend}/servers", wantPath: "/v1/backends/nope/servers",
			wantBody: `{"backend":"nope","name":"s1","addr":"10.0.0.1:80","up":false,"active":0,"total":0,"connectErrors":0}`,
			status:   404, answer: `{"error":"backend \"nope\" not found"}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddServer(ctx, Server{Backend: "nope", Name: "s1", Addr: "10.0.0.1:80"})
			},
			want: Server{}, wantErr: `nsproxy: backend "nope" not found`, notFound: true,
		},
		{
			name: "delete server", pattern: "DELETE /v1/backends/{backend}/servers/{name}", wantPath: "/v1/backends/app/servers/s%2F1",
			status: 204,
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteServer(ctx, "app", "s/1") },
		},
		{
			name: "connections", pattern: "GET /v1/connections", status: 200,
			answer: `[{"id":18446744073709551615,"frontend":"web","backend":"app","server":"s1","client":"10.1.0.5:40000","clientNetns":"blue","serverNetns":"red","start":"2025-03-01T12:00:00Z","bytesIn":1,"bytesOut":2}]`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Connections(ctx) },
			want: []Connection{{ID: 18446744073709551615, Frontend: "web", Backend: "app", Server: "s1", Client: "10.1.0.5:40000",
				ClientNetns: "blue", ServerNetns: "red", Start: start, BytesIn: 1, BytesOut: 2}},
		},
		{
			name: "attachments", pattern: "GET /v1/attachments", status: 200,
			answer: `[{"containerID":"c1","ifname":"eth0","netns":"/proc/7/ns/net","portMappings":[{"hostPort":8080,"containerPort":80}]}]`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Attachments(ctx) },
			want: []Attachment{{AttachmentKey: AttachmentKey{ContainerID: "c1", IfName: "eth0"}, Netns: "/proc/7/ns/net",
				PortMappings: []PortMapping{{HostPort: 8080, ContainerPort: 80}}}},
		},
		{
			name: "attachment", pattern: "GET /v1/attachments/{id}/{ifname}", wantPath: "/v1/attachments/c1/eth0", status: 200,
			answer: `{"containerID":"c1","ifname":"eth0","netns":"/proc/7/ns/net","state":"ready"}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Attachment(ctx, AttachmentKey{ContainerID: "c1", IfName: "eth0"})
			},
			want: Attachment{AttachmentKey: AttachmentKey{ContainerID: "c1", IfName: "eth0"}, Netns: "/proc/7/ns/net", State: "ready"},
		},
		{
			name: "attachment not found", pattern: "GET /v1/attachments/{id}/{ifname}", wantPath: "/v1/attachments/c1/eth9", status: 404,
			answer: `{"error":"attachment c1/eth9 not found"}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Attachment(ctx, AttachmentKey{ContainerID: "c1", IfName: "eth9"})
			},
			want: Attachment{}, wantErr: "nsproxy: attachment c1/eth9 not found", notFound: true,
		},
		{
			name: "put attachment creates", pattern: "POST /v1/attachments",
			wantBody: `{"containerID":"c1","ifname":"eth0","netns":"/proc/7/ns/net","source":"cni"}`,
			status:   201, answer: `{"containerID":"c1","ifname":"eth0","netns":"/proc/7/ns/net","name":"cni-c1","source":"cni"}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				a, created, err := c.PutAttachment(ctx, Attachment{AttachmentKey: AttachmentKey{ContainerID: "c1", IfName: "eth0"},
					Netns: "/proc/7/ns/net", Source: SourceCNI})
				return []any{a.Name, created}, err
			},
			want: []any{"cni-c1", true},
		},
		{
			name: "put attachment updates", pattern: "POST /v1/attachments",
			wantBody: `{"containerID":"c1","ifname":"eth0","netns":"/proc/7/ns/net"}`,
			status:   200, answer: `{"containerID":"c1","ifname":"eth0","netns":"/proc/7/ns/net","name":"cni-c1"}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				a, created, err := c.PutAttachment(ctx, Attachment{AttachmentKey: AttachmentKey{ContainerID: "c1", IfName: "eth0"},
					Netns: "/proc/7/ns/net"})
				return []any{a.Name, created}, err
			},
			want: []any{"cni-c1", false},
		},
		{
			name: "delete attachment", pattern: "DELETE /v1/attachments/{id}/{ifname}", wantPath: "/v1/attachments/c1/eth0", status: 204,
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.DeleteAttachment(ctx, AttachmentKey{ContainerID: "c1", IfName: "eth0"})
			},
		},
		{
			name: "gc attachments", pattern: "POST /v1/attachments/gc",
			wantBody: `{"valid":[{"containerID":"c1","ifname":"eth0"}]}`,
			status:   200, answer: `{"removed":[{"containerID":"c2","ifname":"eth0"}]}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GCAttachments(ctx, GCRequest{Valid: []AttachmentKey{{ContainerID: "c1", IfName: "eth0"}}})
			},
			want: GCResult{Removed: []AttachmentKey{{ContainerID: "c2", IfName: "eth0"}}},
		},
		{
			name: "stats", pattern: "GET /v1/stats", status: 200,
			answer: `{"uptime":"1h0m0s","namespaces":3,"frontends":2,"backends":1,"servers":4,"serversUp":3,"connections":5,"total":100,"bytesIn":7,"bytesOut":8,"attachments":1}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Stats(ctx) },
			want: Stats{Uptime: "1h0m0s", Namespaces: 3, Frontends: 2, Backends: 1, Servers: 4, ServersUp: 3,
				Connections: 5, Total: 100, BytesIn: 7, BytesOut: 8, Attachments: 1},
		},
		{
			name: "error body that is not JSON", pattern: "GET /v1/stats", status: 502, answer: "bad gateway\n",
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Stats(ctx) },
			want:    Stats{},
			wantErr: "nsproxy: bad gateway",
		},
		{
			name: "empty error body", pattern: "GET /v1/stats", status: 500,
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Stats(ctx) },
			want:    Stats{},
			wantErr: "nsproxy: 500 Internal Server Error",
		},
		{
			name: "answer that is not JSON", pattern: "GET /v1/stats", status: 200, answer: "<html>",
			call: func(ctx context.Context, c *Client) (any, error) { return c.Stats(ctx) },
			want: Stats{}, wantErr: "GET /v1/stats: bad answer from nsproxy at ", errStart: true,
		},
		{
			name: "empty answer where one is needed", pattern: "GET /v1/stats", status: 200,
			call: func(ctx context.Context, c *Client) (any, error) { return c.Stats(ctx) },
			want: Stats{}, wantErr: "GET /v1/stats: bad answer from nsproxy at ", errStart: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, _ := strings.Cut(tt.pattern, " ")
			wantPath := tt.wantPath
			if wantPath == "" {
				wantPath = path
			}
			mux := http.NewServeMux()
			mux.HandleFunc(tt.pattern, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != method || r.URL.EscapedPath() != wantPath {
					t.Errorf("request %s %s, want %s %s", r.Method, r.URL.EscapedPath(), method, wantPath)
				}
				body, _ := io.ReadAll(r.Body)
				switch {
				case tt.wantBody == "" && len(body) > 0:
					t.Errorf("request body %s, want none", body)
				case tt.wantBody != "":
					if ct := r.Header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type %q", ct)
					}
					if !jsonEqual(t, string(body), tt.wantBody) {
						t.Errorf("request body\n got %s\nwant %s", body, tt.wantBody)
					}
				}
				if tt.answer != "" && tt.answer[0] != '{' && tt.answer[0] != '[' {
					w.Header().Set("Content-Type", "text/plain")
				} else if tt.answer != "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.answer)
			})
			c := NewClient(fakeDaemon(t, mux))

			got, err := tt.call(context.Background(), c)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want %q", tt.wantErr)
			case tt.wantErr != "" && !tt.errStart && err.Error() != tt.wantErr:
				t.Errorf("error\n got %q\nwant %q", err, tt.wantErr)
			case tt.wantErr != "" && tt.errStart && !strings.HasPrefix(err.Error(), tt.wantErr):
				t.Errorf("error %q, want prefix %q", err, tt.wantErr)
			}
			if err != nil && tt.status >= 300 {
				var se *StatusError
				if !errors.As(err, &se) || se.Code != tt.status {
					t.Errorf("error %#v, want a *StatusError with code %d", err, tt.status)
				}
			}
			if IsNotFound(err) != tt.notFound {
				t.Errorf("IsNotFound(%v) = %v, want %v", err, !tt.notFound, tt.notFound)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestClientRejectsBadNames(t *testing.T) {
	// The daemon must not be asked: an empty or dot segment addresses
	// another object than the one named.
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
	})
	c := NewClient(fakeDaemon(t, mux))
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"empty namespace", func() error { _, err := c.Namespace(ctx, ""); return err }},
		{"dot frontend", func() error { _, err := c.Frontend(ctx, "."); return err }},
		{"dot-dot backend", func() error { return c.DeleteBackend(ctx, "..") }},
		{"server without backend", func() error { _, err := c.AddServer(ctx, Server{Name: "s1", Addr: "10.0.0.1:80"}); return err }},
		{"empty server name", func() error { return c.DeleteServer(ctx, "app", "") }},
		{"attachment without ifname", func() error {
			_, err := c.Attachment(ctx, AttachmentKey{ContainerID: "c1"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), "bad name") {
				t.Errorf("error %v, want a bad name error", err)
			}
		})
	}
}

func TestClientUnreachable(t *testing.T) {
	dir := filepath.Dir(shortSocketPath(t))
	refused := filepath.Join(dir, "refused.sock")
	ln, err := net.Listen("unix", refused)
	if err != nil {
		t.Fatal(err)
	}
	// Leave the socket file behind with nobody listening on it, as a
	// crashed daemon does.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln.Close()
	locked := filepath.Join(dir, "locked", "s.sock")
	if err := os.Mkdir(filepath.Dir(locked), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(locked), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Dir(locked), 0o700) })

	tests := []struct {
		name     string
		socket   string
		reason   string
		is       error
		needUser bool // root passes permission checks
	}{
		{"missing", filepath.Join(dir, "missing.sock"), "no such file or directory", fs.ErrNotExist, false},
		{"nobody listening", refused, "connection refused", nil, false},
		{"permission denied", locked, "permission denied", fs.ErrPermission, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needUser && os.Geteuid() == 0 {
				t.Skip("root is not refused by file permissions; run as a normal user")
			}
			c := NewClient(tt.socket)
			_, err := c.Namespaces(context.Background())
			want := "cannot reach nsproxy at " + tt.socket + ": " + tt.reason +
				"; is the daemon running (nsproxy run) and are you root?"
			if err == nil || err.Error() != want {
				t.Fatalf("error\n got %v\nwant %s", err, want)
			}
			if !errors.Is(err, ErrUnreachable) {
				t.Error("errors.Is(err, ErrUnreachable) is false")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false", tt.is)
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	sock := fakeDaemon(t, mux)
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		want    string
	}{
		{
			name: "client timeout", timeout: 50 * time.Millisecond,
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			want: "nsproxy at " + sock + " did not answer GET /v1/stats within 50ms: ",
		},
		{
			name: "caller deadline", timeout: 0,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			},
			want: "nsproxy at " + sock + ": GET /v1/stats: context deadline exceeded",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClient(sock, WithTimeout(tt.timeout))
			ctx, cancel := tt.ctx()
			defer cancel()
			_, err := c.Stats(ctx)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want prefix %q", err, tt.want)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Error("errors.Is(err, context.DeadlineExceeded) is false")
			}
		})
	}
}

func TestUnreachableErrorMessage(t *testing.T) {
	// Root cannot provoke EACCES on a socket, so the message is checked on
	// the error a dial returns.
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", errno)}
	}
	tests := []struct {
		name string
		err  error
		want string
		is   error
	}{
		{"permission denied", dial(syscall.EACCES), "permission denied", fs.ErrPermission},
		{"missing", dial(syscall.ENOENT), "no such file or directory", fs.ErrNotExist},
		{"not a syscall error", errors.New("i/o timeout"), "i/o timeout", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := &UnreachableError{Socket: "/run/nsproxy/nsproxy.sock", Err: tt.err}
			want := "cannot reach nsproxy at /run/nsproxy/nsproxy.sock: " + tt.want +
				"; is the daemon running (nsproxy run) and are you root?"
			if err.Error() != want {
				t.Errorf("got %q\nwant %q", err, want)
			}
			if !errors.Is(err, ErrUnreachable) {
				t.Error("errors.Is(err, ErrUnreachable) is false")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false", tt.is)
			}
		})
	}
}

func TestClientDefaults(t *testing.T) {
	tests := []struct {
		name   string
		socket string
		want   string
	}{
		{"empty is the default socket", "", DefaultSocket},
		{"given", "/tmp/x.sock", "/tmp/x.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewClient(tt.socket).Socket(); got != tt.want {
				t.Errorf("Socket() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestClientLeavesNoGoroutines: the client holds no connection between
// requests, so nothing of it is left running after them.
func TestClientLeavesNoGoroutines(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	sock := fakeDaemon(t, mux)
	before := runtime.NumGoroutine()
	c := NewClient(sock)
	for range 3 {
		if err := c.Healthz(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The server's side of each closed connection ends asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after the requests, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
