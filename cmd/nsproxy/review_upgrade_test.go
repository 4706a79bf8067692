package main

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
)

// lockedBuf is a stderr both daemons may write to.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReviewTakeoverFailsAfterCommit: README "If the new daemon fails
// before step 4 (bad file, crash), the old one serves on". `run --takeover`
// commits the hand-over (the old daemon stops accepting, drains and exits)
// before it binds its metrics port; a --metrics-addr it cannot bind then
// makes it exit 1 as well: nothing serves the frontends any more.
func TestReviewTakeoverFailsAfterCommit(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	backendServer(t, "127.0.0.1:22152")
	cfg := filepath.Join(dir, "n.cfg")
	os.WriteFile(cfg, []byte("frontend web\n    bind 127.0.0.1:22150\n    default_backend app\nbackend app\n    server s1 127.0.0.1:22152\n"), 0o644)
	sock := filepath.Join(dir, "ctl.sock")
	common := []string{"run", "-f", cfg, "--socket", sock, "--state-file", "none", "--attachment-dir", "none",
		"--drain-timeout", "1s", "--netns-dir", dir}
	var oldErr, newErr lockedBuf
	oldDone := make(chan int, 1)
	go func() { oldDone <- run(common, io.Discard, &oldErr) }()
	oldRunning := true
	t.Cleanup(func() {
		if oldRunning {
			syscall.Kill(os.Getpid(), syscall.SIGTERM) // caught by the old daemon's handler
			<-oldDone
		}
	})
	ask := func() error { return askBackend("127.0.0.1:22150") }
	testwait.For(t, 5*time.Second, "old daemon serves", ask)

	// Another program holds the port the successor's flags name for metrics.
	hog, err := net.Listen("tcp", "127.0.0.1:22151")
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	// The successor is a process of its own, as `run --takeover` is: its
	// exit closes whatever it holds.
	cmd := exec.Command(os.Args[0], "-test.run=^TestReviewHelperDaemon$")
	cmd.Env = append(os.Environ(), "RVU_DAEMON_ARGS="+strings.Join(append(append([]string{}, common...),
		"--takeover", "--metrics-addr", "127.0.0.1:22151"), "\x1f"))
	cmd.Stderr = &newErr
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	t.Logf("successor exited %d: %s", code, strings.TrimSpace(newErr.String()))
	if code == 0 {
		t.Fatal("successor with an unbindable metrics address ran")
	}
	select {
	case rc := <-oldDone:
		oldRunning = false
		t.Logf("old daemon exited %d", rc)
	case <-time.After(3 * time.Second):
	}
	if err := ask(); err != nil {
		t.Errorf("the successor failed (exit %d) and nothing serves the frontend: %v\nold daemon: %s", code, err,
			lastLines(oldErr.String(), 3))
	}
}

// TestReviewHelperDaemon is the successor process of
// TestReviewTakeoverFailsAfterCommit.
func TestReviewHelperDaemon(t *testing.T) {
	args := os.Getenv("RVU_DAEMON_ARGS")
	if args == "" {
		t.Skip("helper process")
	}
	os.Exit(run(strings.Split(args, "\x1f"), io.Discard, os.Stderr))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// backendServer answers every connection on addr with "backend\n" and
// closes it, until the test ends.
func backendServer(t *testing.T, addr string) {
	t.Helper()
	be, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "backend\n")
			c.Close()
		}
	}()
}

// askBackend connects to addr and expects backendServer's answer.
func askBackend(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if strings.TrimSpace(string(b)) != "backend" {
		return errors.New("answer " + string(b))
	}
	return err
}
