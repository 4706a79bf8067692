package netns

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testns"
	"golang.org/x/sys/unix"
)

// TestCheckPath: only a network namespace file passes; any other namespace
// type is refused with what was found and what to pass instead.
func TestCheckPath(t *testing.T) {
	testns.RequireRoot(t)
	a := testns.New(t, "T")
	plain := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(plain, nil, 0o644)
	for _, tc := range []struct {
		path string
		has  string // "" means it passes
	}{
		{"/proc/self/ns/net", ""},
		{filepath.Join(DefaultDir, a), ""},
		{"/proc/self/ns/mnt", "is a mnt namespace"},
		{"/proc/self/ns/uts", "is a uts namespace"},
		{"/proc/self/ns/ipc", "is an ipc namespace"},
		{"/proc/self/ns/pid", "is a pid namespace"},
		{"/proc/self/ns/user", "is a user namespace"},
		{"/proc/self/ns/cgroup", "is a cgroup namespace"},
		{plain, "is not a namespace file"},
		{t.TempDir(), "is not a namespace file"},
		{filepath.Join(t.TempDir(), "missing"), "no such file"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			err := CheckPath(tc.path)
			if tc.has == "" {
				if err != nil {
					t.Fatalf("CheckPath: %v", err)
				}
				if !Exists(tc.path) {
					t.Fatal("Exists is false for a network namespace")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.has) {
				t.Fatalf("CheckPath = %v, want an error saying %q", err, tc.has)
			}
			if tc.has != "no such file" && !errors.Is(err, ErrNotNamespace) {
				t.Fatalf("CheckPath = %v, want ErrNotNamespace", err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %q does not name the path", err)
			}
			if !strings.Contains(err.Error(), "no such file") && !strings.Contains(err.Error(), "/proc/PID/ns/net") {
				t.Fatalf("error %q does not say what to pass instead", err)
			}
			if Exists(tc.path) {
				t.Fatal("Exists is true for something that is not a network namespace")
			}
		})
	}
}

// TestAttachRefusesOtherNamespaceTypes: AttachFD names only network
// namespaces; a mount namespace fd is refused and leaves no file behind.
func TestAttachRefusesOtherNamespaceTypes(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	fd, err := unix.Open("/proc/self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	_, err = AttachFD(dir, "m", fd)
	if err == nil || !strings.Contains(err.Error(), "mnt namespace") {
		Detach(dir, "m")
		t.Fatalf("AttachFD of a mount namespace: %v, want refused", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "m")); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("refused attach left %s behind (%v)", filepath.Join(dir, "m"), serr)
	}
	p, err := Attach(dir, "n", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Detach(dir, "n") })
	if err := CheckPath(p); err != nil {
		t.Fatalf("attached pid namespace: %v", err)
	}
}

// TestResyncLogsAnUnopenableNamespaceOnce: a path that holds another kind
// of namespace (e.g. restored from an old state file) is reported once,
// not at every resync.
func TestResyncLogsAnUnopenableNamespaceOnce(t *testing.T) {
	testns.RequireRoot(t)
	var buf testlog.Buffer
	r, err := NewRegistry(t.TempDir(), newTextLogger(&buf))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Register(Entry{Name: "m", Path: "/proc/self/ns/mnt", Source: "api"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		r.Resync()
	}
	logs := buf.String()
	if n := strings.Count(logs, "netns=m "); n != 1 {
		t.Fatalf("%d log lines about m after 5 resyncs, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "mnt namespace") {
		t.Fatalf("log does not say what the path holds:\n%s", logs)
	}
	if _, err := r.Get("m"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get: %v, want ErrUnavailable", err)
	}
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
