package sidecar

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of ControlOptions' limits.
const (
	// DefaultControlMaxConns: the hooks and the CLI each hold one
	// connection for a request; a burst of container starts stays far
	// below it.
	DefaultControlMaxConns = 128
	// DefaultControlReadTimeout bounds reading one request, headers and
	// body (at most hooks.MaxAttachmentSize) over a local socket.
	DefaultControlReadTimeout = 10 * time.Second
	// DefaultControlIdleTimeout is longer than the CLI keeps an idle
	// connection (30 s), so that the client always closes first and never
	// sends on a connection the daemon is closing.
	DefaultControlIdleTimeout = 60 * time.Second
	// DefaultControlWriteTimeout bounds writing one answer to a client
	// that does not read it.
	DefaultControlWriteTimeout = 10 * time.Second
)

// evictLogEvery spaces the warnings about connections closed to make room.
const evictLogEvery = 10 * time.Second

// withDefaults fills the zero limits.
func (o ControlOptions) withDefaults() ControlOptions {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultControlMaxConns
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultControlReadTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultControlIdleTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultControlWriteTimeout
	}
	return o
}

// controlListener bounds the control socket's open connections. At the
// bound, a new connection closes the oldest one that is not being answered
// (one that sends nothing, sends its request slowly or idles between
// requests), so that slow or idle clients, however many, cannot lock out
// the next one: the CLI's request is read as soon as it connects and is
// then never closed. When every connection is being answered, the new one
// is closed instead.
//
// Privileged peers (root, the daemon's user, the socket group: the CNI
// plugin, the OCI hook, the CLI) are never locked out by the others, whom
// --tenant-access lets connect: a client that pipelines requests and reads
// no answer keeps its connection "being answered" until the write timeout.
// So the other peers hold at most half the connections together and each
// uid at most an eighth (unprivMax, uidMax; each at least one), a new
// connection over those shares closes the oldest idle one of that uid or
// of those peers or is itself closed, and a privileged connection that
// finds every slot being answered closes the oldest unprivileged one even
// while it is answered.
type controlListener struct {
	net.Listener
	opt ControlOptions // with defaults

	mu      sync.Mutex
	log     *slog.Logger // nil until ServeControl sets it
	group   int          // the socket group (allowedPeer), set by ServeControl
	conns   map[*controlConn]struct{}
	evicted int // since the last warning
	warned  time.Time
}

func newControlListener(ln net.Listener, opt ControlOptions) *controlListener {
	return &controlListener{Listener: ln, opt: opt.withDefaults(), conns: map[*controlConn]struct{}{}, group: opt.Group}
}

// controlConn is one connection of a controlListener.
type controlConn struct {
	net.Conn
	l *controlListener
	// The peer, read once at accept (SO_PEERCRED, SO_PEERGROUPS).
	cred    *unix.Ucred
	groups  []uint32
	credErr error
	priv    bool // allowedPeer: not bounded by the unprivileged shares
	// Guarded by l.mu.
	since     time.Time // when it last became evictable
	answering bool      // its request was read; the answer is being made
}

// uid is the peer's uid; peers whose credentials could not be read
// share one.
func (c *controlConn) uid() uint32 {
	if c.cred == nil {
		return ^uint32(0)
	}
	return c.cred.Uid
}

// unprivMax and uidMax are the unprivileged peers' shares of the
// connections: all of them together, and one uid.
func (l *controlListener) unprivMax() int { return max(1, l.opt.MaxConns/2) }
func (l *controlListener) uidMax() int    { return max(1, l.opt.MaxConns/8) }

// oldest is the connection that has been evictable longest among those
// match accepts, nil when there is none; with busy, those being answered
// count too.
func (l *controlListener) oldest(match func(*controlConn) bool, busy bool) *controlConn {
	var victim *controlConn
	for x := range l.conns {
		if (busy || !x.answering) && match(x) && (victim == nil || x.since.Before(victim.since)) {
			victim = x
		}
	}
	return victim
}

// room finds the connection to close so that cc fits (nil: none needed
// or none allowed) and reports whether cc may stay. With l.mu held.
func (l *controlListener) room(cc *controlConn) (*controlConn, bool) {
	all := func(*controlConn) bool { return true }
	unpriv := func(x *controlConn) bool { return !x.priv }
	if !cc.priv {
		uid := cc.uid()
		sameUID := func(x *controlConn) bool { return !x.priv && x.uid() == uid }
		nUID, nUnpriv := 0, 0
		for x := range l.conns {
			if !x.priv {
				nUnpriv++
				if x.uid() == uid {
					nUID++
				}
			}
		}
		switch {
		case nUID >= l.uidMax():
			v := l.oldest(sameUID, false)
			return v, v != nil
		case nUnpriv >= l.unprivMax():
			v := l.oldest(unpriv, false)
			return v, v != nil
		}
	}
	if len(l.conns) < l.opt.MaxConns {
		return nil, true
	}
	if v := l.oldest(all, false); v != nil {
		return v, true
	}
	if cc.priv {
		if v := l.oldest(unpriv, true); v != nil {
			return v, true
		}
	}
	return nil, false
}

// Accept returns the next connection, making room for it first.
func (l *controlListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cc := &controlConn{Conn: c, l: l, since: time.Now()}
		cc.cred, cc.groups, cc.credErr = readPeerCred(c)
		l.mu.Lock()
		cc.priv = allowedPeer(cc.cred, cc.groups, l.group)
		victim, ok := l.room(cc)
		if victim != nil {
			delete(l.conns, victim)
		}
		if ok {
			l.conns[cc] = struct{}{}
		}
		if victim != nil || !ok {
			l.evicted++
		}
		var report int
		if l.evicted > 0 && l.log != nil && time.Since(l.warned) >= evictLogEvery {
			report, l.evicted, l.warned = l.evicted, 0, time.Now()
		}
		l.mu.Unlock()
		if victim != nil {
			victim.Conn.Close()
		}
		if report > 0 {
			l.log.Warn("control socket full: closed connections that had no request in progress, "+
				"or of unprivileged peers over their share",
				"closed", report, "limit", l.opt.MaxConns, "unprivileged_limit", l.unprivMax(), "per_uid_limit", l.uidMax())
		}
		if !ok {
			c.Close()
			continue
		}
		return cc, nil
	}
}

// Close removes the connection from the count and closes it.
func (c *controlConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// connState is the http.Server's ConnState hook: a connection that waits
// for its next request may give way again.
func (l *controlListener) connState(c net.Conn, st http.ConnState) {
	cc, ok := c.(*controlConn)
	if !ok || st != http.StateIdle {
		return
	}
	l.mu.Lock()
	cc.answering, cc.since = false, time.Now()
	l.mu.Unlock()
}

type connKey struct{}

// startAnswer marks the request's connection as being answered: its
// request has been read whole, so it is no longer closed to make room.
func startAnswer(r *http.Request) {
	cc, ok := r.Context().Value(connKey{}).(*controlConn)
	if !ok {
		return
	}
	cc.l.mu.Lock()
	cc.answering = true
	cc.l.mu.Unlock()
}

// writeAnswer writes the answer within WriteTimeout, counted from now: a
// write that waited for the state lock longer than that has been applied,
// and its client must still hear so.
func writeAnswer(w http.ResponseWriter, r *http.Request, code int, body any) {
	if cc, ok := r.Context().Value(connKey{}).(*controlConn); ok {
		cc.SetWriteDeadline(time.Now().Add(cc.l.opt.WriteTimeout))
	}
	writeJSON(w, code, body)
}

// withConn is the http.Server's ConnContext part that startAnswer needs.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// rawListener is the socket under a controlListener: the hand-over passes
// and closes the socket itself, not the bound around it.
func rawListener(ln net.Listener) net.Listener {
	if cl, ok := ln.(*controlListener); ok {
		return cl.Listener
	}
	return ln
}

// hijacked takes a connection out of the bound for good (the hand-over
// keeps it for minutes) and returns the socket under it.
func hijacked(c net.Conn) net.Conn {
	cc, ok := c.(*controlConn)
	if !ok {
		return c
	}
	cc.l.mu.Lock()
	delete(cc.l.conns, cc)
	cc.l.mu.Unlock()
	return cc.Conn
}
