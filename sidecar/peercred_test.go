package sidecar

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestHelperPeerConnects is not a test: TestPeerGroupsMissingTrustsNoPid
// runs the test binary with it to have a peer with other groups.
func TestHelperPeerConnects(t *testing.T) {
	path := os.Getenv("NSPROXY_TEST_PEER_SOCKET")
	if path == "" {
		t.Skip("helper of TestPeerGroupsMissingTrustsNoPid")
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		os.Exit(2)
	}
	defer c.Close()
	var b [1]byte
	c.Read(b[:]) // until the parent closes
}

// TestPeerGroupsMissingTrustsNoPid: where SO_PEERGROUPS fails, the
// peer's supplementary groups are none (its primary gid from SO_PEERCRED
// still counts). Reading /proc/<pid>/status of SO_PEERCRED's pid could
// name another process: pids are reused, and the peer may have exited
// the moment after it connected.
func TestPeerGroupsMissingTrustsNoPid(t *testing.T) {
	testns.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPeerConnects$")
	cmd.Env = append(os.Environ(), "NSPROXY_TEST_PEER_SOCKET="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{4242}}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ln.(*net.UnixListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, groups, err := peerCred(c); err != nil || !slices.Contains(groups, 4242) {
		t.Skipf("SO_PEERGROUPS does not report the peer's groups here (%v, %v)", groups, err)
	}
	old := readPeerGroups
	readPeerGroups = func(int) ([]uint32, error) { return nil, syscall.ENOPROTOOPT }
	t.Cleanup(func() { readPeerGroups = old })
	cred, groups, err := peerCred(c)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Gid != 0 || len(groups) != 0 {
		t.Fatalf("without SO_PEERGROUPS: gid %d groups %v, want gid 0 and no supplementary groups (nothing read from /proc/%d)", cred.Gid, groups, cred.Pid)
	}
}
