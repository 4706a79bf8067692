package sidecar

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
)

// TestFailedWriteLeavesStateAlone: a change works on a copy of the state
// that shares what changes never touch in place; a change that cannot be
// persisted must leave the running state exactly as it was, also for a
// delete from inside a backend's server list.
func TestFailedWriteLeavesStateAlone(t *testing.T) {
	st := State{Backends: []api.Backend{{Name: "api", Source: api.SourceAPI, Servers: []api.Server{
		{Backend: "api", Name: "a", Addr: "127.0.0.1:19395"},
		{Backend: "api", Name: "b", Addr: "127.0.0.1:19396"},
		{Backend: "api", Name: "c", Addr: "127.0.0.1:19397"},
	}}}}
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:19394", "127.0.0.1:19395"), st, io.Discard)
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	// A non-empty directory where the state file was: the rename fails.
	os.Remove(d.opt.StateFile)
	os.MkdirAll(filepath.Join(d.opt.StateFile, "x"), 0o700)
	names := func() []string {
		var out []string
		for _, s := range d.state.Backends[0].Servers {
			out = append(out, s.Name)
		}
		return out
	}
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"delete a server of an API backend", func() error { return d.DeleteServer("api", "a") }},
		{"add a server to an API backend", func() error {
			return d.AddServer(api.Server{Backend: "api", Name: "d", Addr: "127.0.0.1:19398"})
		}},
		{"delete the backend", func() error { return d.DeleteBackend("api") }},
	} {
		if err := change.do(); err == nil {
			t.Fatalf("%s: persisted into a directory", change.name)
		}
		if got := names(); !slices.Equal(got, []string{"a", "b", "c"}) || len(d.state.Backends) != 1 {
			t.Fatalf("after a failed %s: servers %v", change.name, got)
		}
	}
}

// TestParseCacheKeepsParsesClean: parses are shared between plans, so a
// server added to an API backend (restored from st.Servers) must not stick
// to the shared parse and show up twice at the next plan.
func TestParseCacheKeepsParsesClean(t *testing.T) {
	file, err := config.Parse("f.cfg", []byte(restoreCfg("127.0.0.1:19394", "127.0.0.1:19395")))
	if err != nil {
		t.Fatal(err)
	}
	st := State{
		Backends: []api.Backend{{Name: "api", Servers: []api.Server{{Backend: "api", Name: "a", Addr: "127.0.0.1:19395"}}}},
		Servers:  []api.Server{{Backend: "api", Name: "b", Addr: "127.0.0.1:19396"}},
	}
	var pc parseCache
	for round := 1; round <= 3; round++ {
		m, err := mergeWith(&pc, file, st, nil)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, b := range m.Backends {
			if b.Name == "api" && len(b.Servers) != 2 {
				t.Fatalf("round %d: backend api has %d servers, want 2", round, len(b.Servers))
			}
		}
		if len(pc.prev) != 2 {
			t.Fatalf("round %d: %d parses kept, want 2", round, len(pc.prev))
		}
	}
}
