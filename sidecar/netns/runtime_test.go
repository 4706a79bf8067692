package netns

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestRegisterByPathAndPid: run-time entries by path and by pid (attached
// under a name), allowlist by registration, and Unregister closing handles
// that nothing else wants.
func TestRegisterByPathAndPid(t *testing.T) {
	a := testns.New(t, "P")
	dir := t.TempDir()
	r, err := NewRegistry(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// By path: a namespace outside the registry's directory.
	if err := r.Register(Entry{Name: "web", Path: filepath.Join(DefaultDir, a), Source: "api", Allowed: true,
		Metadata: map[string]string{"pod": "web-0"}}); err != nil {
		t.Fatal(err)
	}
	h, err := r.Get("web")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Allowed("", "web") || r.Allowed("", a) {
		t.Fatal("allowlist: registered entry must be allowed, others not")
	}
	r.Register(Entry{Name: "other", Path: filepath.Join(DefaultDir, a), Tenant: "blue", Allowed: true})
	if r.Allowed("default", "other") || !r.Allowed("blue", "other") || r.Allowed("blue", "web") {
		t.Fatal("allowlist must be per tenant")
	}
	r.Unregister("other")
	st := r.Status()
	if len(st) != 1 || st[0].Name != "web" || !st[0].Available || st[0].Metadata["pod"] != "web-0" || st[0].Source != "api" {
		t.Fatalf("status %+v", st)
	}
	if err := r.Register(Entry{Name: "../x"}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	if err := r.Register(Entry{Name: "rel", Path: "netns/x"}); err == nil {
		t.Fatal("relative path accepted")
	}

	// By pid: a sleeping process inside a, attached under a name in dir.
	cmd := exec.Command("ip", "netns", "exec", a, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// ip netns exec enters the namespace after it started: wait for it.
	for i := 0; ; i++ {
		id, err := statIdentity(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if err == nil && id.Ino == h.Identity().Ino {
			break
		}
		if i > 200 {
			t.Fatal("process never entered the namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	path, err := Attach(dir, "bypid", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Detach(dir, "bypid") })
	if _, err := Attach(dir, "bypid", cmd.Process.Pid); !errors.Is(err, ErrExists) {
		t.Fatalf("second attach: %v", err)
	}
	r.Register(Entry{Name: "bypid", Source: "api"})
	hp, err := r.Get("bypid")
	if err != nil {
		t.Fatal(err)
	}
	if hp.Identity().Ino != h.Identity().Ino || hp.Path() != path {
		t.Fatalf("pid namespace identity %v, path %s; want %v", hp.Identity(), hp.Path(), h.Identity())
	}

	// Unregister closes what nothing else wants; a config name survives.
	r.SetNames([]string{"bypid"})
	if !r.Unregister("web") || r.Unregister("web") {
		t.Fatal("Unregister result")
	}
	if h.Context().Err() == nil {
		t.Fatal("unregistered namespace still open")
	}
	r.Unregister("bypid")
	if hp.Context().Err() != nil {
		t.Fatal("config-named namespace closed by Unregister")
	}
	if err := Detach(dir, "bypid"); err != nil {
		t.Fatal(err)
	}
	r.Resync()
	if hp.Context().Err() == nil {
		t.Fatal("detached namespace still open after resync")
	}
}

// TestRegisterNeverRepointsConfigName: a run-time entry whose name the
// configuration files use, with another path, is refused and changes
// nothing; a later SetNames that takes over a run-time entry's name with
// another path drops the entry, so the name means the file again.
func TestRegisterNeverRepointsConfigName(t *testing.T) {
	a, b := testns.New(t, "F"), testns.New(t, "C")
	r, err := NewRegistry(DefaultDir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetNames([]string{a})
	h, err := r.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	want := h.Identity()
	if err := r.Register(Entry{Name: a, Path: filepath.Join(DefaultDir, b), Source: "cni"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("register over a config name: %v, want ErrConflict", err)
	}
	if h, err := r.Get(a); err != nil || h.Identity() != want {
		t.Fatalf("config name %s repointed: %v %v", a, h, err)
	}
	// The same path is no repointing (ip netns attach by pid, then add).
	if err := r.Register(Entry{Name: a, Source: "api"}); err != nil {
		t.Fatalf("register with the config's own path: %v", err)
	}
	r.Unregister(a)

	late := testns.Name("late")
	if err := r.Register(Entry{Name: late, Path: filepath.Join(DefaultDir, b), Source: "cni"}); err != nil {
		t.Fatal(err)
	}
	r.SetNames([]string{a, late})
	if st := r.Status(); !slices.ContainsFunc(st, func(e EntryStatus) bool { return e.Name == late && e.Source == "config" && !e.Available }) {
		t.Fatalf("a config name kept a run-time entry's other path: %+v", st)
	}
}
