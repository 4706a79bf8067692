package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenOptions tune a listening socket.
type ListenOptions struct {
	// V4V6 makes an IPv6 wildcard socket accept IPv4 too (IPV6_V6ONLY
	// off), as HAProxy's "v4v6"; V6Only keeps it IPv6 only ("v6only").
	// With neither, the namespace's net.ipv6.bindv6only decides, as for
	// HAProxy (0, the Linux default: both families).
	V4V6   bool
	V6Only bool
}

// Listen creates a TCP listening socket inside the namespace for addr's
// family only: 0.0.0.0 listens on IPv4, :: on IPv6 (see ListenWith).
func (h *Handle) Listen(addr netip.AddrPort) (*net.TCPListener, error) {
	return h.ListenWith(addr, ListenOptions{})
}

// ListenWith creates a TCP listening socket inside the namespace. Go's
// "tcp" would make every wildcard socket dual-stack (0.0.0.0 included), so
// the network names the family: "tcp4" for IPv4, "tcp6" (IPV6_V6ONLY on)
// for IPv6 addresses and for :: with V6Only, "tcp" (IPV6_V6ONLY off) for ::
// with V4V6; :: with neither reads net.ipv6.bindv6only inside the namespace.
// A dual-stack wildcard on a host without IPv6 falls back to 0.0.0.0.
// Keepalive is off: Go would otherwise set four socket options on every
// accepted connection.
func (h *Handle) ListenWith(addr netip.AddrPort, opt ListenOptions) (*net.TCPListener, error) {
	wildcard6 := addr.Addr() == netip.IPv6Unspecified()
	var ln net.Listener
	err := h.Do(func() error {
		network := "tcp6"
		switch {
		case addr.Addr().Is4():
			network = "tcp4"
		case !wildcard6 || opt.V6Only:
		case opt.V4V6 || !bindV6Only():
			network = "tcp"
		}
		var err error
		lc := net.ListenConfig{KeepAlive: -1}
		// Plain TCP, as HAProxy listens: Go ≥ 1.24 makes MPTCP
		// listeners where the kernel allows it, which cost about twice
		// as much to create (5,000 exposures at a restart) and would
		// give an MPTCP client a socket the splice path is not made for.
		lc.SetMultipathTCP(false)
		ln, err = lc.Listen(context.Background(), network, addr.String())
		if err != nil && network == "tcp" && errors.Is(err, unix.EAFNOSUPPORT) {
			ln, err = lc.Listen(context.Background(), "tcp4", netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port()).String())
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s in %s: %w", addr, h.Label(), err)
	}
	return ln.(*net.TCPListener), nil
}

// bindV6Only reads net.ipv6.bindv6only of the calling thread's namespace
// (sysctls under /proc/sys/net are those of the opener's namespace).
// Unreadable (no IPv6): false, the kernel's default.
func bindV6Only() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/bindv6only")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// DialOptions tune an outgoing connection.
type DialOptions struct {
	// Source, when valid, is bound before connecting (port 0: any port).
	Source netip.AddrPort
	// Transparent binds Source with IP_TRANSPARENT so that a non-local
	// address (the client's) can be used; needs CAP_NET_ADMIN and a route back.
	Transparent bool
}

// ErrTransparent wraps failures to bind a foreign source address.
var ErrTransparent = errors.New("nsproxy: cannot bind the client's address (usesrc clientip needs CAP_NET_ADMIN and IP_TRANSPARENT)")

// Dial connects to addr from a socket created inside the namespace. The
// calling goroutine's thread enters the namespace only for socket(2): the
// dialer's Control hook, which runs right after it, switches the thread back
// and unlocks it, so the connect waits on Go's poller like any other. If the
// switch back fails the thread stays locked and dies with the goroutine.
// addr must be an IP literal: no resolver goroutine runs in the namespace.
func (h *Handle) Dial(ctx context.Context, addr netip.AddrPort, opt DialOptions) (*net.TCPConn, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, fmt.Errorf("dial %s in %s: %w", addr, h.Label(), ErrClosed)
	}
	d := net.Dialer{KeepAlive: -1}
	if opt.Source.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(opt.Source)
	}
	var optErr error
	setOpts := func(c syscall.RawConn) error {
		c.Control(func(fd uintptr) { optErr = prepareSocket(int(fd), family(addr), opt) })
		return optErr
	}
	if h.isHome {
		d.Control = func(_, _ string, c syscall.RawConn) error { return setOpts(c) }
		return finishDial(d.DialContext(ctx, "tcp", addr.String()))
	}
	runtime.LockOSThread()
	if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("dial %s in %s: setns: %w", addr, h.Label(), err)
	}
	home := false
	goHome := func() error {
		if home {
			return nil
		}
		if err := unix.Setns(homeFD, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns back to the default namespace: %w", err) // thread stays locked
		}
		home = true
		runtime.UnlockOSThread()
		return nil
	}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		if err := goHome(); err != nil {
			return err
		}
		return setOpts(c)
	}
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if herr := goHome(); herr != nil { // Control never ran: socket(2) failed
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("dial %s in %s: %w", addr, h.Label(), herr)
	}
	return finishDial(c, err)
}

func family(a netip.AddrPort) int {
	if a.Addr().Is4() || a.Addr().Is4In6() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func finishDial(c net.Conn, err error) (*net.TCPConn, error) {
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// prepareSocket sets what must be set between socket(2) and bind(2).
func prepareSocket(fd, family int, opt DialOptions) error {
	if !opt.Source.IsValid() {
		return nil
	}
	if opt.Transparent {
		var err error
		if family == unix.AF_INET {
			err = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1)
		} else {
			err = unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTransparent, err)
		}
	}
	if opt.Source.Port() == 0 {
		// Pick the port at connect time, so that many connections can share
		// one source address (as HAProxy does).
		_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}
	return nil
}
