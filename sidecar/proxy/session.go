package proxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// session is one proxied connection.
type session struct {
	e        *Engine
	id       uint64
	fe       *FrontendSpec
	bind     BindSpec
	start    time.Time
	client   *net.TCPConn
	listenNS *netns.Handle // where the client socket lives
	clientNS *netns.Handle // the connection's namespace (listener's, or from a PROXY TLV)
	nsSource string        // where clientNS came from: listener or tlv
	src, dst netip.AddrPort
	proxyVer int

	ctx    context.Context // cancelled by abort: ends a dial in progress
	cancel context.CancelFunc

	mu        sync.Mutex
	server    *net.TCPConn
	srv       *server
	serverNS  *netns.Handle
	backend   string
	term      string // first reason the session ended abnormally
	aborted   bool
	clientFin atomic.Bool // client sent FIN
	serverFin atomic.Bool // server sent FIN
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	wd        *watchdog // set before the pump's goroutines start
	// counters fed per chunk besides the session's own: the frontend's,
	// the server's and the namespaces'. Set before the pump starts.
	counters []*Counters
}

func (e *Engine) startSession(l *listener, h *netns.Handle, c *net.TCPConn) {
	s := &session{e: e, id: e.nextID.Add(1), fe: l.fe.spec.Load(), bind: l.bind, start: time.Now(),
		client: c, listenNS: h, clientNS: h, nsSource: "listener"}
	s.src = addrPort(c.RemoteAddr())
	s.dst = addrPort(c.LocalAddr())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	e.sessMu.Lock()
	e.sessions[s] = struct{}{}
	e.sessWG.Add(1)
	e.sessMu.Unlock()
	fe := l.fe
	fe.stats.Current.Add(1)
	fe.stats.Total.Add(1)
	s.counters = []*Counters{&fe.stats}
	go func() {
		defer e.sessWG.Done()
		defer e.global.release()
		defer fe.limit.release()
		defer fe.stats.Current.Add(-1)
		s.run()
		e.sessMu.Lock()
		delete(e.sessions, s)
		e.sessMu.Unlock()
	}()
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// abort ends the session now, closing both sockets; the first reason wins.
func (s *session) abort(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term == "" {
		s.term = reason
	}
	s.aborted = true
	s.cancel()
	s.client.Close()
	if s.server != nil {
		s.server.Close()
	}
}

func (s *session) setTerm(reason string) {
	s.mu.Lock()
	if s.term == "" {
		s.term = reason
	}
	s.mu.Unlock()
}

func (s *session) run() {
	defer s.cancel()
	defer s.client.Close()
	stopClientNS := context.AfterFunc(s.listenNS.Context(), func() { s.abort("client_netns_gone") })
	defer stopClientNS()
	if s.bind.AcceptProxy {
		if err := s.readProxyHeader(); err != nil {
			s.logEnd(err)
			return
		}
	}
	if err := s.connect(); err != nil {
		s.logEnd(err)
		return
	}
	defer s.server.Close()
	stopServerNS := context.AfterFunc(s.serverNS.Context(), func() { s.abort("server_netns_gone") })
	defer stopServerNS()
	srv := s.srv
	defer srv.active.Add(-1)
	defer srv.stats.Current.Add(-1)
	s.counters = append(s.counters, &srv.stats)
	for _, label := range s.netnsLabels() {
		c := s.e.ns.acquire(label)
		defer c.Current.Add(-1)
		s.counters = append(s.counters, c)
	}
	s.pump()
	s.logEnd(nil)
}

// netnsLabels are the namespaces the connection uses, each once.
func (s *session) netnsLabels() []string {
	c, v := s.clientNS.Label(), s.serverNS.Label()
	if c == v {
		return []string{c}
	}
	return []string{c, v}
}
