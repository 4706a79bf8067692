package netns

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestListenFamilies: as in HAProxy, 0.0.0.0 listens on IPv4 only and ::
// on IPv6 only, unless v4v6 asks for both (Go's "tcp" would make every
// wildcard socket dual-stack). Checked in a fresh namespace, so the ports
// are free and nothing else answers.
func TestListenFamilies(t *testing.T) {
	ns := testns.New(t, "fam")
	h, err := OpenPath(filepath.Join(DefaultDir, ns), ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tests := []struct {
		name       string
		addr       string
		opt        ListenOptions
		want4      bool // 127.0.0.1 answers
		want6      bool // [::1] answers
		wantListen string
	}{
		{name: "0.0.0.0", addr: "0.0.0.0:19501", want4: true, wantListen: "0.0.0.0:19501"},
		// HAProxy's rule: :: follows net.ipv6.bindv6only, 0 in a new namespace.
		{name: "::", addr: "[::]:19502", want4: true, want6: true, wantListen: "[::]:19502"},
		{name: ":: v6only", addr: "[::]:19506", opt: ListenOptions{V6Only: true}, want6: true, wantListen: "[::]:19506"},
		{name: ":: v4v6", addr: "[::]:19503", opt: ListenOptions{V4V6: true}, want4: true, want6: true, wantListen: "[::]:19503"},
		{name: "127.0.0.1", addr: "127.0.0.1:19504", want4: true, wantListen: "127.0.0.1:19504"},
		{name: "::1", addr: "[::1]:19505", want6: true, wantListen: "[::1]:19505"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ap := netip.MustParseAddrPort(tt.addr)
			ln, err := h.ListenWith(ap, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			if got := ln.Addr().String(); got != tt.wantListen {
				t.Errorf("listening on %s, want %s", got, tt.wantListen)
			}
			answers := func(to string) bool {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				c, err := h.Dial(ctx, netip.AddrPortFrom(netip.MustParseAddr(to), ap.Port()), DialOptions{})
				if err != nil {
					return false
				}
				c.Close()
				return true
			}
			if got := answers("127.0.0.1"); got != tt.want4 {
				t.Errorf("127.0.0.1 answers: %v, want %v", got, tt.want4)
			}
			if got := answers("::1"); got != tt.want6 {
				t.Errorf("[::1] answers: %v, want %v", got, tt.want6)
			}
		})
	}
}

// TestListenBindV6Only: a :: bind without keywords follows the namespace's
// net.ipv6.bindv6only, as HAProxy's does.
func TestListenBindV6Only(t *testing.T) {
	ns := testns.New(t, "v6o")
	testns.Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.bindv6only=1")
	h, err := OpenPath(filepath.Join(DefaultDir, ns), ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	v6, err := h.Listen(netip.MustParseAddrPort("[::]:19507"))
	if err != nil {
		t.Fatal(err)
	}
	defer v6.Close()
	v4, err := h.Listen(netip.MustParseAddrPort("0.0.0.0:19507"))
	if err != nil {
		t.Fatalf("0.0.0.0:19507 next to [::]:19507 with bindv6only=1: %v (the :: socket took IPv4 too)", err)
	}
	v4.Close()
}

// TestListenFamilyConflicts: 0.0.0.0:P and [::]:P v6only coexist (one per
// family), and a dual-stack [::]:P (v4v6, or by default) conflicts with
// 0.0.0.0:P.
func TestListenFamilyConflicts(t *testing.T) {
	ns := testns.New(t, "famc")
	h, err := OpenPath(filepath.Join(DefaultDir, ns), ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	v4, err := h.Listen(netip.MustParseAddrPort("0.0.0.0:19510"))
	if err != nil {
		t.Fatal(err)
	}
	defer v4.Close()
	v6, err := h.ListenWith(netip.MustParseAddrPort("[::]:19510"), ListenOptions{V6Only: true})
	if err != nil {
		t.Fatalf("[::]:19510 next to 0.0.0.0:19510: %v", err)
	}
	v6.Close()
	if both, err := h.ListenWith(netip.MustParseAddrPort("[::]:19510"), ListenOptions{V4V6: true}); err == nil {
		both.Close()
		t.Fatal("[::]:19510 v4v6 next to 0.0.0.0:19510: no error, want address in use")
	}
	if both, err := h.Listen(netip.MustParseAddrPort("[::]:19510")); err == nil {
		both.Close()
		t.Fatal("[::]:19510 (bindv6only 0: both families) next to 0.0.0.0:19510: no error, want address in use")
	}
}

// TestListenIsPlainTCP: listeners are plain TCP sockets, as HAProxy's, not
// the MPTCP ones Go ≥ 1.24 makes by default where the kernel has MPTCP
// (net.mptcp.enabled=1 here): those cost about twice as much to create and
// would hand an MPTCP client a socket the splice path is not made for.
func TestListenIsPlainTCP(t *testing.T) {
	ns := testns.New(t, "tcp")
	h, err := OpenPath(filepath.Join(DefaultDir, ns), ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	testns.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	ln, err := h.ListenWith(netip.MustParseAddrPort("127.0.0.1:0"), ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var proto int
	var serr error
	rc.Control(func(fd uintptr) { proto, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL) })
	if serr != nil {
		t.Fatal(serr)
	}
	if proto != unix.IPPROTO_TCP {
		t.Fatalf("listener protocol %d, want IPPROTO_TCP (%d)", proto, unix.IPPROTO_TCP)
	}
}
