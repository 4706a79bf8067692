package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
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

// connect picks servers until one answers: at most three attempts, each on
// a different server.
func (s *session) connect() error {
	b := s.e.backend(s.fe.Backend)
	if b == nil {
		s.setTerm("no_backend")
		return errors.New("backend " + s.fe.Backend + " does not exist")
	}
	s.mu.Lock()
	s.backend = b.name
	s.mu.Unlock()
	bs := b.spec.Load()
	tried := map[*server]bool{}
	nsOK := func(name string) bool { _, err := s.e.reg.Get(name); return err == nil }
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		srv := b.pick(s.src.Addr(), tried, nsOK)
		if srv == nil {
			break
		}
		tried[srv] = true
		srv.active.Add(1)
		c, h, err := s.dial(bs, srv)
		if errors.Is(err, ErrLoop) {
			srv.active.Add(-1)
			s.e.frontendRefusal(s.fe.Name, reasonLoop)
			s.setTerm("loop")
			return err
		}
		if err != nil {
			srv.active.Add(-1)
			srv.stats.ConnectErrors.Add(1)
			b.stats.ConnectErrors.Add(1)
			lastErr = err
			s.e.log.Debug("connect failed", "backend", b.name, "server", srv.spec.Name, "err", err)
			continue
		}
		srv.stats.Current.Add(1)
		srv.stats.Total.Add(1)
		b.stats.Total.Add(1)
		s.mu.Lock()
		s.server, s.serverNS, s.srv = c, h, srv
		aborted := s.aborted
		s.mu.Unlock()
		if aborted {
			c.Close()
		}
		return nil
	}
	if lastErr == nil {
		s.setTerm("no_server")
		return errors.New("no server available in backend " + b.name)
	}
	s.setTerm("connect_failed")
	return lastErr
}

// dial connects to srv inside its namespace (the client's for "namespace *").
func (s *session) dial(bs *BackendSpec, srv *server) (*net.TCPConn, *netns.Handle, error) {
	h := s.clientNS
	if !srv.spec.ClientNamespace {
		var err error
		if h, err = s.e.reg.Get(srv.spec.Namespace); err != nil {
			return nil, nil, err
		}
	}
	dst, err := s.destination(srv.spec)
	if err != nil {
		return nil, nil, err
	}
	// A destination from the client may be one of our own listeners.
	fromClient := !srv.spec.Addr.IsValid() || srv.spec.Addr.IsUnspecified() || srv.spec.PortMode != PortFixed
	if fromClient && s.e.own.isOwn(h, dst, func(a netip.Addr) bool { return localInNamespace(h, a) }) {
		return nil, nil, fmt.Errorf("%w: %s in namespace %s", ErrLoop, dst, h.Label())
	}
	timeout := bs.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	// The dial ends with the session (abort, shutdown), the client's
	// namespace (via abort) or the server's namespace.
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	stopNS := context.AfterFunc(h.Context(), cancel)
	defer stopNS()
	var opt netns.DialOptions
	switch {
	case bs.UseSrcClientIP:
		opt = netns.DialOptions{Source: netip.AddrPortFrom(s.src.Addr(), 0), Transparent: true}
	case bs.Source.IsValid() && !bs.Source.IsUnspecified():
		opt = netns.DialOptions{Source: netip.AddrPortFrom(bs.Source, 0)}
	}
	c, err := h.Dial(ctx, dst, opt)
	if err != nil {
		return nil, nil, err
	}
	if srv.spec.SendProxy > 0 {
		if err := s.writeProxyHeader(c, srv.spec.SendProxy, fromClient); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	return c, h, nil
}

// errNoDestination: a server takes its address from the client connection,
// and the connection has none usable.
var errNoDestination = errors.New("server address comes from the client connection, which has no usable destination")

// destination resolves the server address for this connection.
func (s *session) destination(sp ServerSpec) (netip.AddrPort, error) {
	addr := sp.Addr
	if !addr.IsValid() || addr.IsUnspecified() {
		if !s.dst.IsValid() {
			return netip.AddrPort{}, errNoDestination
		}
		addr = s.dst.Addr()
	}
	switch sp.PortMode {
	case PortFromClient:
		if !s.dst.IsValid() {
			return netip.AddrPort{}, errNoDestination
		}
		return netip.AddrPortFrom(addr, s.dst.Port()), nil
	case PortOffset:
		if !s.dst.IsValid() {
			return netip.AddrPort{}, errNoDestination
		}
		p := int(s.dst.Port()) + sp.PortOffset
		if p < 1 || p > 65535 {
			return netip.AddrPort{}, errors.New("port offset gives a port out of range")
		}
		return netip.AddrPortFrom(addr, uint16(p)), nil
	}
	return netip.AddrPortFrom(addr, sp.Port), nil
}

// copyChunk bounds one splice call, so that byte counters move during
// long transfers.
const copyChunk = 1 << 20

// burstMax: less than this queued is spliced as one bounded call.
const burstMax = 64 << 10

// pump moves bytes both ways until both sides finished, with half-close:
// a FIN from one side is passed on and the other direction goes on.
//
// Inactivity is watched by one timer per session, not by socket deadlines:
// a write deadline that fires in the middle of a splice would throw away
// the bytes already in the kernel pipe. The watchdog asks the kernel
// (TCP_INFO) whether either socket received or had acknowledged a byte
// since its last look, so a slow but moving transfer in one direction
// keeps the whole connection alive, as HAProxy's default does.
func (s *session) pump() {
	w := s.startWatchdog()
	s.wd = w
	defer w.stop()
	done := make(chan struct{})
	go func() {
		s.copy(s.server, s.client, true)
		close(done)
	}()
	s.copy(s.client, s.server, false)
	<-done
}

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

// copy moves src to dst. dst.ReadFrom with a *net.TCPConn inside an
// io.LimitedReader is spliced by the runtime; the loop only bounds each
// call so that counters are fed while data flows.
func (s *session) copy(dst, src *net.TCPConn, fromClient bool) {
	count := &s.bytesOut
	if fromClient {
		count = &s.bytesIn
	}
	raw, err := src.SyscallConn()
	if err != nil {
		s.abort("closed")
		return
	}
	// Wait for data before calling ReadFrom: the runtime takes a pipe pair
	// from its pool for every splice call and holds it while the call
	// waits, so an idle connection would pin 4 fds. A short burst (a
	// request, a reply) is spliced with a limit of what is queued, so the
	// call returns and gives the pipe back; bulk data keeps 1 MiB calls.
	queued := 0
	ready := func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false
		case err != nil || n == 0:
			queued = 0 // EOF or an error: ReadFrom reports it
			return true
		}
		queued, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			queued = 0
		}
		return true
	}
	lr := &io.LimitedReader{R: src}
	for {
		if err := raw.Read(ready); err != nil {
			s.abort("closed")
			return
		}
		lr.N = copyChunk
		if queued > 0 && queued < burstMax {
			lr.N = int64(queued)
		}
		n, err := dst.ReadFrom(lr)
		if n > 0 {
			count.Add(uint64(n))
			for _, c := range s.counters {
				if fromClient {
					c.BytesIn.Add(uint64(n))
				} else {
					c.BytesOut.Add(uint64(n))
				}
			}
		}
		if err == nil && lr.N > 0 {
			// EOF from src: pass the FIN on, keep the other direction.
			if fromClient {
				s.clientFin.Store(true)
			} else {
				s.serverFin.Store(true)
			}
			s.wd.finSeen()
			dst.CloseWrite()
			return
		}
		if err == nil {
			continue
		}
		s.abort(classify(err, src, dst, fromClient))
		return
	}
}

// classify names the side that ended a direction with err. EPIPE comes
// from writing, so it is dst's side; a reset is blamed on the socket the
// kernel has closed.
func classify(err error, src, dst *net.TCPConn, fromClient bool) string {
	srcSide, dstSide := "server", "client"
	if fromClient {
		srcSide, dstSide = "client", "server"
	}
	switch {
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.Is(err, syscall.EPIPE):
		return dstSide + "_gone"
	case errors.Is(err, syscall.ECONNRESET):
		if tcpClosed(src) || !tcpClosed(dst) {
			return srcSide + "_reset"
		}
		return dstSide + "_reset"
	}
	return srcSide + "_error"
}

// tcpClosed reports whether the kernel has moved c to TCP_CLOSE (as a
// reset does).
func tcpClosed(c *net.TCPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	raw.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			closed = ti.State == 7 // TCP_CLOSE
		}
	})
	return closed
}

// logEnd writes the one log line of a connection.
func (s *session) logEnd(err error) {
	s.mu.Lock()
	term := s.term
	srvName, srvNS := "", ""
	if s.srv != nil {
		srvName = s.srv.spec.Name
	}
	if s.serverNS != nil {
		srvNS = s.serverNS.Label()
	}
	s.mu.Unlock()
	if term == "" {
		term = "normal"
	}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	if !s.e.log.Enabled(context.Background(), level) {
		return // build no arguments for a line nobody reads
	}
	args := []any{"tenant", s.fe.Tenant, "frontend", s.fe.Name, "backend", s.backend, "server", srvName,
		"client", s.src.String(), "client_netns", s.clientNS.Label(), "client_netns_source", s.nsSource,
		"server_netns", srvNS, "bytes_in", s.bytesIn.Load(), "bytes_out", s.bytesOut.Load(),
		"duration", time.Since(s.start).Round(time.Microsecond).String(), "termination", term}
	if s.proxyVer > 0 {
		args = append(args, "proxy_version", s.proxyVer)
	}
	if err != nil {
		args = append(args, "err", err.Error())
		s.e.log.Warn("connection", args...)
		return
	}
	s.e.log.Info("connection", args...)
}
