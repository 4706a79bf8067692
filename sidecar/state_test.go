package sidecar

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"golang.org/x/sys/unix"
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

// TestMergeKeepsInputsClean: the files' model and the state are shared
// between plans, so a server added to a backend (from st.Servers) must not
// stick to what the next plan starts from and show up twice.
func TestMergeKeepsInputsClean(t *testing.T) {
	file, err := config.Parse("f.cfg", []byte(restoreCfg("127.0.0.1:19394", "127.0.0.1:19395")))
	if err != nil {
		t.Fatal(err)
	}
	st := State{
		Backends: []api.Backend{{Name: "api", Servers: []api.Server{{Backend: "api", Name: "a", Addr: "127.0.0.1:19395"}}}},
		Servers:  []api.Server{{Backend: "api", Name: "b", Addr: "127.0.0.1:19396"}, {Backend: "be", Name: "x", Addr: "127.0.0.1:19396"}},
	}
	for round := 1; round <= 3; round++ {
		m, err := merge(file, st, nil)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, b := range m.Backends {
			if b.Name == "api" && len(b.Servers) != 2 {
				t.Fatalf("round %d: backend api has %d servers, want 2", round, len(b.Servers))
			}
		}
		if n := len(file.Backends[0].Servers); n != 1 {
			t.Fatalf("round %d: the files' backend %s has %d servers, want 1", round, file.Backends[0].Name, n)
		}
	}
}

// TestCNIAttachmentWritesNoState: with a record directory, CNI attachments
// are durable as the plugin's records (written before the plugin calls
// the daemon, replayed at start), so an ADD or DEL must not
// rewrite and fsync the whole state file: that made every ADD cost grow
// with the live objects. An attachment without that guarantee (source
// "oci") is still written to the state file, and both come back after a
// restart.
func TestCNIAttachmentWritesNoState(t *testing.T) {
	ns := testns.New(t, "cw")
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:19394", "127.0.0.1:19395"), State{}, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	ino := func() uint64 {
		var st unix.Stat_t
		if err := unix.Stat(d.opt.StateFile, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	before := ino()
	cni := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "cni1", IfName: "eth0"}, Netns: "/var/run/netns/" + ns}
	// As the plugin does: the record first.
	if err := hooks.WriteRecord(d.opt.AttachmentDir, hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "cni1", IfName: "eth0"},
		Netns: cni.Netns}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PutAttachment(cni); err != nil {
		t.Fatal(err)
	}
	if ino() != before {
		t.Errorf("a CNI attachment's ADD rewrote the state file")
	}
	oci := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "oci1", IfName: "eth0"}, Netns: cni.Netns, Source: api.SourceOCI}
	if _, err := d.PutAttachment(oci); err != nil {
		t.Fatal(err)
	}
	if ino() == before {
		t.Errorf("an OCI attachment without a record was not written to the state file")
	}
	// A successor restores both: one from its record, one from the state.
	d2, err := New(Options{ConfigFiles: d.opt.ConfigFiles, StateFile: d.opt.StateFile, AttachmentDir: d.opt.AttachmentDir,
		Logger: d.log})
	if err != nil {
		t.Fatal(err)
	}
	stopDaemon(d)
	t.Cleanup(func() { stopDaemon(d2) })
	if err := d2.Start(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, a := range d2.state.Attachments {
		keys = append(keys, a.ContainerID)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"cni1", "oci1"}) {
		t.Errorf("restored attachments %v, want cni1 and oci1", keys)
	}
	before = ino()
	if err := d2.DeleteAttachment(cni.AttachmentKey); err != nil {
		t.Fatal(err)
	}
	if ino() != before {
		t.Errorf("a CNI attachment's DEL rewrote the state file")
	}
}

// TestSameAttachmentFields: sameAttachment compares api.Attachment field
// by field; a new field must be added there, or a changed attachment
// would be taken for unchanged and keep its old exposures.
func TestSameAttachmentFields(t *testing.T) {
	known := []string{"AttachmentKey", "Netns", "Name", "Source", "Tenant", "IPs", "PortMappings", "Metadata", "State", "Exposed", "Exposures", "Problems", "Owner", "Services"}
	typ := reflect.TypeOf(api.Attachment{})
	var got []string
	for i := 0; i < typ.NumField(); i++ {
		got = append(got, typ.Field(i).Name)
	}
	slices.Sort(got)
	slices.Sort(known)
	if !slices.Equal(got, known) {
		t.Fatalf("api.Attachment has fields %v; sameAttachment knows %v: update it", got, known)
	}
	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "c", IfName: "eth0"}, Netns: "/n",
		IPs: []string{"10.0.0.2"}, PortMappings: []api.PortMapping{{HostPort: 1, ContainerPort: 2}}, Metadata: map[string]string{"k": "v"}}
	if !sameAttachment(a, a) {
		t.Error("an attachment differs from itself")
	}
	for name, change := range map[string]func(*api.Attachment){
		"netns":        func(b *api.Attachment) { b.Netns = "/m" },
		"name":         func(b *api.Attachment) { b.Name = "x" },
		"ips":          func(b *api.Attachment) { b.IPs = []string{"10.0.0.3"} },
		"portMappings": func(b *api.Attachment) { b.PortMappings = []api.PortMapping{{HostPort: 1, ContainerPort: 3}} },
		"metadata":     func(b *api.Attachment) { b.Metadata = map[string]string{"k": "w"} },
		"tenant":       func(b *api.Attachment) { b.Tenant = "t" },
	} {
		b := a
		change(&b)
		if sameAttachment(a, b) {
			t.Errorf("a changed %s is taken for unchanged", name)
		}
	}
}

// TestAttachmentWritesBatched: attachment writes that wait for the lock
// are applied together and each gets its answer: with one plan when they
// need planning (no attachment directory: the state file holds them), with
// none through the fast path (delta.go).
func TestAttachmentWritesBatched(t *testing.T) {
	ns := testns.New(t, "ab")
	for _, tc := range []struct {
		name      string
		recorded  bool
		wantPlans int
	}{{"planned", false, 1}, {"fast", true, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newRestoreDaemon(t, restoreCfg("127.0.0.1:19394", "127.0.0.1:19395"), State{}, io.Discard)
			if tc.recorded {
				d.opt.AttachmentDir = t.TempDir()
			}
			t.Cleanup(func() { stopDaemon(d) })
			if err := d.Start(); err != nil {
				t.Fatal(err)
			}
			const n = 8
			d.mu.Lock() // a write in progress
			plans := d.plans
			errs := make(chan error, n)
			for i := 0; i < n; i++ {
				go func() {
					_, err := d.PutAttachment(api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: fmt.Sprintf("b%d", i), IfName: "eth0"},
						Netns: "/var/run/netns/" + ns})
					errs <- err
				}()
			}
			for waited := 0; ; waited++ {
				d.batch.mu.Lock()
				q := len(d.batch.queue)
				d.batch.mu.Unlock()
				if q == n {
					break
				}
				if waited > 5000 {
					d.mu.Unlock()
					t.Fatalf("%d of %d writes queued", q, n)
				}
				time.Sleep(time.Millisecond)
			}
			d.mu.Unlock()
			for i := 0; i < n; i++ {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if got := d.plans - plans; got != tc.wantPlans || len(d.state.Attachments) != n {
				t.Errorf("%d queued writes: %d plans, %d attachments; want %d and %d", n, got, len(d.state.Attachments), tc.wantPlans, n)
			}
		})
	}
}

// TestStateWithoutManifestsOmitsThem: a state without manifests is saved
// without the key (an older daemon, which refuses unknown fields, still
// reads it); one with manifests saves and loads them.
func TestStateWithoutManifestsOmitsThem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	st := &store{path: path}
	if err := st.save(State{Namespaces: []api.Namespace{{Name: "a"}}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "manifests") {
		t.Fatalf("empty manifests saved: %s", b)
	}
	want := manifest.Set{Tenants: []manifest.Tenant{{Meta: manifest.Meta{Name: "acme"}, Spec: manifest.TenantSpec{
		Frontends: []api.Frontend{{Name: "f", Backend: "b", Binds: []api.Bind{{Addr: "127.0.0.1:24560"}}}}}}}}
	if err := st.save(State{Manifests: want}); err != nil {
		t.Fatal(err)
	}
	got, err := st.load()
	if err != nil || !reflect.DeepEqual(got.Manifests, want) {
		t.Fatalf("loaded %+v, %v; want %+v", got.Manifests, err, want)
	}
}

// TestReplayRemovesRecordsOfAnEarlierBoot: records are not fsynced (they
// only mean something while the kernel that made their namespaces runs),
// so one may outlive a crash of the kernel; its path can name another
// namespace then. Replay must neither bring it back nor keep it.
func TestReplayRemovesRecordsOfAnEarlierBoot(t *testing.T) {
	ns := testns.New(t, "rpb")
	dir := t.TempDir()
	d := &Daemon{opt: Options{AttachmentDir: dir}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	netnsPath := filepath.Join("/var/run/netns", ns)
	if err := hooks.WriteRecord(dir, hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "now", IfName: "eth0"},
		Netns: netnsPath}); err != nil {
		t.Fatal(err)
	}
	stale := hooks.RecordPath(dir, hooks.AttachmentKey{ContainerID: "before", IfName: "eth0"})
	if err := os.WriteFile(stale, []byte(`{"version":1,"boot":"00000000-0000-0000-0000-000000000000",`+
		`"attachment":{"containerID":"before","ifname":"eth0","netns":"`+netnsPath+`"}}`), 0o640); err != nil {
		t.Fatal(err)
	}
	got := d.replay(State{})
	if len(got.Attachments) != 1 || got.Attachments[0].ContainerID != "now" {
		t.Fatalf("replayed %+v, want only this boot's record", got.Attachments)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the earlier boot's record is still there: %v", err)
	}
}
