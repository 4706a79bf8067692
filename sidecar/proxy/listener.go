package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// listener keeps one BindSpec listening: it waits for the namespace, binds,
// hands the socket to an event loop, and starts over in the namespace's
// replacement when the namespace ends. A socket in a loop costs no
// goroutine: the namespace's end reaches the listener through the engine's
// hook for that namespace (Engine.nsGone), and stop is a call. A goroutine
// runs only while the listener waits: for its namespace, or to retry a
// failed bind.
type listener struct {
	e *Engine
	// fe is the frontend it serves; a reload hands a kept socket whose
	// frontend was renamed (or that moved to another) to the new one
	// (Engine.Apply), and its next accept takes that frontend's limits.
	fe   atomic.Pointer[frontend]
	bind BindSpec

	// closeMu is held while the socket leaves its loop and closes, so that
	// stop returns only once the socket is closed, also when the
	// namespace's end was closing it at the same time.
	closeMu sync.Mutex

	mu      sync.Mutex
	stopped bool
	// cancel and done: the waiting goroutine's, nil when none runs.
	cancel   context.CancelFunc
	done     chan struct{}
	fd       int       // the listening socket, -1 when none (a loop accepts on it)
	a        *acceptor // its registration in the loop, nil when none
	own      []listenKey
	addr     string // its address
	h        *netns.Handle
	lastErr  string
	conflict bool
}

// startListener starts a listener of bs. An exposure (NoTakeover) whose
// namespace is there binds and enters its loop before this returns: a
// port in use is a conflict at once, and no goroutine is started.
func (e *Engine) startListener(fe *frontend, bs BindSpec) *listener {
	l := &listener{e: e, bind: bs, fd: -1}
	l.fe.Store(fe)
	if bs.NoTakeover && bs.AdoptFrom == "" {
		if h, err := e.reg.Get(bs.Namespace); err == nil {
			ln, err := l.listen(h)
			if l.inUse(err) {
				return l
			}
			if err == nil {
				err = l.serve(h, ln)
				if err == nil {
					return l
				}
				l.serveFailed(h, err)
			}
		}
	}
	l.mu.Lock()
	l.goWaitLocked()
	l.mu.Unlock()
	return l
}

// goWaitLocked starts the goroutine that waits for the namespace and binds
// (l.mu held). Its context is not the engine's: a child of a long-lived
// context stays in that context's children, a Go map that keeps its
// largest size after 5,000 listeners left.
func (l *listener) goWaitLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		l.run(ctx)
		l.mu.Lock()
		if l.done == done {
			l.cancel, l.done = nil, nil
		}
		l.mu.Unlock()
		cancel()
	}()
}

// moveTo hands the listener, its socket and its backlog to fe (a reload
// renamed its frontend or moved its bind line): the connections it accepts
// from now on are fe's, with fe's limits. An accept paused on the old
// frontend's maxconn is woken, to try fe's.
func (l *listener) moveTo(fe *frontend) {
	old := l.fe.Swap(fe)
	if old == fe {
		return
	}
	l.e.log.Info("listener kept for another frontend", "from", old.name, "frontend", fe.name,
		"bind", l.bind.Addr.String(), "netns", nsLabel(l.bind.Namespace))
	old.limit.wakeAll()
}

// stop closes the listener for good; it returns once its socket is closed.
func (l *listener) stop() {
	l.mu.Lock()
	l.stopped = true
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	l.closeSocket(nil)
}

func (l *listener) state() ListenerState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := ListenerState{Frontend: l.fe.Load().name, Bind: l.bind, Netns: nsLabel(l.bind.Namespace), Err: l.lastErr,
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
		l.e.log.Warn("cannot listen; retrying", "frontend", l.fe.Load().name, "bind", l.bind.Addr.String(),
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
		"frontend", l.fe.Load().name, "bind", l.bind.Addr.String(), "netns", nsLabel(l.bind.Namespace))
	return true
}

// run waits for the namespace and binds, retrying a failed bind with
// backoff, until the socket is in a loop or ctx ends.
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
		if err == nil {
			if err = l.serve(h, ln); err == nil {
				return // the loop and the namespace's hook take it from here
			}
			// The socket could not leave the runtime's poller (no fd left
			// for its duplicate): as a failed listen, retry after a pause.
			l.serveFailed(h, err)
		} else {
			// The address may not exist in the namespace yet: retry until
			// it does, the namespace changes or we are stopped.
			l.setErr(err)
		}
		select {
		case <-ctx.Done():
		case <-h.Context().Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, l.maxBackoff())
	}
}

func (l *listener) serveFailed(h *netns.Handle, err error) {
	l.setErr(err)
	l.e.log.Warn("listener closed: its socket could not be handed to a loop", "frontend", l.fe.Load().name,
		"bind", l.bind.Addr.String(), "netns", h.Label(), "err", err.Error())
}

// serve has a loop accept on ln's socket (accept.go) until the listener is
// stopped or its namespace goes away (closeSocket). The socket leaves the
// Go runtime's poller (a duplicate fd, then ln is closed), so that a
// connection wakes the owning loop only; the loop stops watching it before
// it is closed, and its generation tag drops any event still queued.
func (l *listener) serve(h *netns.Handle, ln *net.TCPListener) error {
	own := listenKeysOf(h, ln)
	addr := ln.Addr().String()
	fd, err := detach(ln)
	if err != nil {
		return err
	}
	lp := l.e.acceptLoop()
	a := &acceptor{l: l, h: h, fd: fd, loop: lp}
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		lp.listening.Add(-1)
		unix.Close(fd)
		return nil
	}
	// Posted with l.mu held: closeSocket's drop, which takes l.a under
	// l.mu, is queued after this add.
	if !lp.post(func() { lp.addAcceptor(a) }) {
		l.mu.Unlock()
		lp.listening.Add(-1)
		unix.Close(fd)
		return nil // the loops stopped: the engine is shutting down
	}
	l.fd, l.a, l.own, l.addr, l.h, l.lastErr = fd, a, own, addr, h, ""
	l.mu.Unlock()
	for _, k := range own {
		l.e.own.add(k)
	}
	l.e.log.Info("listening", "frontend", l.fe.Load().name, "bind", addr, "netns", h.Label())
	l.e.watchListener(h, l)
	if h.Context().Err() != nil { // ended before the hook was there
		l.nsEnded(h)
	}
	return nil
}

// closeSocket takes the socket out of its loop and closes it, if it lives
// in only's namespace (any when only is nil); it reports whether it did.
func (l *listener) closeSocket(only *netns.Handle) bool {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	l.mu.Lock()
	a, own, h := l.a, l.own, l.h
	if a == nil || (only != nil && h != only) {
		l.mu.Unlock()
		return false
	}
	l.a, l.own = nil, nil
	l.mu.Unlock()
	lp := a.loop
	dropped := make(chan struct{})
	if lp.post(func() { lp.dropAcceptor(a); close(dropped) }) {
		<-dropped
	} else {
		<-lp.done // a stopped loop watches nothing any more
	}
	// HandOver duplicates l.fd under l.mu: it is closed only after.
	l.mu.Lock()
	l.fd, l.h = -1, nil
	l.mu.Unlock()
	unix.Close(a.fd)
	for _, k := range own {
		l.e.own.remove(k)
	}
	l.e.unwatchListener(h, l)
	return true
}

// nsEnded closes the socket of a listener whose namespace h has ended and
// waits for the namespace's replacement (Engine.nsGone).
func (l *listener) nsEnded(h *netns.Handle) {
	if !l.closeSocket(h) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.e.log.Warn("listener closed with its namespace", "frontend", l.fe.Load().name,
		"bind", l.bind.Addr.String(), "netns", h.Label())
	l.goWaitLocked()
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
