package proxy

import (
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// idle returns the inactivity timeout that applies now, to both
// directions (idle means no byte either way), and the termination reason
// that names the side whose timeout it is.
func (s *session) idle() (time.Duration, string) {
	ct := s.fe.ClientTimeout
	if s.clientFin.Load() && s.fe.ClientFinTimeout > 0 {
		ct = s.fe.ClientFinTimeout
	}
	var st time.Duration
	if bs := s.e.backendSpec(s.backend); bs != nil {
		st = bs.ServerTimeout
		if s.serverFin.Load() && bs.ServerFinTimeout > 0 {
			st = bs.ServerFinTimeout
		}
	}
	if ct > 0 && (st == 0 || ct <= st) {
		return ct, "client_timeout"
	}
	return st, "server_timeout"
}

// watchdog aborts the session once nothing moved for the idle timeout.
//
// It measures idleness from when bytes last moved, as the kernel saw it
// (TCP_INFO's last_data_recv and last_ack_recv), not from when the
// watchdog noticed: counting from the look that saw progress let a
// timeout fire up to twice its value (issue 9). A FIN is activity too, and
// is reported at once (finSeen): the fin timeouts that may now apply are
// usually shorter than the deadline already set.
type watchdog struct {
	s      *session
	mu     sync.Mutex
	t      *time.Timer
	last   [4]uint64 // bytes received/acked on the client, then the server socket
	active time.Time // when bytes last moved
	done   bool
}

// watchdogMin keeps a check that finds a few milliseconds of idleness
// left (TCP_INFO counts in milliseconds) from firing in a tight loop.
const watchdogMin = 5 * time.Millisecond

// watchdogRecheck: how often a session without timeouts looks again,
// since a reload may set some.
const watchdogRecheck = 30 * time.Second

func (s *session) startWatchdog() *watchdog {
	// last starts at zero: the first check sees the handshake's bytes as
	// progress, which costs nothing here on the hot path.
	w := &watchdog{s: s, active: time.Now()}
	timeout, _ := s.idle()
	if timeout <= 0 {
		timeout = watchdogRecheck
	}
	w.t = time.AfterFunc(timeout, w.check)
	return w
}

func (w *watchdog) stop() {
	w.mu.Lock()
	w.done = true
	w.t.Stop()
	w.mu.Unlock()
}

// progress returns the byte counters of both sockets and, for each, how
// long ago the kernel last saw it move.
func (w *watchdog) progress() (p [4]uint64, age [4]time.Duration) {
	for i, c := range []*net.TCPConn{w.s.client, w.s.server} {
		raw, err := c.SyscallConn()
		if err != nil {
			continue
		}
		raw.Control(func(fd uintptr) {
			if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				p[2*i], p[2*i+1] = ti.Bytes_received, ti.Bytes_acked
				age[2*i] = time.Duration(ti.Last_data_recv) * time.Millisecond
				age[2*i+1] = time.Duration(ti.Last_ack_recv) * time.Millisecond
			}
		})
	}
	return p, age
}

func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	now := time.Now()
	p, age := w.progress()
	for i := range p {
		if p[i] != w.last[i] {
			if at := now.Add(-age[i]); at.After(w.active) {
				w.active = at
			}
		}
	}
	w.last = p
	w.scheduleLocked(now)
}

// finSeen records a FIN as activity and re-arms the timer for the
// timeouts that apply from now on.
func (w *watchdog) finSeen() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	now := time.Now()
	w.active = now
	w.scheduleLocked(now)
}

// scheduleLocked aborts the session if it has been idle for its timeout,
// else sets the timer to when it will have been.
func (w *watchdog) scheduleLocked(now time.Time) {
	timeout, reason := w.s.idle()
	if timeout <= 0 {
		w.t.Reset(watchdogRecheck)
		return
	}
	idle := now.Sub(w.active)
	if idle >= timeout {
		w.done = true
		go w.s.abort(reason) // abort closes sockets: not under w.mu
		return
	}
	w.t.Reset(max(timeout-idle, watchdogMin))
}
