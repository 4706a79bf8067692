package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// session is one proxied connection. The listener's goroutine sets up a
// plain bind's connection inline (server choice, the start of the connect)
// and hands both sockets to an event loop; an accept-proxy bind's client
// socket goes to a loop at once, which reads the PROXY header and has a
// connector start the connect. No connection costs a goroutine.
type session struct {
	e     *Engine
	id    uint64
	fe    *FrontendSpec
	front *frontend
	// tenantLimit is the tenant maxconn slot it holds (the frontend's
	// tenant may change while it lives).
	tenantLimit *limiter
	bind        BindSpec
	start       time.Time
	cfd         int           // the client's raw socket until a loop owns it (-1: none)
	listenNS    *netns.Handle // where the client socket lives
	clientNS    *netns.Handle // the connection's namespace (listener's, or from a PROXY TLV)
	nsSource    string        // where clientNS came from: listener or tlv
	src, dst    netip.AddrPort
	proxyVer    int

	// stopClientNS unhooks the abort on the client namespace's end;
	// nsCounters are the namespaces' counters the connection holds.
	stopClientNS func() bool
	nsCounters   []*Counters

	// Connection attempts (dial.go), used by one goroutine or loop at a
	// time: the listener's goroutine or a connector, then the loop.
	b        *backend
	bs       *BackendSpec
	tried    map[*server]bool
	attempts int
	lastErr  error
	at       attempt // in progress or established

	mu           sync.Mutex
	stopServerNS func() bool // unhooks the abort on the server namespace's end
	srv          *server
	serverNS     *netns.Handle
	backend      string
	term         string // first reason the session ended abnormally
	aborted      bool
	pc           *pconn      // set once a loop owns the sockets
	clientFin    atomic.Bool // client sent FIN
	serverFin    atomic.Bool // server sent FIN
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
	// counters fed per chunk besides the session's own: the frontend's,
	// the server's and the namespaces'. Set before the loop takes over.
	counters []*Counters
}

// startSessionFD sets up a connection accepted as a raw non-blocking fd on
// the caller's goroutine, the listener's; no goroutine of its own. A plain
// bind's: server choice, the start of the connect, the hand-off to a loop.
// An accept-proxy bind's: the trusted-proxies check, then the hand-off to a
// loop, which reads the header. It reports a thread stuck in a foreign
// namespace (netns.ErrThreadStuck): the caller must then end its
// goroutine, which takes the thread with it.
func (e *Engine) startSessionFD(l *listener, tenant *limiter, h *netns.Handle, fd int, src, dst netip.AddrPort) (stuck bool) {
	s := e.newSession(l, h, src, dst)
	s.tenantLimit = tenant
	s.cfd = fd
	s.stopClientNS = context.AfterFunc(s.listenNS.Context(), func() { s.abort("client_netns_gone") })
	if s.bind.AcceptProxy {
		if err := s.checkProxySource(); err != nil {
			s.end(err)
			return false
		}
		s.handOffHeader()
		return false
	}
	return s.connectNext()
}

func (e *Engine) newSession(l *listener, h *netns.Handle, src, dst netip.AddrPort) *session {
	s := &session{e: e, id: e.nextID.Add(1), fe: l.fe.spec.Load(), front: l.fe, bind: l.bind, start: time.Now(),
		cfd: -1, listenNS: h, clientNS: h, nsSource: "listener", src: src, dst: dst}
	e.sessMu.Lock()
	e.sessions[s] = struct{}{}
	e.sessWG.Add(1)
	e.sessMu.Unlock()
	fe := l.fe
	fe.stats.Current.Add(1)
	fe.stats.Total.Add(1)
	s.counters = []*Counters{&fe.stats}
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

// connectNext chooses the server, starts the connect and hands the
// connection to a loop, or ends the session.
func (s *session) connectNext() (stuck bool) {
	if err := s.prepareConnect(); err != nil {
		s.end(err)
		return false
	}
	sfd, err := s.nextAttempt()
	if err != nil {
		s.end(err)
		return errors.Is(err, netns.ErrThreadStuck)
	}
	s.handOff(sfd)
	return false
}

// handOff moves the client's socket and the connecting server socket to
// the least busy loop. Under s.mu, so that an abort either finds the
// *net.TCPConn here or reaches the loop after the adoption.
func (s *session) handOff(sfd int) {
	l := s.e.pickLoop()
	s.mu.Lock()
	if s.aborted {
		s.mu.Unlock()
		s.dropAttempt(sfd)
		s.end(nil)
		return
	}
	cfd := s.cfd
	s.cfd = -1 // the loop's from now on
	pc := &pconn{s: s, l: l, fd: [2]int{cfd, sfd}, connecting: true}
	pc.hidx = -1
	s.pc = pc
	l.conns.Add(1)
	ok := l.post(func() { l.adopt(pc) })
	s.mu.Unlock()
	if !ok { // the loops stopped: the engine is shutting down
		l.conns.Add(-1)
		unix.Close(cfd)
		s.dropAttempt(sfd)
		s.setTerm("shutdown")
		s.end(nil)
	}
}

// handOffHeader moves an accept-proxy bind's client socket to the least
// busy loop, which reads the PROXY header (pconn.readHeader).
func (s *session) handOffHeader() {
	l := s.e.pickLoop()
	s.mu.Lock()
	if s.aborted {
		s.mu.Unlock()
		s.end(nil)
		return
	}
	cfd := s.cfd
	s.cfd = -1 // the loop's from now on
	pc := &pconn{s: s, l: l, fd: [2]int{cfd, -1}, header: s.headerParser()}
	pc.hidx = -1
	s.pc = pc
	l.conns.Add(1)
	ok := l.post(func() { l.adoptHeader(pc) })
	s.mu.Unlock()
	if !ok { // the loops stopped: the engine is shutting down
		l.conns.Add(-1)
		unix.Close(cfd)
		s.setTerm("shutdown")
		s.end(nil)
	}
}

// dropAttempt gives up the attempt in progress without counting it as
// the server's failure: the session ends for another reason.
func (s *session) dropAttempt(sfd int) {
	unix.Close(sfd)
	s.mu.Lock()
	srv, stop := s.at.srv, s.stopServerNS
	s.stopServerNS = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	srv.active.Add(-1)
}

// end writes the connection's log line and gives back what it held:
// counters, maxconn slots, its place in the engine's set. It runs once,
// on the listener's goroutine or on the loop that owned the connection.
func (s *session) end(err error) {
	s.logEnd(err)
	for _, c := range s.nsCounters {
		c.Current.Add(-1)
	}
	s.mu.Lock()
	srv, stopServerNS, pc := s.srv, s.stopServerNS, s.pc
	s.mu.Unlock()
	if srv != nil {
		srv.stats.Current.Add(-1)
		srv.active.Add(-1)
	}
	if stopServerNS != nil {
		stopServerNS()
	}
	s.stopClientNS()
	if pc == nil && s.cfd >= 0 {
		unix.Close(s.cfd)
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
