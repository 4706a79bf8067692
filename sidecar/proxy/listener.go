package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// listener keeps one BindSpec listening: it waits for the namespace, binds,
// accepts until the namespace goes away or the listener is stopped, and
// starts over in the namespace's replacement.
type listener struct {
	e      *Engine
	fe     *frontend
	bind   BindSpec
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	ln       *net.TCPListener
	h        *netns.Handle
	lastErr  string
	conflict bool
	// first is bound by startListener in firstNS, then served by run.
	first   *net.TCPListener
	firstNS *netns.Handle
}

func (e *Engine) startListener(fe *frontend, bs BindSpec) *listener {
	ctx, cancel := context.WithCancel(e.ctx)
	l := &listener{e: e, fe: fe, bind: bs, cancel: cancel, done: make(chan struct{})}
	if bs.NoTakeover && bs.AdoptFrom == "" {
		if h, err := e.reg.Get(bs.Namespace); err == nil {
			ln, err := l.listen(h)
			if l.inUse(err) {
				close(l.done)
				return l
			}
			l.first, l.firstNS = ln, h
		}
	}
	go func() {
		defer close(l.done)
		defer func() {
			if l.first != nil { // stopped before run served it
				l.first.Close()
			}
		}()
		l.run(ctx)
	}()
	return l
}

func (l *listener) stop() {
	l.cancel()
	<-l.done
}

func (l *listener) state() ListenerState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := ListenerState{Frontend: l.fe.name, Bind: l.bind, Netns: nsLabel(l.bind.Namespace), Err: l.lastErr,
		Conflict: l.conflict}
	if l.ln != nil {
		st.Listening = true
		st.Addr = l.ln.Addr().String()
	}
	return st
}

func (l *listener) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != "" && msg != l.lastErr {
		l.e.log.Warn("cannot listen; retrying", "frontend", l.fe.name, "bind", l.bind.Addr.String(),
			"netns", nsLabel(l.bind.Namespace), "err", msg)
	}
	l.lastErr = msg
}

// inUse records a NoTakeover bind's "address in use" as a conflict: the
// caller stops, for good.
func (l *listener) inUse(err error) bool {
	if !l.bind.NoTakeover || !errors.Is(err, unix.EADDRINUSE) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conflict = true
	l.lastErr = "address in use by another program; not retried, never taken over"
	l.e.log.Warn("cannot listen: address in use by another program; not retried, never taken over",
		"frontend", l.fe.name, "bind", l.bind.Addr.String(), "netns", nsLabel(l.bind.Namespace))
	return true
}

func (l *listener) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if l.bind.Namespace != "" {
			if _, err := l.e.reg.Get(l.bind.Namespace); err != nil {
				l.setErr(err)
			}
		}
		h, err := l.e.reg.Wait(ctx, l.bind.Namespace)
		if err != nil {
			if ctx.Err() == nil {
				l.setErr(err)
			}
			return
		}
		ln, err := l.listen(h)
		if l.inUse(err) {
			return
		}
		if err != nil {
			// The address may not exist in the namespace yet: retry until it
			// does, the namespace changes or we are stopped.
			l.setErr(err)
			select {
			case <-ctx.Done():
			case <-h.Context().Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, l.maxBackoff())
			continue
		}
		backoff = 100 * time.Millisecond
		l.mu.Lock()
		l.ln, l.h, l.lastErr = ln, h, ""
		l.mu.Unlock()
		l.e.log.Info("listening", "frontend", l.fe.name, "bind", ln.Addr().String(), "netns", h.Label())
		own := listenKeysOf(h, ln)
		for _, k := range own {
			l.e.own.add(k)
		}
		l.serve(ctx, h, ln)
		for _, k := range own {
			l.e.own.remove(k)
		}
		l.mu.Lock()
		l.ln, l.h = nil, nil
		l.mu.Unlock()
		if ctx.Err() == nil {
			l.e.log.Warn("listener closed with its namespace", "frontend", l.fe.name,
				"bind", l.bind.Addr.String(), "netns", h.Label())
		}
	}
}

// serve accepts until ln fails. It waits until a connection is pending,
// then takes the maxconn slots (frontend, tenant, global), then accepts: connections over the limit
// wait in the kernel backlog, as in HAProxy, and an idle listener holds no
// slot that another listener of the frontend could use.
func (l *listener) serve(ctx context.Context, h *netns.Handle, ln *net.TCPListener) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopNS := context.AfterFunc(h.Context(), cancel)
	defer stopNS()
	// A listener's RawConn cannot wait for readability, so a duplicate of
	// its fd, wrapped as a pollable os.File, does the waiting. It shares the
	// socket: both are closed together.
	wait, err := waiter(ln)
	if err != nil {
		ln.Close()
		l.setErr(err)
		return
	}
	closeBoth := func() { ln.Close(); wait.Close() }
	stopLn := context.AfterFunc(sctx, closeBoth)
	defer stopLn()
	defer closeBoth()
	raw, err := wait.SyscallConn()
	if err != nil {
		return
	}
	// The accept loop runs on a goroutine of its own that plain binds'
	// setup may have to give up (a thread stuck in a foreign namespace
	// dies with its goroutine): the loop then goes on in a new one, on the
	// same socket, so no queued connection is lost.
	exited := make(chan struct{})
	go l.acceptLoop(sctx, h, raw, exited)
	<-exited
}

// acceptLoop accepts until the listener fails, then closes exited. Plain
// binds' connections are set up right here (startSessionFD); if that
// leaves this goroutine's thread stuck in a foreign namespace, a new
// goroutine takes over and this one ends, its thread locked, so that the
// thread exits with it.
func (l *listener) acceptLoop(sctx context.Context, h *netns.Handle, raw syscall.RawConn,
	exited chan struct{}) {
	stuck := false
	defer func() {
		if stuck {
			go l.acceptLoop(sctx, h, raw, exited)
			return
		}
		close(exited)
	}()
	pending := func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(pfd, 0)
		return n > 0
	}
	// Accept errors (EMFILE, ENFILE, ENOBUFS...) back off exponentially
	// and are logged at most once per acceptLogEvery, with the number of
	// those not logged; every one is counted.
	var backoff time.Duration
	var lastLog time.Time
	suppressed := 0
	for {
		// Without any maxconn there is no slot to hold: accept directly
		// and save the readiness poll.
		tl := l.fe.tenant.Load()
		if l.fe.limit.limited() || tl.limited() || l.e.global.limited() {
			if err := raw.Read(pending); err != nil {
				return // closed
			}
		}
		if err := l.fe.limit.acquire(sctx); err != nil {
			return
		}
		if err := tl.acquire(sctx); err != nil {
			l.fe.limit.release()
			return
		}
		if err := l.e.global.acquire(sctx); err != nil {
			tl.release()
			l.fe.limit.release()
			return
		}
		release := func() {
			l.e.global.release()
			tl.release()
			l.fe.limit.release()
		}
		fd, src, err := acceptRaw(raw)
		if errors.Is(err, unix.ECONNABORTED) {
			release()
			continue // the client gave up while queued
		}
		if err != nil {
			release()
			if sctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			l.fe.acceptErrors.Add(1)
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			if now := time.Now(); now.Sub(lastLog) >= acceptLogEvery {
				l.e.log.Warn("accept failed; backing off", "frontend", l.fe.name, "netns", h.Label(),
					"err", err, "backoff", backoff, "not_logged_since_last", suppressed)
				lastLog, suppressed = now, 0
			} else {
				suppressed++
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		dst, err := acceptedFD(fd)
		if err != nil {
			unix.Close(fd)
			release()
			continue
		}
		if l.e.startSessionFD(l, tl, h, fd, src, dst) {
			l.e.log.Warn("a thread could not leave a server's namespace; it ends, accepting goes on in another",
				"frontend", l.fe.name, "netns", h.Label())
			stuck = true
			return
		}
	}
}

// acceptRaw accepts one connection as a raw non-blocking fd, waiting on the
// listener's readiness twin: a connection that goes straight to an event
// loop never enters the Go runtime's poller. It returns the client's
// address.
func acceptRaw(raw syscall.RawConn) (int, netip.AddrPort, error) {
	nfd := -1
	var sa unix.Sockaddr
	var aerr error
	err := raw.Read(func(fd uintptr) bool {
		for {
			nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if aerr != unix.EINTR {
				return aerr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if aerr != nil {
		return -1, netip.AddrPort{}, os.NewSyscallError("accept4", aerr)
	}
	return nfd, sockaddrAddrPort(sa), nil
}

// acceptedFD sets up an accepted socket as Go's accept would (no delay)
// and returns its local address: the connection's destination.
func acceptedFD(fd int) (netip.AddrPort, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return netip.AddrPort{}, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return sockaddrAddrPort(sa), nil
}

// sockaddrAddrPort converts a socket address, IPv4-mapped addresses as
// plain IPv4 (as addrPort does for *net.TCPAddr).
func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// Accept error back-off and log rate.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	acceptLogEvery   = 10 * time.Second
)

// waiter duplicates ln's fd into a pollable file for readiness waits.
func waiter(ln *net.TCPListener) (*os.File, error) {
	raw, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	raw.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if derr != nil {
		return nil, fmt.Errorf("dup listener: %w", derr)
	}
	return os.NewFile(uintptr(nfd), "listener-wait"), nil
}

// listen binds the listening socket, or adopts the runtime's reservation.
func (l *listener) listen(h *netns.Handle) (*net.TCPListener, error) {
	if ln := l.first; ln != nil {
		l.first = nil
		if h == l.firstNS {
			return ln, nil
		}
		ln.Close() // the namespace changed in between
	}
	if ln := l.e.takeInherited(l.bind, h); ln != nil {
		return ln, nil
	}
	if l.bind.AdoptFrom == "" {
		return h.ListenWith(l.bind.Addr, netns.ListenOptions{V4V6: l.bind.V4V6, V6Only: l.bind.V6Only})
	}
	if !h.IsDefault() {
		return nil, fmt.Errorf("adopting a reserved port works only in the daemon's namespace")
	}
	ln, err := netns.AdoptListener(l.bind.Addr, conmonOf(l.bind.AdoptFrom))
	if err != nil {
		return nil, fmt.Errorf("waiting for the runtime to reserve %s for container %.12s: %w", l.bind.Addr, l.bind.AdoptFrom, err)
	}
	return ln, nil
}

// maxBackoff: a runtime reserves its ports right after CNI ADD returns, so
// adoption polls faster than a failed bind retries.
func (l *listener) maxBackoff() time.Duration {
	if l.bind.AdoptFrom != "" {
		return 250 * time.Millisecond
	}
	return 2 * time.Second
}

// conmonOf accepts the conmon process of one container: podman's conmon
// holds the container's reserved host ports and is started with the
// container id among its arguments.
func conmonOf(containerID string) func(pid int) bool {
	return func(pid int) bool {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "conmon" {
			return false
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return false
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if arg == containerID {
				return true
			}
		}
		return false
	}
}
