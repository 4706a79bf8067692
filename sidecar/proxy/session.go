package proxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// session is one proxied connection. The loop that accepted it sets it up
// (accept.go): an accept-proxy bind's header is read in the loop; the
// connect starts on the loop when the server's socket is made in the
// daemon's own namespace, else on a connector. No connection costs a
// goroutine.
type session struct {
	e     *Engine
	id    uint64
	fe    *FrontendSpec
	front *frontend
	// tenantLimit is the tenant maxconn slot it holds (the frontend's
	// tenant may change while it lives).
	tenantLimit *limiter
	start       time.Time
	listenNS    *netns.Handle // where the client socket lives
	clientNS    *netns.Handle // the connection's namespace (listener's, or from a PROXY TLV)
	src, dst    netip.AddrPort
	acceptProxy bool  // the bind reads a PROXY header
	tlvNS       bool  // clientNS came from the header's NETNS TLV, not the listener
	proxyVer    uint8 // of the header read

	// Connection attempts (dial.go), used by one goroutine or loop at a
	// time: the loop or a connector.
	deferred bool  // at is chosen, its socket not made yet (a loop's errOffLoop)
	attempts uint8 // servers tried: tried[:attempts]
	aborted  bool  // under mu
	tried    [maxAttempts]*server
	b        *backend // under mu when set (its name is the session's backend)
	bs       *BackendSpec
	lastErr  error
	at       attempt // in progress or established, or chosen for a connector (deferred); under mu
	endErr   error   // why the connection failed, for its log line (the loop's)

	mu        sync.Mutex
	clientFin atomic.Bool // client sent FIN
	serverFin atomic.Bool // server sent FIN
	srv       *server
	serverNS  *netns.Handle
	term      string // first reason the session ended abnormally
	pc        *pconn // its sockets in a loop, set right after accept
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	// counters fed per chunk besides the session's own: the frontend's,
	// the server's and the namespaces' (client's, then server's if
	// another; they are held: Current lowered at the end). Written by the
	// loop (or before it takes over); nil entries are none.
	counters [4]*Counters
}

// newSession: fe is the frontend whose maxconn slot the accept took (the
// listener's when it accepted; a reload may hand it to another since).
func (e *Engine) newSession(l *listener, fe *frontend, h *netns.Handle, src, dst netip.AddrPort) *session {
	s := &session{e: e, id: e.nextID.Add(1), fe: fe.spec.Load(), front: fe, acceptProxy: l.bind.AcceptProxy,
		start: time.Now(), listenNS: h, clientNS: h, src: src, dst: dst}
	e.sessMu.Lock()
	e.sessions[s] = struct{}{}
	e.sessWG.Add(1)
	e.sessMu.Unlock()
	fe.stats.Current.Add(1)
	fe.stats.Total.Add(1)
	s.counters[0] = &fe.stats
	return s
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// abort ends the session now, closing both sockets; the first reason wins.
// Once a loop owns the sockets, the loop closes them.
func (s *session) abort(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term == "" {
		s.term = reason
	}
	s.aborted = true
	if pc := s.pc; pc != nil {
		pc.l.post(pc.finish) // a loop that stopped has closed it already
	}
}

func (s *session) setTerm(reason string) {
	s.mu.Lock()
	if s.term == "" {
		s.term = reason
	}
	s.mu.Unlock()
}

// dropAttempt gives up the attempt in progress without counting it as
// the server's failure: the session ends for another reason.
func (s *session) dropAttempt(sfd int) {
	unix.Close(sfd)
	s.mu.Lock()
	srv := s.at.srv
	s.mu.Unlock()
	srv.active.Add(-1)
}

// end writes the connection's log line and gives back what it held:
// counters, maxconn slots, its place in the engine's set. It runs once,
// on the listener's goroutine or on the loop that owned the connection.
func (s *session) end(err error) {
	s.logEnd(err)
	for _, c := range s.counters[2:] {
		if c != nil {
			c.Current.Add(-1)
		}
	}
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.stats.Current.Add(-1)
		srv.active.Add(-1)
	}
	e := s.e
	e.sessMu.Lock()
	delete(e.sessions, s)
	e.sessMu.Unlock()
	s.front.stats.Current.Add(-1)
	s.front.limit.release()
	s.tenantLimit.release()
	e.global.release()
	e.sessWG.Done()
}

// netnsLabels are the namespaces the connection uses, each once.
func (s *session) netnsLabels() []string {
	c, v := s.clientNS.Label(), s.serverNS.Label()
	if c == v {
		return []string{c}
	}
	return []string{c, v}
}

// watchNS makes sure that the end of h's namespace aborts the sessions
// that use it (nsGone): one hook per namespace in use, not one per
// connection and side.
func (e *Engine) watchNS(h *netns.Handle) {
	if _, ok := e.nsWatched.Load(h); ok {
		return
	}
	if _, loaded := e.nsWatched.LoadOrStore(h, struct{}{}); !loaded {
		context.AfterFunc(h.Context(), func() { e.nsGone(h) })
	}
}

// nsGone aborts the sessions whose client socket (listener) or server
// attempt lives in h's namespace, which has gone, and closes the
// listening sockets there (each listener then waits for a replacement). A session that starts
// using h after this looks at h's context itself.
func (e *Engine) nsGone(h *netns.Handle) {
	e.nsWatched.Delete(h)
	type gone struct {
		s      *session
		reason string
	}
	var out []gone
	e.sessMu.Lock()
	for s := range e.sessions {
		if s.listenNS == h {
			out = append(out, gone{s, "client_netns_gone"})
			continue
		}
		s.mu.Lock()
		server := s.at.h == h
		s.mu.Unlock()
		if server {
			out = append(out, gone{s, "server_netns_gone"})
		}
	}
	e.sessMu.Unlock()
	for _, g := range out {
		g.s.abort(g.reason)
	}
	for _, l := range e.listenersIn(h) {
		l.nsEnded(h)
	}
}

// backendName is the session's backend, once chosen (s.mu held, or on the
// loop).
func (s *session) backendName() string {
	if s.b == nil {
		return ""
	}
	return s.b.name
}
