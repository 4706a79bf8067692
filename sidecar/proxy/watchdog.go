package proxy

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// idle returns the inactivity timeout that applies now, to both
// directions (idle means no byte either way), and the termination reason
// that names the side whose timeout it is.
//
// The fin timeouts apply, as HAProxy's client-fin and server-fin do, once
// the connection is shut down in either direction: a FIN from the server
// is passed on to the client, whose side is then half-closed too, and the
// other way round. So client-fin bounds a silent client after the
// server's FIN, not only after its own.
func (s *session) idle() (time.Duration, string) {
	half := s.clientFin.Load() || s.serverFin.Load()
	ct := s.fe.ClientTimeout
	if half && s.fe.ClientFinTimeout > 0 {
		ct = s.fe.ClientFinTimeout
	}
	var st time.Duration
	if bs := s.e.backendSpec(s.backendName()); bs != nil {
		st = bs.ServerTimeout
		if half && bs.ServerFinTimeout > 0 {
			st = bs.ServerFinTimeout
		}
	}
	if ct > 0 && (st == 0 || ct <= st) {
		return ct, "client_timeout"
	}
	return st, "server_timeout"
}

// activity is a connection's idle watch: one entry in its loop's timer
// heap, no runtime timer.
//
// Idleness is measured from when bytes last moved: the loop stamps every
// byte it moves (active), and the check at the deadline also asks the
// kernel (TCP_INFO's last_data_recv and last_ack_recv) whether either
// socket received or had acknowledged a byte since its last look, so that
// a peer slowly draining what the loop already wrote keeps the connection
// alive, as HAProxy's default does. Counting from the check that noticed
// progress let a timeout fire up to twice its value (issue 9). A FIN is
// activity too, and re-arms at once (finSeen): the fin timeouts that may
// apply now are usually shorter than the deadline already set.
type activity struct {
	active   mono      // when bytes last moved
	deadline mono      // of the next check
	hidx     int       // index in the loop's timer heap; -1: not in it
	last     [4]uint64 // bytes received/acked on the client, then the server socket
}

// watchdogMin keeps a check that finds a few milliseconds of idleness
// left (TCP_INFO counts in milliseconds) from firing in a tight loop.
const watchdogMin = 5 * time.Millisecond

// watchdogRecheck: how often a connection without timeouts looks again,
// since a reload may set some.
const watchdogRecheck = 30 * time.Second

// armIdle sets the next check for the timeout that applies now, counted
// from the last activity.
func (c *pconn) armIdle(now mono) {
	timeout, _ := c.s.idle()
	if timeout <= 0 {
		c.deadline = now.add(watchdogRecheck)
	} else {
		c.deadline = c.active.add(max(timeout, watchdogMin))
		if c.deadline < now {
			c.deadline = now
		}
	}
	c.l.timers.set(c)
}

// idleCheck runs at the deadline: it ends the connection if it has been
// idle for its timeout, else moves the deadline.
func (c *pconn) idleCheck(now mono) {
	if c.header != nil {
		c.headerDone(nil, c.header.Timeout())
		return
	}
	if c.connecting {
		c.connectFailed(fmt.Errorf("dial tcp %s: i/o timeout (timeout connect %v)", c.s.at.dst, c.s.connectTimeout()))
		return
	}
	timeout, reason := c.s.idle()
	if timeout <= 0 {
		c.deadline = now.add(watchdogRecheck)
		c.l.timers.set(c)
		return
	}
	p, age := c.progress()
	for i := range p {
		if p[i] != c.last[i] {
			if at := now.add(-age[i]); at > c.active {
				c.active = at
			}
		}
	}
	c.last = p
	idle := now.sub(c.active)
	if idle >= timeout {
		c.fail(reason)
		return
	}
	c.deadline = now.add(max(timeout-idle, watchdogMin))
	c.l.timers.set(c)
}

// progress returns the byte counters of both sockets and, for each, how
// long ago the kernel last saw it move.
func (c *pconn) progress() (p [4]uint64, age [4]time.Duration) {
	for i, fd := range c.fd {
		if ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			p[2*i], p[2*i+1] = ti.Bytes_received, ti.Bytes_acked
			age[2*i] = time.Duration(ti.Last_data_recv) * time.Millisecond
			age[2*i+1] = time.Duration(ti.Last_ack_recv) * time.Millisecond
		}
	}
	return p, age
}

// finSeen records a FIN from side as activity and re-arms the check for
// the timeouts that apply from now on.
func (c *pconn) finSeen(side int) {
	c.finFlag(side)
	c.active = c.l.now
	c.armIdle(c.l.now)
}

// finFlag records that side sent its FIN.
func (c *pconn) finFlag(side int) {
	if side == 0 {
		c.s.clientFin.Store(true)
	} else {
		c.s.serverFin.Store(true)
	}
}
