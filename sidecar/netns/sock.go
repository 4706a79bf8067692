package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ListenBacklog is the listen(2) backlog; the kernel caps it at the
// namespace's net.core.somaxconn. Connections beyond maxconn wait here.
const ListenBacklog = 65535

func sockaddr(ap netip.AddrPort) (unix.Sockaddr, int) {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}, unix.AF_INET
	}
	// Zones are refused by the config loader: interface indexes are per
	// namespace, and resolving one here would use the daemon's.
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}, unix.AF_INET6
}

// Listen creates a TCP listening socket inside the namespace.
func (h *Handle) Listen(addr netip.AddrPort) (*net.TCPListener, error) {
	sa, family := sockaddr(addr)
	fd, err := h.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("listen %s in %s: socket: %w", addr, h.Label(), err)
	}
	fail := func(what string, err error) (*net.TCPListener, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("listen %s in %s: %s: %w", addr, h.Label(), what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, ListenBacklog); err != nil {
		return fail("listen", err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close() // FileListener holds its own dup
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listen %s in %s: %w", addr, h.Label(), err)
	}
	return ln.(*net.TCPListener), nil
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
// connect itself waits on Go's poller, not on a locked thread. ctx bounds the
// connect; the returned connection is a plain *net.TCPConn, so splice works.
func (h *Handle) Dial(ctx context.Context, addr netip.AddrPort, opt DialOptions) (*net.TCPConn, error) {
	sa, family := sockaddr(addr)
	fd, err := h.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: socket: %w", addr, h.Label(), err)
	}
	if err := prepareDial(fd, family, opt); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dial %s in %s: %w", addr, h.Label(), err)
	}
	f := os.NewFile(uintptr(fd), "dial")
	defer f.Close() // FileConn holds its own dup
	if err := connect(ctx, f, sa); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", addr, h.Label(), err)
	}
	return c.(*net.TCPConn), nil
}

func prepareDial(fd, family int, opt DialOptions) error {
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
	if opt.Source.Port() == 0 && family == unix.AF_INET {
		// Pick the port at connect time, so that many connections can share
		// one source address (as HAProxy does).
		_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}
	src := opt.Source
	if family == unix.AF_INET6 && src.Addr().Is4() {
		src = netip.AddrPortFrom(netip.AddrFrom16(src.Addr().As16()), src.Port())
	}
	sa, _ := sockaddr(src)
	if family == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{Port: int(src.Port()), Addr: src.Addr().As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		if opt.Transparent {
			return fmt.Errorf("%w: bind %s: %w", ErrTransparent, opt.Source, err)
		}
		return fmt.Errorf("bind %s: %w", opt.Source, err)
	}
	return nil
}

// aLongTimeAgo is a deadline that has passed, to abort a pending connect.
var aLongTimeAgo = time.Unix(1, 0)

func connect(ctx context.Context, f *os.File, sa unix.Sockaddr) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(aLongTimeAgo) })
	defer stop()
	var cerr error
	started := false
	werr := rc.Write(func(fd uintptr) bool {
		if !started {
			started = true
			err := unix.Connect(int(fd), sa)
			if err == unix.EINPROGRESS || err == unix.EINTR {
				return false
			}
			cerr = err
			return true
		}
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = err
			return true
		}
		switch e := unix.Errno(v); e {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		case 0, unix.EISCONN:
			// An unconnected socket polls as writable (EPOLLHUP), so a
			// zero SO_ERROR alone does not mean connected.
			if _, err := unix.Getpeername(int(fd)); err != nil {
				return false
			}
			return true
		default:
			cerr = e
			return true
		}
	})
	if werr != nil {
		if ctx.Err() != nil && errors.Is(werr, os.ErrDeadlineExceeded) {
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return os.ErrDeadlineExceeded
			}
			return context.Cause(ctx)
		}
		return werr
	}
	if cerr != nil {
		return os.NewSyscallError("connect", cerr)
	}
	f.SetWriteDeadline(time.Time{})
	return nil
}
