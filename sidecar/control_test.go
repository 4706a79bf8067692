package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

type testDaemon struct {
	t      *testing.T
	d      *Daemon
	socket string
	state  string
	http   *http.Client
	log    *testlog.Buffer
	stop   func() // shuts the daemon down as SIGTERM would; also run at cleanup
}

// startTestDaemon runs a daemon on cfg with a control socket in a temp dir.
// The daemon is started (the files applied, the state restored) before it
// returns: a daemon that cannot start fails the test here, not later in a
// request that finds nothing.
func startTestDaemon(t *testing.T, cfg, stateFile string) *testDaemon {
	t.Helper()
	testns.RequireRoot(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfgPath, cfg)
	if stateFile == "" {
		stateFile = filepath.Join(dir, "state.json")
	}
	logBuf := &testlog.Buffer{}
	d, err := New(Options{ConfigFiles: []string{cfgPath}, StateFile: stateFile,
		Logger: slog.New(slog.NewTextHandler(logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		d.reg.Close()
		t.Fatalf("daemon did not start: %v\n%s", err, logBuf)
	}
	if !d.Ready() {
		t.Fatalf("daemon started but is not ready\n%s", logBuf)
	}
	sock := filepath.Join(dir, "ctl.sock")
	ln, err := ListenControl(ControlOptions{Socket: sock, Group: -1})
	if err != nil {
		stopDaemon(d)
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	served := make(chan struct{})
	go func() { runErr <- d.Run(ctx, nil) }()
	go func() { d.ServeControl(ctx, ln, -1); close(served) }()
	stop := sync.OnceFunc(func() {
		cancel()
		<-served
		if err := <-runErr; err != nil {
			t.Errorf("daemon run: %v", err)
		}
	})
	t.Cleanup(stop)
	return &testDaemon{t: t, d: d, socket: sock, state: stateFile, log: logBuf, http: unixClient(sock), stop: stop}
}

// mustWrite writes a test's file or fails the test.
func mustWrite(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
}

// do sends a request and returns the status and the raw body.
func (td *testDaemon) do(method, path string, body any) (int, []byte) {
	td.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				td.t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, "http://nsproxy"+path, rd)
	if err != nil {
		td.t.Fatal(err)
	}
	resp, err := td.http.Do(req)
	if err != nil {
		td.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		td.t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// call sends a request and decodes the answer into out (if not nil).
func (td *testDaemon) call(method, path string, body any, out any) (int, api.Error) {
	td.t.Helper()
	code, b := td.do(method, path, body)
	var e api.Error
	if code >= 300 {
		json.Unmarshal(b, &e)
		return code, e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			td.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return code, e
}

const baseCfg = `
frontend web
    bind 127.0.0.1:17900
    default_backend web
backend web
    server s1 127.0.0.1:17901
`

// apiCall is one control request.
type apiCall struct {
	method, path string
	body         any
}

// decodeAs decodes body into a T or fails the test.
func decodeAs[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

// TestControlAPI: every row runs against a daemon of its own on baseCfg,
// after its own setup requests, so that a row neither depends on nor
// spoils another's state. Success rows check what the answer says (and,
// for deletes, that the object is gone), not only the status code.
func TestControlAPI(t *testing.T) {
	a := testns.New(t, "A")
	pathA := "/var/run/netns/" + a
	w := 2
	var (
		nsA    = apiCall{"POST", "/v1/namespaces", api.Namespace{Name: "tenant-a", Path: pathA}}
		beAPI  = apiCall{"POST", "/v1/backends", api.Backend{Name: "api-be", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:17903", Namespace: "tenant-a"}}}}
		feAPI  = apiCall{"POST", "/v1/frontends", api.Frontend{Name: "api-fe", Binds: []api.Bind{{Addr: "127.0.0.1:17904", Namespace: "tenant-a"}}, Backend: "api-be"}}
		s2     = apiCall{"POST", "/v1/backends/web/servers", api.Server{Name: "s2", Addr: "127.0.0.1:17902", Namespace: "tenant-a", Weight: &w}}
		delNsA = apiCall{"DELETE", "/v1/namespaces/tenant-a", nil}
	)
	// gone checks that a GET of path answers 404 after a delete.
	gone := func(path string) func(*testing.T, *testDaemon, []byte) {
		return func(t *testing.T, td *testDaemon, _ []byte) {
			if code, _ := td.do("GET", path, nil); code != 404 {
				t.Fatalf("GET %s after delete: %d, want 404", path, code)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		setup  []apiCall
		req    apiCall
		code   int
		errHas string
		check  func(t *testing.T, td *testDaemon, body []byte) // success rows
	}{
		{name: "healthz", req: apiCall{"GET", "/v1/healthz", nil}, code: 200, check: func(t *testing.T, _ *testDaemon, b []byte) {
			if got := decodeAs[map[string]string](t, b); got["status"] != "ok" {
				t.Fatalf("healthz %s", b)
			}
		}},
		{name: "readyz", req: apiCall{"GET", "/v1/readyz", nil}, code: 200, check: func(t *testing.T, _ *testDaemon, b []byte) {
			if got := decodeAs[map[string]string](t, b); got["status"] != "ready" {
				t.Fatalf("readyz %s", b)
			}
		}},
		{name: "no such endpoint", req: apiCall{"GET", "/v1/nothing", nil}, code: 404, errHas: "no such endpoint"},
		{name: "add namespace by path", req: nsA, code: 201, check: func(t *testing.T, td *testDaemon, b []byte) {
			n := decodeAs[api.Namespace](t, b)
			if n.Name != "tenant-a" || n.Path != pathA || n.Source != api.SourceAPI || n.State != api.StateAvailable || n.Identity == nil {
				t.Fatalf("created %s", b)
			}
			var got api.Namespace
			if code, e := td.call("GET", "/v1/namespaces/tenant-a", nil, &got); code != 200 || got.Path != pathA || *got.Identity != *n.Identity {
				t.Fatalf("GET after POST: %d %+v %+v", code, e, got)
			}
		}},
		{name: "add namespace twice", setup: []apiCall{nsA}, req: nsA, code: 409, errHas: "already registered"},
		{name: "namespace bad name", req: apiCall{"POST", "/v1/namespaces", api.Namespace{Name: "../etc"}}, code: 400, errHas: "is invalid"},
		{name: "namespace path and pid", req: apiCall{"POST", "/v1/namespaces", api.Namespace{Name: "x", Path: "/proc/1/ns/net", Pid: 1}}, code: 400, errHas: "is invalid"},
		{name: "namespace not nsfs", req: apiCall{"POST", "/v1/namespaces", api.Namespace{Name: "x", Path: "/etc/hostname"}}, code: 400, errHas: "not a network namespace"},
		{name: "unknown field", req: apiCall{"POST", "/v1/namespaces", `{"name":"x","colour":"red"}`}, code: 400, errHas: "not valid JSON"},
		{name: "add backend", setup: []apiCall{nsA}, req: beAPI, code: 201, check: func(t *testing.T, _ *testDaemon, b []byte) {
			be := decodeAs[api.Backend](t, b)
			if be.Name != "api-be" || be.Source != api.SourceAPI || len(be.Servers) != 1 ||
				be.Servers[0].Name != "s" || be.Servers[0].Addr != "127.0.0.1:17903" || be.Servers[0].Namespace != "tenant-a" {
				t.Fatalf("created %s", b)
			}
		}},
		{name: "add backend existing", req: apiCall{"POST", "/v1/backends", api.Backend{Name: "web"}}, code: 409, errHas: "already exists"},
		{name: "add server to config backend", setup: []apiCall{nsA}, req: s2, code: 201, check: func(t *testing.T, td *testDaemon, b []byte) {
			sv := decodeAs[api.Server](t, b)
			if sv.Backend != "web" || sv.Name != "s2" || sv.Addr != "127.0.0.1:17902" || sv.Namespace != "tenant-a" ||
				sv.Weight == nil || *sv.Weight != 2 || sv.Source != api.SourceAPI {
				t.Fatalf("created %s", b)
			}
			var be api.Backend
			td.call("GET", "/v1/backends/web", nil, &be)
			if len(be.Servers) != 2 || be.Servers[0].Name != "s1" || be.Servers[1].Name != "s2" {
				t.Fatalf("backend web after POST: %+v", be.Servers)
			}
		}},
		{name: "add server duplicate", setup: []apiCall{nsA, s2}, req: apiCall{"POST", "/v1/backends/web/servers", api.Server{Name: "s2", Addr: "127.0.0.1:17902"}}, code: 409, errHas: "already exists"},
		{name: "add server bad addr", req: apiCall{"POST", "/v1/backends/web/servers", api.Server{Name: "s3", Addr: "example.com:80"}}, code: 400},
		{name: "add server injection", req: apiCall{"POST", "/v1/backends/web/servers", api.Server{Name: "s3", Addr: "10.0.0.1:80 namespace x"}}, code: 400, errHas: "api server web/s3 field addr: address"},
		{name: "add server no backend", req: apiCall{"POST", "/v1/backends/nope/servers", api.Server{Name: "s", Addr: "127.0.0.1:1"}}, code: 404, errHas: "nope"},
		{name: "add frontend", setup: []apiCall{nsA, beAPI}, req: feAPI, code: 201, check: func(t *testing.T, td *testDaemon, b []byte) {
			f := decodeAs[api.Frontend](t, b)
			if f.Name != "api-fe" || f.Backend != "api-be" || f.Source != api.SourceAPI || len(f.Binds) != 1 ||
				f.Binds[0] != (api.Bind{Addr: "127.0.0.1:17904", Namespace: "tenant-a"}) {
				t.Fatalf("created %s", b)
			}
			if len(f.Listeners) != 1 || f.Listeners[0].Addr != "127.0.0.1:17904" || f.Listeners[0].Namespace != "tenant-a" {
				t.Fatalf("listeners %s", b)
			}
			// The listener comes up in the background: wait for it.
			deadline := time.Now().Add(5 * time.Second)
			for {
				var got api.Frontend
				td.call("GET", "/v1/frontends/api-fe", nil, &got)
				if len(got.Listeners) == 1 && got.Listeners[0].Listening {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("listener never up in tenant-a: %+v", got.Listeners)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}},
		{name: "add frontend missing backend", req: apiCall{"POST", "/v1/frontends", api.Frontend{Name: "f2", Binds: []api.Bind{{Addr: "127.0.0.1:17905"}}, Backend: "ghost"}}, code: 400, errHas: "does not validate"},
		{name: "add frontend dup bind", req: apiCall{"POST", "/v1/frontends", api.Frontend{Name: "f3", Binds: []api.Bind{{Addr: "127.0.0.1:17900"}}, Backend: "web"}}, code: 400, errHas: "does not validate"},
		{name: "delete config frontend", req: apiCall{"DELETE", "/v1/frontends/web", nil}, code: 409, errHas: "edit the file"},
		{name: "delete config server", req: apiCall{"DELETE", "/v1/backends/web/servers/s1", nil}, code: 409, errHas: "edit the file"},
		{name: "delete missing frontend", req: apiCall{"DELETE", "/v1/frontends/ghost", nil}, code: 404},
		{name: "get frontend", setup: []apiCall{nsA, beAPI, feAPI}, req: apiCall{"GET", "/v1/frontends/api-fe", nil}, code: 200, check: func(t *testing.T, _ *testDaemon, b []byte) {
			if f := decodeAs[api.Frontend](t, b); f.Name != "api-fe" || f.Backend != "api-be" || len(f.Binds) != 1 {
				t.Fatalf("got %s", b)
			}
		}},
		{name: "get missing namespace", req: apiCall{"GET", "/v1/namespaces/ghost", nil}, code: 404},
		{name: "stats", setup: []apiCall{nsA}, req: apiCall{"GET", "/v1/stats", nil}, code: 200, check: func(t *testing.T, _ *testDaemon, b []byte) {
			st := decodeAs[api.Stats](t, b)
			if st.Frontends != 1 || st.Backends != 1 || st.Servers != 1 || st.Namespaces != 1 || st.Connections != 0 || st.Uptime == "" {
				t.Fatalf("stats %s", b)
			}
		}},
		{name: "connections", req: apiCall{"GET", "/v1/connections", nil}, code: 200, check: func(t *testing.T, _ *testDaemon, b []byte) {
			if got := decodeAs[[]api.Connection](t, b); got == nil || len(got) != 0 {
				t.Fatalf("connections of an idle daemon: %s, want []", b)
			}
		}},
		{name: "delete namespace in use", setup: []apiCall{nsA, beAPI}, req: delNsA, code: 409, errHas: "in use by"},
		{name: "delete api server", setup: []apiCall{nsA, s2}, req: apiCall{"DELETE", "/v1/backends/web/servers/s2", nil}, code: 204, check: func(t *testing.T, td *testDaemon, _ []byte) {
			var be api.Backend
			td.call("GET", "/v1/backends/web", nil, &be)
			if len(be.Servers) != 1 || be.Servers[0].Name != "s1" {
				t.Fatalf("backend web after delete: %+v", be.Servers)
			}
		}},
		{name: "delete api backend in use", setup: []apiCall{nsA, beAPI, feAPI}, req: apiCall{"DELETE", "/v1/backends/api-be", nil}, code: 400, errHas: "does not validate"},
		{name: "delete api frontend", setup: []apiCall{nsA, beAPI, feAPI}, req: apiCall{"DELETE", "/v1/frontends/api-fe", nil}, code: 204, check: gone("/v1/frontends/api-fe")},
		{name: "delete api backend", setup: []apiCall{nsA, beAPI}, req: apiCall{"DELETE", "/v1/backends/api-be", nil}, code: 204, check: gone("/v1/backends/api-be")},
		{name: "delete namespace", setup: []apiCall{nsA}, req: delNsA, code: 204, check: gone("/v1/namespaces/tenant-a")},
		{name: "delete namespace again", setup: []apiCall{nsA, delNsA}, req: delNsA, code: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := startTestDaemon(t, baseCfg, "")
			for _, s := range tc.setup {
				if code, b := td.do(s.method, s.path, s.body); code >= 300 {
					t.Fatalf("setup %s %s: %d %s", s.method, s.path, code, b)
				}
			}
			code, b := td.do(tc.req.method, tc.req.path, tc.req.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d (%s)", code, tc.code, b)
			}
			if code >= 300 {
				e := decodeAs[api.Error](t, b)
				if e.Error == "" || !strings.Contains(e.Error+strings.Join(e.Details, "\n"), tc.errHas) {
					t.Fatalf("error %s lacks %q", b, tc.errHas)
				}
				return
			}
			if tc.check == nil {
				t.Fatal("a success row must check the answer")
			}
			tc.check(t, td, b)
		})
	}
}

// TestRuntimeObjectsServeAndPersist: objects added through the API serve
// traffic and survive a restart: the daemon stops, a new one starts on the
// same files, and serves them again. A namespace whose file is gone by then
// is dropped at restore, with a log line.
func TestRuntimeObjectsServeAndPersist(t *testing.T) {
	a := testns.New(t, "A")
	gone := testns.New(t, "G")
	stateFile := filepath.Join(t.TempDir(), "state.json")
	td := startTestDaemon(t, baseCfg, stateFile)
	serveIn(t, a, "127.0.0.1:17911", "in-A")
	steps := []struct {
		path string
		body any
	}{
		{"/v1/namespaces", api.Namespace{Name: "ta", Path: "/var/run/netns/" + a}},
		{"/v1/namespaces", api.Namespace{Name: "tg", Path: "/var/run/netns/" + gone}},
		{"/v1/backends", api.Backend{Name: "be", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:17911", Namespace: "ta"}}}},
		{"/v1/frontends", api.Frontend{Name: "fe", Binds: []api.Bind{{Addr: "127.0.0.1:17910"}}, Backend: "be"}},
	}
	for _, s := range steps {
		if code, e := td.call("POST", s.path, s.body, nil); code != 201 {
			t.Fatalf("POST %s: %d %+v", s.path, code, e)
		}
	}
	expectAnswer(t, "127.0.0.1:17910", "in-A")
	var saved State
	b, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &saved); err != nil || len(saved.Frontends) != 1 || len(saved.Namespaces) != 2 {
		t.Fatalf("state file: %v %s", err, b)
	}

	// Restart: stop the daemon (its listener closes), delete tg's
	// namespace, start a new daemon on the same state file.
	td.stop()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:17910", time.Second); err == nil {
		c.Close()
		t.Fatal("127.0.0.1:17910 still accepts after the daemon stopped")
	}
	testns.Delete(gone)
	td2 := startTestDaemon(t, baseCfg, stateFile)
	var nss []api.Namespace
	td2.call("GET", "/v1/namespaces", nil, &nss)
	if len(nss) != 1 || nss[0].Name != "ta" || nss[0].State != api.StateAvailable {
		t.Fatalf("namespaces after restart: %+v", nss)
	}
	var fe api.Frontend
	if code, e := td2.call("GET", "/v1/frontends/fe", nil, &fe); code != 200 || fe.Backend != "be" || fe.Source != api.SourceAPI {
		t.Fatalf("frontend fe after restart: %d %+v %+v", code, e, fe)
	}
	var be api.Backend
	if code, e := td2.call("GET", "/v1/backends/be", nil, &be); code != 200 || len(be.Servers) != 1 || be.Servers[0].Namespace != "ta" {
		t.Fatalf("backend be after restart: %d %+v %+v", code, e, be)
	}
	expectAnswer(t, "127.0.0.1:17910", "in-A")
	if !strings.Contains(td2.log.String(), "restore: namespace dropped") || !strings.Contains(td2.log.String(), "netns=tg") {
		t.Fatalf("no log line for the dropped namespace tg:\n%s", td2.log)
	}
}

func TestStateFileCrashAndCorruption(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	st := &store{path: path}
	want := State{Namespaces: []api.Namespace{{Name: "a"}}}
	if err := st.save(want); err != nil {
		t.Fatal(err)
	}
	// A crash between writing the temporary file and the rename leaves a
	// stray temp file and the old state: load returns the old state.
	mustWrite(t, filepath.Join(dir, ".state-123.tmp"), `{"version":1,"namespaces":[{"name":"half`)
	got, err := st.load()
	if err != nil || len(got.Namespaces) != 1 || got.Namespaces[0].Name != "a" {
		t.Fatalf("after crash: %+v, %v", got, err)
	}
	for _, tc := range []struct{ name, content string }{
		{"truncated", `{"version":1,"namespaces":[`},
		{"not json", "garbage"},
		{"wrong version", `{"version":99}`},
		{"unknown field", `{"version":1,"extra":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustWrite(t, path, tc.content)
			got, err := st.load()
			if err == nil || !strings.Contains(err.Error(), "moved to") || len(got.Namespaces) != 0 {
				t.Fatalf("corrupt state: %+v, %v", got, err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatal("corrupt file left in place")
			}
			q, _ := filepath.Glob(path + ".corrupt-*")
			found := false
			for _, f := range q {
				if b, _ := os.ReadFile(f); string(b) == tc.content {
					found = true
				}
			}
			if !found {
				t.Fatalf("no quarantined copy among %v", q)
			}
		})
	}
}

// TestControlRefusesOtherUsers: a client running as nobody cannot use the
// socket: the file mode keeps it out, and with the mode opened the peer
// credential check answers 403.
func TestControlRefusesOtherUsers(t *testing.T) {
	td := startTestDaemon(t, baseCfg, "")
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	os.Chmod(filepath.Dir(td.socket), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(td.socket)), 0o755)
	asNobody := func() (string, error) {
		cmd := exec.Command("curl", "-s", "-w", "%{http_code}", "--unix-socket", td.socket, "http://x/v1/namespaces")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.Output()
		return string(out), err
	}
	if out, err := asNobody(); err == nil && strings.HasSuffix(out, "200") {
		t.Fatalf("nobody was served through a 0600 socket: %s", out)
	}
	os.Chmod(td.socket, 0o666)
	out, _ := asNobody()
	if !strings.HasSuffix(out, "403") || !strings.Contains(out, "permission denied") {
		t.Fatalf("peer check did not refuse nobody: %q", out)
	}
	if code, _ := td.call("GET", "/v1/healthz", nil, nil); code != 200 {
		t.Fatalf("root refused: %d", code)
	}
}

// serveIn runs a tag server inside ns.
func serveIn(t *testing.T, ns, addr, tag string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "socat", "TCP-LISTEN:"+strings.Split(addr, ":")[1]+",bind="+strings.Split(addr, ":")[0]+",reuseaddr,fork", "SYSTEM:echo "+tag)
	if err := cmd.Start(); err != nil {
		t.Skipf("socat: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

func expectAnswer(t *testing.T, addr, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			last = strings.TrimSpace(string(b))
			if last == want {
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s answered %q, want %q", addr, last, want)
}
