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
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

type testDaemon struct {
	t      *testing.T
	d      *Daemon
	socket string
	state  string
	http   *http.Client
	log    *lockedBuffer
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
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if stateFile == "" {
		stateFile = filepath.Join(dir, "state.json")
	}
	logBuf := &lockedBuffer{}
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
	t.Cleanup(func() {
		cancel()
		<-served
		if err := <-runErr; err != nil {
			t.Errorf("daemon run: %v", err)
		}
	})
	return &testDaemon{t: t, d: d, socket: sock, state: stateFile, log: logBuf, http: unixClient(sock)}
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
}

// call sends a request and decodes the answer into out (if not nil).
func (td *testDaemon) call(method, path string, body any, out any) (int, api.Error) {
	td.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, "http://nsproxy"+path, rd)
	resp, err := td.http.Do(req)
	if err != nil {
		td.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode >= 300 {
		json.Unmarshal(b, &e)
		return resp.StatusCode, e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			td.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, e
}

const baseCfg = `
frontend web
    bind 127.0.0.1:17900
    default_backend web
backend web
    server s1 127.0.0.1:17901
`

func TestControlAPI(t *testing.T) {
	a := testns.New(t, "A")
	td := startTestDaemon(t, baseCfg, "")
	w := 2
	for _, tc := range []struct {
		name, method, path string
		body               any
		code               int
		errHas             string
	}{
		{"healthz", "GET", "/v1/healthz", nil, 200, ""},
		{"readyz", "GET", "/v1/readyz", nil, 200, ""},
		{"no such endpoint", "GET", "/v1/nothing", nil, 404, "no such endpoint"},
		{"add namespace by path", "POST", "/v1/namespaces", api.Namespace{Name: "tenant-a", Path: "/var/run/netns/" + a}, 201, ""},
		{"add namespace twice", "POST", "/v1/namespaces", api.Namespace{Name: "tenant-a", Path: "/var/run/netns/" + a}, 409, "already registered"},
		{"namespace bad name", "POST", "/v1/namespaces", api.Namespace{Name: "../etc"}, 400, "is invalid"},
		{"namespace path and pid", "POST", "/v1/namespaces", api.Namespace{Name: "x", Path: "/proc/1/ns/net", Pid: 1}, 400, "is invalid"},
		{"namespace not nsfs", "POST", "/v1/namespaces", api.Namespace{Name: "x", Path: "/etc/hostname"}, 400, "not a network namespace"},
		{"unknown field", "POST", "/v1/namespaces", `{"name":"x","colour":"red"}`, 400, "not valid JSON"},
		{"add backend", "POST", "/v1/backends", api.Backend{Name: "api-be", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:17903", Namespace: "tenant-a"}}}, 201, ""},
		{"add backend existing", "POST", "/v1/backends", api.Backend{Name: "web"}, 409, "already exists"},
		{"add server to config backend", "POST", "/v1/backends/web/servers", api.Server{Name: "s2", Addr: "127.0.0.1:17902", Namespace: "tenant-a", Weight: &w}, 201, ""},
		{"add server duplicate", "POST", "/v1/backends/web/servers", api.Server{Name: "s2", Addr: "127.0.0.1:17902"}, 409, "already exists"},
		{"add server bad addr", "POST", "/v1/backends/web/servers", api.Server{Name: "s3", Addr: "example.com:80"}, 400, ""},
		{"add server injection", "POST", "/v1/backends/web/servers", api.Server{Name: "s3", Addr: "10.0.0.1:80 namespace x"}, 400, "use letters"},
		{"add server no backend", "POST", "/v1/backends/nope/servers", api.Server{Name: "s", Addr: "127.0.0.1:1"}, 404, "nope"},
		{"add frontend", "POST", "/v1/frontends", api.Frontend{Name: "api-fe", Binds: []api.Bind{{Addr: "127.0.0.1:17904", Namespace: "tenant-a"}}, Backend: "api-be"}, 201, ""},
		{"add frontend missing backend", "POST", "/v1/frontends", api.Frontend{Name: "f2", Binds: []api.Bind{{Addr: "127.0.0.1:17905"}}, Backend: "ghost"}, 400, "does not validate"},
		{"add frontend dup bind", "POST", "/v1/frontends", api.Frontend{Name: "f3", Binds: []api.Bind{{Addr: "127.0.0.1:17900"}}, Backend: "web"}, 400, "does not validate"},
		{"delete config frontend", "DELETE", "/v1/frontends/web", nil, 409, "edit the file"},
		{"delete config server", "DELETE", "/v1/backends/web/servers/s1", nil, 409, "edit the file"},
		{"delete missing frontend", "DELETE", "/v1/frontends/ghost", nil, 404, ""},
		{"get frontend", "GET", "/v1/frontends/api-fe", nil, 200, ""},
		{"get missing namespace", "GET", "/v1/namespaces/ghost", nil, 404, ""},
		{"stats", "GET", "/v1/stats", nil, 200, ""},
		{"connections", "GET", "/v1/connections", nil, 200, ""},
		{"delete namespace in use", "DELETE", "/v1/namespaces/tenant-a", nil, 409, "in use by"},
		{"delete api server", "DELETE", "/v1/backends/web/servers/s2", nil, 204, ""},
		{"delete api backend in use", "DELETE", "/v1/backends/api-be", nil, 400, "does not validate"},
		{"delete api frontend", "DELETE", "/v1/frontends/api-fe", nil, 204, ""},
		{"delete api backend", "DELETE", "/v1/backends/api-be", nil, 204, ""},
		{"delete namespace", "DELETE", "/v1/namespaces/tenant-a", nil, 204, ""},
		{"delete namespace again", "DELETE", "/v1/namespaces/tenant-a", nil, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, e := td.call(tc.method, tc.path, tc.body, nil)
			if code != tc.code {
				t.Fatalf("status %d, want %d (%+v)", code, tc.code, e)
			}
			if tc.errHas != "" && !strings.Contains(e.Error+strings.Join(e.Details, "\n"), tc.errHas) {
				t.Fatalf("error %+v lacks %q", e, tc.errHas)
			}
		})
	}
}

// TestRuntimeObjectsServeAndPersist: objects added through the API serve
// traffic, survive a restart from the state file, and a namespace whose
// file is gone is dropped at restore.
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
	b, _ := os.ReadFile(stateFile)
	if err := json.Unmarshal(b, &saved); err != nil || len(saved.Frontends) != 1 || len(saved.Namespaces) != 2 {
		t.Fatalf("state file: %v %s", err, b)
	}
	// Restart: a second daemon on the same state file, with tg deleted.
	testns.Delete(gone)
	ctl := td // stop the first one by test cleanup order: start a new one after closing
	_ = ctl
	d2, err := New(Options{ConfigFiles: td.d.opt.ConfigFiles, StateFile: stateFile,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	st, _, _ := d2.restore(d2.state)
	if len(st.Namespaces) != 1 || st.Namespaces[0].Name != "ta" || len(st.Frontends) != 1 || len(st.Backends) != 1 {
		t.Fatalf("restored %+v", st)
	}
	d2.reg.Close()
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
	os.WriteFile(filepath.Join(dir, ".state-123.tmp"), []byte(`{"version":1,"namespaces":[{"name":"half`), 0o600)
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
			os.WriteFile(path, []byte(tc.content), 0o600)
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
