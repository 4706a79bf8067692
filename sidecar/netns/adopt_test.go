package netns

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:4A62":                         "0.0.0.0:19042",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:0016": "[::ffff:127.0.0.1]:22",
	} {
		got, err := parseProcAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("%s: %v %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "zz:1", "0100007F", "0100007F:zz", "01:0001"} {
		if _, err := parseProcAddr(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestAdoptListener: a child process holds a listening socket it never
// accepts on (as conmon does); the adopted copy accepts its connections,
// and only the accepted owner is looked at.
func TestAdoptListener(t *testing.T) {
	testns.RequireRoot(t)
	port := 0
	{
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	addr := netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port))
	// The holder: a process that inherits the listening socket and never
	// accepts, like podman's conmon with a reserved host port.
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	f, _ := ln.(*net.TCPListener).File()
	ln.Close()
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	holder := cmd.Process.Pid

	if _, err := AdoptListener(addr, func(pid int) bool { return false }); err == nil {
		t.Fatal("adopted from a process the owner filter refused")
	}
	if _, err := AdoptListener(netip.MustParseAddrPort("127.0.0.1:1"), func(int) bool { return true }); err == nil {
		t.Fatal("adopted a port nobody listens on")
	}
	got, err := AdoptListener(addr, func(pid int) bool { return pid == holder })
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	go func() {
		c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	got.SetDeadline(time.Now().Add(3 * time.Second))
	c, err := got.Accept()
	if err != nil {
		t.Fatalf("adopted listener does not accept: %v", err)
	}
	c.Close()
}
