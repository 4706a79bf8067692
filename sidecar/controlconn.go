package sidecar

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
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
type controlListener struct {
	net.Listener
	opt ControlOptions // with defaults
	log *slog.Logger   // nil until ServeControl sets it

	mu      sync.Mutex
	conns   map[*controlConn]struct{}
	evicted int // since the last warning
	warned  time.Time
}

func newControlListener(ln net.Listener, opt ControlOptions) *controlListener {
	return &controlListener{Listener: ln, opt: opt.withDefaults(), conns: map[*controlConn]struct{}{}}
}

// controlConn is one connection of a controlListener.
type controlConn struct {
	net.Conn
	l *controlListener
	// Guarded by l.mu.
	since     time.Time // when it last became evictable
	answering bool      // its request was read; the answer is being made
}

// Accept returns the next connection, making room for it first.
func (l *controlListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cc := &controlConn{Conn: c, l: l, since: time.Now()}
		var victim *controlConn
		l.mu.Lock()
		if len(l.conns) >= l.opt.MaxConns {
			for x := range l.conns {
				if !x.answering && (victim == nil || x.since.Before(victim.since)) {
					victim = x
				}
			}
			if victim != nil {
				delete(l.conns, victim)
			}
		}
		full := len(l.conns) >= l.opt.MaxConns
		if !full {
			l.conns[cc] = struct{}{}
		}
		if victim != nil || full {
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
			l.log.Warn("control socket full: closed connections that had no request in progress",
				"closed", report, "limit", l.opt.MaxConns)
		}
		if full {
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
