package sidecar

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

// restoreCfg: a file frontend on addr and the file backend "be" that the
// saved API servers join.
func restoreCfg(addr, server string) string {
	return fmt.Sprintf("frontend web\n    bind %s\n    default_backend be\nbackend be\n    server s0 %s\n", addr, server)
}

// newRestoreDaemon writes cfg and st to a temp dir and builds a daemon on
// them, without starting it.
func newRestoreDaemon(tb testing.TB, cfg string, st State, log io.Writer) *Daemon {
	tb.Helper()
	testns.RequireRoot(tb)
	dir := tb.TempDir()
	cfgPath := filepath.Join(dir, "n.cfg")
	mustWrite(tb, cfgPath, cfg)
	stateFile := filepath.Join(dir, "state.json")
	if err := (&store{path: stateFile}).save(st); err != nil {
		tb.Fatal(err)
	}
	d, err := New(Options{ConfigFiles: []string{cfgPath}, StateFile: stateFile,
		Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func stopDaemon(d *Daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.engine.Shutdown(ctx)
	d.reg.Close()
}

// apiServers are n saved servers of the file backend "be".
func apiServers(n int, addr string) []api.Server {
	out := make([]api.Server, n)
	for i := range out {
		out[i] = api.Server{Backend: "be", Name: fmt.Sprintf("s%d", i+1), Addr: addr, Source: api.SourceAPI}
	}
	return out
}

// TestRestorePlansOnce: a saved state is validated as a whole, once, at
// start; restore used to plan the whole state again for every object, so
// start time grew with the square of the objects. Objects that no longer
// fit are still dropped one by one, with the others kept, and the number
// of planning passes stays small however many objects there are.
func TestRestorePlansOnce(t *testing.T) {
	t.Run("valid state", func(t *testing.T) {
		st := State{Servers: apiServers(300, "127.0.0.1:19301")}
		for i := 0; i < 50; i++ {
			name := fmt.Sprintf("b%d", i)
			st.Backends = append(st.Backends, api.Backend{Name: name, Source: api.SourceAPI,
				Servers: []api.Server{{Backend: name, Name: "x", Addr: "127.0.0.1:19301"}}})
			st.Frontends = append(st.Frontends, api.Frontend{Name: fmt.Sprintf("f%d", i), Source: api.SourceAPI,
				Binds: []api.Bind{{Addr: fmt.Sprintf("127.0.0.2:%d", 19310+i)}}, Backend: name})
		}
		d := newRestoreDaemon(t, restoreCfg("127.0.0.1:19300", "127.0.0.1:19301"), st, io.Discard)
		t.Cleanup(func() { stopDaemon(d) })
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		if d.plans != 1 {
			t.Errorf("start planned %d times for %d objects, want once", d.plans, 400)
		}
		if got := len(d.state.Servers) + len(d.state.Backends) + len(d.state.Frontends); got != 400 {
			t.Errorf("restored %d objects, want 400", got)
		}
	})
	t.Run("attachment records replayed", func(t *testing.T) {
		ns := testns.New(t, "rr")
		dir := t.TempDir()
		const n = 60
		for i := 0; i < n+1; i++ {
			port := 19300 + i%n // the last one asks for the first one's port
			a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: fmt.Sprintf("rec%d", i), IfName: "eth0"},
				Netns: "/var/run/netns/" + ns, PortMappings: []hooks.PortMapping{{HostPort: port, ContainerPort: 80, HostIP: "127.0.0.3"}}}
			if err := hooks.WriteRecord(dir, a); err != nil {
				t.Fatal(err)
			}
		}
		cfgPath := filepath.Join(dir, "n.cfg")
		mustWrite(t, cfgPath, restoreCfg("127.0.0.1:19300", "127.0.0.1:19301"))
		d, err := New(Options{ConfigFiles: []string{cfgPath}, AttachmentDir: dir,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopDaemon(d) })
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		if d.plans != 1 || len(d.state.Attachments) != n+1 {
			t.Errorf("start planned %d times for %d records, restored %d attachments", d.plans, n+1, len(d.state.Attachments))
		}
		if st := d.attStatus[api.AttachmentKey{ContainerID: fmt.Sprintf("rec%d", n), IfName: "eth0"}]; len(st.exposures) != 0 || len(st.problems) != 1 {
			t.Errorf("the record asking for a taken port: %+v", st)
		}
	})
	t.Run("objects that no longer fit", func(t *testing.T) {
		st := State{Servers: apiServers(200, "127.0.0.1:19301")}
		st.Servers = append(st.Servers, api.Server{Backend: "gone", Name: "orphan", Addr: "127.0.0.1:19301"})
		st.Servers = append(st.Servers, api.Server{Backend: "be", Name: "bad addr", Addr: "127.0.0.1:19301"})
		st.Backends = []api.Backend{
			{Name: "web", Servers: []api.Server{{Backend: "web", Name: "x", Addr: "127.0.0.1:19301"}}}, // now a file frontend's name: fine, backends are another namespace
			{Name: "be", Servers: []api.Server{{Backend: "be", Name: "y", Addr: "127.0.0.1:19301"}}},   // the files define it now
			{Name: "ok", Servers: []api.Server{{Backend: "ok", Name: "z", Addr: "127.0.0.1:19301"}}},
		}
		st.Frontends = []api.Frontend{
			{Name: "web", Binds: []api.Bind{{Addr: "127.0.0.2:19302"}}, Backend: "ok"},   // the files define it now
			{Name: "clash", Binds: []api.Bind{{Addr: "127.0.0.1:19300"}}, Backend: "ok"}, // the files' port
			// The previous version took it; the wildcard overlaps the files' bind.
			{Name: "overlap", Binds: []api.Bind{{Addr: "0.0.0.0:19300"}}, Backend: "ok"},
			{Name: "dangling", Binds: []api.Bind{{Addr: "127.0.0.2:19303"}}, Backend: "nothing"},
			{Name: "fine", Binds: []api.Bind{{Addr: "127.0.0.2:19304"}}, Backend: "ok"},
		}
		log := &testlog.Buffer{}
		d := newRestoreDaemon(t, restoreCfg("127.0.0.1:19300", "127.0.0.1:19301"), st, log)
		t.Cleanup(func() { stopDaemon(d) })
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		if d.plans > 4 {
			t.Errorf("start planned %d times, want a few passes, not one per object", d.plans)
		}
		var names []string
		for _, b := range d.state.Backends {
			names = append(names, "backend "+b.Name)
		}
		for _, f := range d.state.Frontends {
			names = append(names, "frontend "+f.Name)
		}
		if got, want := strings.Join(names, ","), "backend web,backend ok,frontend fine"; got != want {
			t.Errorf("restored %s, want %s", got, want)
		}
		if len(d.state.Servers) != 200 {
			t.Errorf("restored %d servers, want the 200 valid ones", len(d.state.Servers))
		}
		for _, dropped := range []string{"backend be", "server gone/orphan", "server be/bad addr", "frontend web",
			"frontend clash", "frontend overlap", "frontend dangling"} {
			if !strings.Contains(log.String(), fmt.Sprintf("object=%q", dropped)) {
				t.Errorf("no log line for the dropped %s in\n%s", dropped, log.String())
			}
		}
	})
}
