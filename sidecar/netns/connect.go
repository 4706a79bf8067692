package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrThreadStuck: the calling goroutine's thread could not return to the
// daemon's namespace. It stays locked, so that it dies with the goroutine;
// the goroutine must end without creating another socket.
var ErrThreadStuck = errors.New("nsproxy: thread stuck in a foreign network namespace")

// StartConnect creates a non-blocking TCP socket inside the namespace and
// starts connecting it to addr, for an event loop to finish: it returns
// the fd once connect(2) has succeeded or is in progress (EINPROGRESS);
// the caller waits until the fd is writable and reads SO_ERROR. As in
// Dial, the calling goroutine's thread is inside the namespace for
// socket(2) only; if the switch back fails, the thread stays locked and
// dies with the goroutine, and the error wraps ErrThreadStuck: a caller
// that lives on (a listener) must then end its goroutine at once and go on
// in a new one; never call it from an event loop.
//
// In the daemon's own namespace (an event loop's case) every call is a raw
// system call and nothing is allocated unless it fails: they never block.
func (h *Handle) StartConnect(addr netip.AddrPort, opt DialOptions) (int, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return -1, fmt.Errorf("dial %s in %s: %w", addr, h.Label(), ErrClosed)
	}
	fam := family(addr)
	if h.isHome && !opt.Source.IsValid() && addr.Addr().Zone() == "" {
		return connectHome(fam, addr)
	}
	fd, err := h.socketHere(fam)
	if err != nil {
		return -1, fmt.Errorf("dial %s in %s: %w", addr, h.Label(), err)
	}
	if err := connectFD(fd, fam, addr, opt); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("dial tcp %s: %w", addr, err)
	}
	return fd, nil
}

// socketHere makes a non-blocking stream socket inside the namespace on
// the calling goroutine's thread (h.mu is held).
func (h *Handle) socketHere(fam int) (int, error) {
	const typ = unix.SOCK_STREAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	if h.isHome {
		return unix.Socket(fam, typ, 0)
	}
	runtime.LockOSThread()
	if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("setns: %w", err)
	}
	fd, serr := unix.Socket(fam, typ, 0)
	if err := unix.Setns(homeFD, unix.CLONE_NEWNET); err != nil {
		if serr == nil {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("%w: setns back to the default namespace: %w", ErrThreadStuck, err) // thread stays locked
	}
	runtime.UnlockOSThread()
	return fd, serr
}

// connectHome is StartConnect in the daemon's namespace without a source
// address, in raw system calls.
func connectHome(fam int, addr netip.AddrPort) (int, error) {
	r, _, errno := unix.RawSyscall(unix.SYS_SOCKET, uintptr(fam),
		unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if errno != 0 {
		return -1, fmt.Errorf("dial %s: socket: %w", addr, errno)
	}
	fd := int(r)
	if err := connectRaw(fd, fam, addr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Sockets makes up to n non-blocking TCP sockets of family fam (AF_INET,
// AF_INET6) inside the namespace with one round trip into it, for
// ConnectSocket to connect later from any thread (an event loop's). As
// with StartConnect, if the thread cannot return home it stays locked and
// the error wraps ErrThreadStuck: the caller's goroutine must end. The
// sockets made before an error are returned with it.
func (h *Handle) Sockets(fam, n int) ([]int, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, fmt.Errorf("sockets in %s: %w", h.Label(), ErrClosed)
	}
	const typ = unix.SOCK_STREAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	fds := make([]int, 0, n)
	if h.isHome {
		for range n {
			fd, err := unix.Socket(fam, typ, 0)
			if err != nil {
				return fds, err
			}
			fds = append(fds, fd)
		}
		return fds, nil
	}
	runtime.LockOSThread()
	if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns: %w", err)
	}
	var serr error
	for range n {
		fd, err := unix.Socket(fam, typ, 0)
		if err != nil {
			serr = err
			break
		}
		fds = append(fds, fd)
	}
	if err := unix.Setns(homeFD, unix.CLONE_NEWNET); err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("%w: setns back to the default namespace: %w", ErrThreadStuck, err) // thread stays locked
	}
	runtime.UnlockOSThread()
	return fds, serr
}

// ConnectSocket starts connecting a socket made by Sockets, as
// StartConnect does (TCP_NODELAY, the source address, connect →
// EINPROGRESS), from any thread: without a source address in raw system
// calls, allocating nothing.
func ConnectSocket(fd int, addr netip.AddrPort, opt DialOptions) error {
	fam := family(addr)
	if !opt.Source.IsValid() && addr.Addr().Zone() == "" {
		return connectRaw(fd, fam, addr)
	}
	if err := connectFD(fd, fam, addr, opt); err != nil {
		return fmt.Errorf("dial tcp %s: %w", addr, err)
	}
	return nil
}

// connectRaw sets TCP_NODELAY and starts the connect, in raw system calls.
func connectRaw(fd, fam int, addr netip.AddrPort) error {
	one := int32(1)
	if _, _, errno := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY,
		uintptr(unsafe.Pointer(&one)), 4, 0); errno != 0 {
		return fmt.Errorf("dial tcp %s: setsockopt: %w", addr, errno)
	}
	var sa unix.RawSockaddrInet6 // large enough for either family
	n := uintptr(unix.SizeofSockaddrInet6)
	port := addr.Port()
	if fam == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family = unix.AF_INET
		sa4.Addr = addr.Addr().Unmap().As4()
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		n = unix.SizeofSockaddrInet4
	} else {
		sa.Family = unix.AF_INET6
		sa.Addr = addr.Addr().As16()
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(port>>8), byte(port)
	}
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), n)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 && errno != unix.EINPROGRESS {
			return fmt.Errorf("dial tcp %s: connect: %w", addr, errno)
		}
		return nil
	}
}

// connectFD sets the socket up as Go's dialer would (no delay, the source
// address) and starts the connect.
func connectFD(fd, fam int, addr netip.AddrPort, opt DialOptions) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("setsockopt: %w", err)
	}
	if err := prepareSocket(fd, fam, opt); err != nil {
		return err
	}
	if opt.Source.IsValid() {
		if err := unix.Bind(fd, sockaddr(fam, opt.Source)); err != nil {
			if opt.Transparent {
				return fmt.Errorf("%w: bind: %w", ErrTransparent, err)
			}
			return fmt.Errorf("bind: %w", err)
		}
	}
	err := unix.Connect(fd, sockaddr(fam, addr))
	if err == nil || errors.Is(err, unix.EINPROGRESS) {
		return nil
	}
	return fmt.Errorf("connect: %w", err)
}

// sockaddr converts a for a socket of family fam (IPv4 addresses of an
// IPv6 socket are mapped).
func sockaddr(fam int, a netip.AddrPort) unix.Sockaddr {
	if fam == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().Unmap().As4()}
	}
	sa := &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
	if z := a.Addr().Zone(); z != "" {
		if ifi, err := interfaceIndex(z); err == nil {
			sa.ZoneId = uint32(ifi)
		}
	}
	return sa
}

// interfaceIndex reads a zone: an index, or a name looked up in the
// daemon's namespace (zones are rare in server addresses).
func interfaceIndex(zone string) (int, error) {
	if n, err := strconv.Atoi(zone); err == nil {
		return n, nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}
