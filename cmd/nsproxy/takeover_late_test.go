package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
	"github.com/nsproxy/nsproxy/sidecar"
)

// TestTakeoverTooLateWithdraws: a successor whose start outlasts the old
// daemon's hand-over wait (5 minutes by default; here a millisecond) finds
// the hand-over aborted at its commit. On 9970285 it logged "both may
// accept for a while" and served on for good beside the old daemon, which
// serves on too: two daemons on the same sockets and control socket, each
// with its own state. It now stops accepting, drains and exits 1, and the
// old daemon still serves.
func TestTakeoverTooLateWithdraws(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	backendServer(t, "127.0.0.1:21252")
	cfg := filepath.Join(dir, "n.cfg")
	os.WriteFile(cfg, []byte("frontend web\n    bind 127.0.0.1:21250\n    default_backend app\nbackend app\n    server s1 127.0.0.1:21252\n"), 0o644)
	sock := filepath.Join(dir, "ctl.sock")

	var oldLog lockedBuf
	old, err := sidecar.New(sidecar.Options{ConfigFiles: []string{cfg}, NetnsDir: dir, HandoverWait: time.Millisecond,
		DrainTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(&oldLog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	ln, err := sidecar.ListenControl(sidecar.ControlOptions{Socket: sock, Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	old.ShareListener(sidecar.RoleControl, ln)
	ctx, cancel := context.WithCancel(context.Background())
	ran, served := make(chan struct{}), make(chan struct{})
	go func() { old.Run(ctx, nil); close(ran) }()
	go func() { old.ServeControl(ctx, ln, -1); close(served) }()
	defer func() { cancel(); <-served; <-ran }()

	ask := func() error { return askBackend("127.0.0.1:21250") }
	testwait.For(t, 5*time.Second, "old daemon serves", ask)

	var newErr lockedBuf
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	cmd := exec.CommandContext(sctx, os.Args[0], "-test.run=^TestReviewHelperDaemon$")
	cmd.Env = append(os.Environ(), "RVU_DAEMON_ARGS="+strings.Join([]string{"run", "-f", cfg, "--socket", sock,
		"--state-file", "none", "--attachment-dir", "none", "--drain-timeout", "1s", "--netns-dir", dir, "--takeover"}, "\x1f"))
	cmd.Stderr = &newErr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || sctx.Err() != nil {
		t.Fatalf("the successor whose hand-over the old daemon gave up: %v (want exit 1 on its own)\n%s",
			err, lastLines(newErr.String(), 8))
	}
	if !strings.Contains(newErr.String(), "gave up") {
		t.Errorf("the successor does not say why it stopped:\n%s", lastLines(newErr.String(), 8))
	}
	select {
	case <-old.HandedOver():
		t.Fatal("the old daemon handed over")
	default:
	}
	for i := range 20 {
		if err := ask(); err != nil {
			t.Fatalf("connection %d after the successor withdrew: %v", i, err)
		}
	}
}
