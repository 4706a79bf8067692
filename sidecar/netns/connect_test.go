package netns

import (
	"net"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
	"golang.org/x/sys/unix"
)

// TestStartConnect: the socket is made inside the namespace (it reaches a
// listener on that namespace's loopback), bound to the source asked for,
// non-blocking, and a refused port shows as SO_ERROR, not as an error of
// the call.
func TestStartConnect(t *testing.T) {
	a := testns.New(t, "C")
	h, err := OpenPath(filepath.Join(DefaultDir, a), a)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ln, err := h.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	target := ln.Addr().(*net.TCPAddr).AddrPort()
	// wait blocks until fd is writable and returns SO_ERROR.
	wait := func(fd int) syscall.Errno {
		t.Helper()
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, err := unix.Poll(pfd, 5000); n != 1 || err != nil {
			t.Fatalf("poll: %d, %v", n, err)
		}
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			t.Fatal(err)
		}
		return syscall.Errno(v)
	}
	for _, tc := range []struct {
		name string
		dst  netip.AddrPort
		opt  DialOptions
		want syscall.Errno
	}{
		{"listener in the namespace", target, DialOptions{}, 0},
		{"with a source address", target, DialOptions{Source: netip.MustParseAddrPort("127.0.0.2:0")}, 0},
		{"refused", netip.AddrPortFrom(target.Addr(), 1), DialOptions{}, unix.ECONNREFUSED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd, err := h.StartConnect(tc.dst, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
				t.Error("socket is blocking")
			}
			if got := wait(fd); got != tc.want {
				t.Fatalf("SO_ERROR %v, want %v", got, tc.want)
			}
			if tc.want != 0 {
				return
			}
			if tc.opt.Source.IsValid() {
				sa, _ := unix.Getsockname(fd)
				if got := sa.(*unix.SockaddrInet4).Addr; netip.AddrFrom4(got) != tc.opt.Source.Addr() {
					t.Errorf("source %v, want %v", netip.AddrFrom4(got), tc.opt.Source.Addr())
				}
			}
			c, err := ln.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
	// A namespace that is closed refuses at once.
	h2, _ := OpenPath(filepath.Join(DefaultDir, a), a)
	h2.Close()
	if fd, err := h2.StartConnect(target, DialOptions{}); err == nil {
		unix.Close(fd)
		t.Fatal("StartConnect on a closed handle succeeded")
	}
}

// TestStartConnectHome: in the daemon's own namespace StartConnect takes
// the raw path (no source address): IPv4 and IPv6 destinations reach their
// listener, the socket is non-blocking with TCP_NODELAY, and a refused
// port shows as SO_ERROR or as the call's error, never as a socket that
// claims to be connected.
func TestStartConnectHome(t *testing.T) {
	h, err := OpenDefault()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", network)
		if err != nil {
			t.Skipf("listen %s: %v", network, err)
		}
		defer ln.Close()
		target := ln.Addr().(*net.TCPAddr).AddrPort()
		fd, err := h.StartConnect(target, DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, err := unix.Poll(pfd, 5000); n != 1 || err != nil {
			t.Fatalf("poll: %d, %v", n, err)
		}
		if v, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); v != 0 {
			t.Fatalf("%s: SO_ERROR %v", target, syscall.Errno(v))
		}
		if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
			t.Error("socket is blocking")
		}
		if v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); v == 0 {
			t.Error("TCP_NODELAY not set")
		}
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RemoteAddr().(*net.TCPAddr).AddrPort(); got.Addr() != target.Addr() {
			t.Errorf("connected from %v, want %v", got, target.Addr())
		}
		c.Close()
		unix.Close(fd)
		ln.Close()
		fd, err = h.StartConnect(target, DialOptions{}) // nobody listens any more
		if err == nil {
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 5000)
			v, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			unix.Close(fd)
			if v == 0 {
				t.Fatalf("%s: connected to a closed port", target)
			}
		}
	}
}

// TestSockets: sockets made ahead are made inside the namespace (one trip
// for the batch), non-blocking, and ConnectSocket connects them from the
// caller's thread, which stays in the daemon's namespace.
func TestSockets(t *testing.T) {
	a := testns.New(t, "S")
	h, err := OpenPath(filepath.Join(DefaultDir, a), a)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ln, err := h.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fds, err := h.Sockets(unix.AF_INET, 4)
	if err != nil || len(fds) != 4 {
		t.Fatalf("Sockets: %d, %v", len(fds), err)
	}
	for _, fd := range fds {
		defer unix.Close(fd)
		if err := h.CheckSocket(fd); err != nil {
			t.Fatalf("socket not in the namespace: %v", err)
		}
		if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
			t.Error("socket is blocking")
		}
	}
	target := ln.Addr().(*net.TCPAddr).AddrPort()
	if err := ConnectSocket(fds[0], target, DialOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ConnectSocket(fds[1], target, DialOptions{Source: netip.MustParseAddrPort("127.0.0.2:0")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := ln.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	h.Close()
	if fds, err := h.Sockets(unix.AF_INET, 1); err == nil || len(fds) != 0 {
		t.Fatal("Sockets on a closed handle succeeded")
	}
}
