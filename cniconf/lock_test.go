package cniconf

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holdLockEnv makes the test binary, run by TestInstallFileWaitsForLock,
// hold the fcntl lock of the file it names until its stdin closes: a lock
// of our own process would not block us, podman's is another process's.
const holdLockEnv = "NSPROXY_TEST_HOLD_LOCK"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdLockEnv); path != "" {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err == nil {
			err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart})
		}
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestInstallFileWaitsForLock: while another process holds podman's
// cni.lock, a change waits; it goes ahead once the lock is free.
func TestInstallFileWaitsForLock(t *testing.T) {
	dir := confDir(t, "containerd.conflist")
	lock := filepath.Join(dir, lockName)
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), holdLockEnv+"="+lock)
	release, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release.Close(); holder.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock holder: %q", line)
	}

	done := make(chan error, 1)
	go func() {
		_, err := InstallFile(filepath.Join(dir, "containerd.conflist"), Options{}, false)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("changed the file while podman's lock was held (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	release.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(lockWait):
		t.Fatal("still waiting after the lock was released")
	}
	if types := pluginTypes(t, content(filepath.Join(dir, "containerd.conflist"))); types[len(types)-1] != PluginType {
		t.Errorf("not installed: %q", types)
	}
}
