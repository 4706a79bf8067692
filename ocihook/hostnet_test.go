package ocihook

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
)

// ownNetnsPid returns the pid of a process in a network namespace of its
// own, as a container's is, until the test ends. (Not a thread of the test
// that unshares: Go may run it on the main thread, whose namespace
// /proc/self/ns/net names.)
func ownNetnsPid(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in a network namespace of its own: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestRunHostNetwork: a container that shares the host's network
// namespace (podman/runc --network host: its process's /proc/PID/ns/net is
// the hook's own namespace) has no namespace of its own to register. The
// hook names nothing, records nothing, tells the daemon nothing, says so
// once and succeeds, at createRuntime and at poststop; a container with a
// namespace of its own is still registered.
func TestRunHostNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount a network namespace")
	}
	netnsDir, records := t.TempDir(), t.TempDir()
	var warnings []string
	h := Hook{Client: hooks.NewClient(filepath.Join(t.TempDir(), "down.sock"), hooks.WithTimeout(time.Second)),
		NetnsDir: netnsDir, RecordDir: records, Warn: func(msg string) { warnings = append(warnings, msg) }}
	st := State{ID: "hh0host0000000001", Status: "creating", Pid: os.Getpid(), // the test runs in the hook's namespace
		Annotations: map[string]string{AnnExpose: "20400:80"}}
	t.Cleanup(func() { h.stop(context.Background(), st) })
	ctx := context.Background()

	if err := h.Run(ctx, "createRuntime", st); err != nil {
		t.Fatalf("createRuntime of a host-network container: %v", err)
	}
	if entries, _ := os.ReadDir(netnsDir); len(entries) != 0 {
		t.Errorf("the host's network namespace was named for the container: %v", entries)
	}
	if list, errs := hooks.ListRecords(records); len(list) != 0 || len(errs) != 0 {
		t.Errorf("the host's network namespace was recorded as the container's: %+v %v", list, errs)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "host's network namespace") {
		t.Errorf("createRuntime said %q, want one message about the host's network namespace", warnings)
	}

	warnings = nil
	if err := h.Run(ctx, "poststop", State{ID: st.ID, Status: "stopped"}); err != nil {
		t.Fatalf("poststop of a host-network container: %v", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "nothing to remove") {
		t.Errorf("poststop said %q, want one message that there is nothing to remove", warnings)
	}

	// Unchanged for a container with a namespace of its own.
	warnings = nil
	own := State{ID: "hh0own00000000001", Status: "creating", Pid: ownNetnsPid(t)}
	t.Cleanup(func() { h.stop(context.Background(), own) })
	if err := h.Run(ctx, "createRuntime", own); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, fileName(own.ID))); err != nil {
		t.Errorf("a container's own namespace was not named: %v", err)
	}
	if _, err := hooks.ReadRecord(records, hooks.AttachmentKey{ContainerID: own.ID, IfName: IfName}); err != nil {
		t.Errorf("a container's own namespace was not recorded: %v", err)
	}
}
