package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
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
	fd       int    // the listening socket, -1 when none (a loop accepts on it)
	addr     string // its address
	h        *netns.Handle
	lastErr  string
	conflict bool
	// first is bound by startListener in firstNS, then served by run.
	first   *net.TCPListener
	firstNS *netns.Handle
}

func (e *Engine) startListener(fe *frontend, bs BindSpec) *listener {
	ctx, cancel := context.WithCancel(e.ctx)
	l := &listener{e: e, fe: fe, bind: bs, cancel: cancel, done: make(chan struct{}), fd: -1}
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
	if l.fd >= 0 {
		st.Listening = true
		st.Addr = l.addr
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
		l.addr, l.h, l.lastErr = ln.Addr().String(), h, ""
		l.mu.Unlock()
		l.e.log.Info("listening", "frontend", l.fe.name, "bind", ln.Addr().String(), "netns", h.Label())
		own := listenKeysOf(h, ln)
		for _, k := range own {
			l.e.own.add(k)
		}
		err = l.serve(ctx, h, ln)
		for _, k := range own {
			l.e.own.remove(k)
		}
		l.mu.Lock()
		l.h = nil
		l.mu.Unlock()
		if err != nil {
			// The socket could not leave the runtime's poller (no fd left
			// for its duplicate): as a failed listen, retry after a pause.
			l.setErr(err)
			l.e.log.Warn("listener closed: its socket could not be handed to a loop", "frontend", l.fe.name,
				"bind", l.bind.Addr.String(), "netns", h.Label(), "err", err.Error(), "retry_in", backoff.String())
			select {
			case <-ctx.Done():
			case <-h.Context().Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, l.maxBackoff())
			continue
		}
		if ctx.Err() == nil {
			l.e.log.Warn("listener closed with its namespace", "frontend", l.fe.name,
				"bind", l.bind.Addr.String(), "netns", h.Label())
		}
	}
}

// serve has a loop accept on ln's socket (accept.go) until the listener is
// stopped or its namespace goes away. The socket leaves the Go runtime's
// poller (a duplicate fd, then ln is closed), so that a connection wakes
// the owning loop only; the loop stops watching it before it is closed,
// and its generation tag drops any event still queued.
func (l *listener) serve(ctx context.Context, h *netns.Handle, ln *net.TCPListener) error {
	fd, err := detach(ln)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.fd = fd
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.fd = -1
		l.mu.Unlock()
		unix.Close(fd)
	}()
	a := &acceptor{l: l, h: h, fd: fd}
	lp := l.e.acceptLoop()
	a.loop = lp
	if !lp.post(func() { lp.addAcceptor(a) }) {
		lp.listening.Add(-1)
		return nil // the loops stopped: the engine is shutting down
	}
	select {
	case <-ctx.Done():
	case <-h.Context().Done():
	}
	dropped := make(chan struct{})
	if lp.post(func() { lp.dropAcceptor(a); close(dropped) }) {
		<-dropped
	} else {
		<-lp.done // a stopped loop watches nothing any more
	}
	return nil
}

// detach takes ln's socket out of the Go runtime: a duplicate fd (same
// socket, same accept queue, still non-blocking), then ln is closed.
func detach(ln *net.TCPListener) (int, error) {
	raw, err := ln.SyscallConn()
	if err != nil {
		ln.Close()
		return -1, err
	}
	nfd := -1
	var derr error
	if err := raw.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		derr = err
	}
	ln.Close()
	if derr != nil {
		return -1, fmt.Errorf("dup listener: %w", derr)
	}
	return nfd, nil
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
