package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// attempt is the connection attempt in progress: where it goes and how.
type attempt struct {
	srv        *server
	h          *netns.Handle // the namespace the socket was created in
	dst        netip.AddrPort
	fromClient bool // the destination came from the client
}

// maxAttempts: a connection tries at most three servers.
const maxAttempts = 3

// prepareConnect finds the backend; the attempts come next.
func (s *session) prepareConnect() error {
	b := s.e.backend(s.fe.Backend)
	if b == nil {
		s.setTerm("no_backend")
		return errors.New("backend " + s.fe.Backend + " does not exist")
	}
	s.mu.Lock()
	s.b = b
	s.mu.Unlock()
	s.bs = b.spec.Load()
	return nil
}

// errOffLoop: the attempt's socket is to be made in another namespace,
// which a loop's thread never enters; a connector goes on with it.
var errOffLoop = errors.New("nsproxy: the server's socket is made by a connector")

// nextAttempt picks servers until a connect starts (non-blocking: the
// loop learns how it ends) and returns its socket, or the error that ends
// the session (its termination set). Each attempt goes to a different
// server. On a loop (onLoop), a server whose socket is made in another
// namespace stops it with errOffLoop, the attempt chosen and kept in s.at
// (s.deferred): the loop hands the connection to a connector, whose
// nextAttempt(false) starts that attempt first. An error wrapping
// netns.ErrThreadStuck means the caller's thread (a connector's) is stuck
// in a foreign namespace: the caller's goroutine must end.
func (s *session) nextAttempt(onLoop bool) (int, error) {
	nsOK := s.e.namespacePresent
	for {
		var at attempt
		var err error
		if s.deferred {
			s.deferred = false
			at = s.at
		} else {
			if s.attempts >= maxAttempts {
				break
			}
			srv := s.b.pick(s.src.Addr(), s.tried[:s.attempts], nsOK)
			if srv == nil {
				break
			}
			s.tried[s.attempts] = srv
			s.attempts++
			srv.active.Add(1)
			at, err = s.resolve(srv)
			if err == nil && onLoop && !at.h.IsDefault() {
				// A socket made ahead in the server's namespace, if any,
				// unless the loop guard must ask that namespace's kernel.
				var asks bool
				if err = s.guard(at, &asks); err == nil && !asks {
					if fd := s.e.pools.take(at.h, dstFamily(at.dst)); fd >= 0 {
						if err = netns.ConnectSocket(fd, at.dst, s.dialOptions()); err == nil {
							return s.started(fd, at)
						}
						unix.Close(fd)
					}
				}
			}
			if err == nil && onLoop && !at.h.IsDefault() {
				s.mu.Lock()
				s.at = at
				s.mu.Unlock()
				s.deferred = true
				s.e.watchNS(at.h)
				if at.h.Context().Err() != nil {
					s.abort("server_netns_gone")
				}
				return -1, errOffLoop
			}
		}
		fd := -1
		if err == nil {
			fd, err = s.dial(at)
		}
		if reason := refusalReason(err); reason != "" { // loop, tenant
			at.srv.active.Add(-1)
			s.front.refusals.inc(reason)
			s.setTerm(reason)
			return -1, err
		}
		if err != nil {
			s.attemptFailed(at, err)
			if errors.Is(err, netns.ErrThreadStuck) {
				// This thread must make no other socket: it dies with
				// its goroutine.
				s.setTerm("connect_failed")
				return -1, s.lastErr
			}
			continue
		}
		return s.started(fd, at)
	}
	if s.lastErr == nil {
		s.setTerm("no_server")
		return -1, errors.New("no server available in backend " + s.b.name)
	}
	s.setTerm("connect_failed")
	return -1, s.lastErr
}

// attemptFailed counts a failed attempt and adds it to the session's
// connectError (made at the first failure: a connection whose first
// attempt succeeds allocates nothing for it).
func (s *session) attemptFailed(at attempt, err error) {
	srv := at.srv
	srv.active.Add(-1)
	srv.stats.ConnectErrors.Add(1)
	s.b.stats.ConnectErrors.Add(1)
	ns := s.attemptNetns(at)
	ce, _ := s.lastErr.(*connectError)
	if ce == nil {
		ce = new(connectError)
		s.lastErr = ce
	}
	ce.add(attemptError{server: srv.spec.Name, netns: ns, err: err})
	s.e.log.Debug("connect failed", "backend", s.b.name, "server", srv.spec.Name, "server_netns", ns, "err", err)
}

// attemptNetns names the namespace of an attempt's socket, also when it
// failed before the namespace was found (at.h nil).
func (s *session) attemptNetns(at attempt) string {
	switch {
	case at.h != nil:
		return at.h.Label()
	case at.srv.spec.ClientNamespace:
		return s.clientNS.Label()
	}
	return nsLabel(at.srv.spec.Namespace)
}

// attemptError is one failed connection attempt.
type attemptError struct {
	server, netns string
	err           error
}

// connectError is why a connection got no server: its failed attempts in
// order, "s1@ns1: connection refused; s2@ns2: i/o timeout". The
// connection's log line names the last one's server and namespace.
type connectError struct {
	attempts [maxAttempts]attemptError
	n        int
}

func (e *connectError) add(a attemptError) {
	if e.n < len(e.attempts) {
		e.attempts[e.n] = a
		e.n++
		return
	}
	e.attempts[len(e.attempts)-1] = a // cannot happen: one failure per attempt
}

// last is the last attempt that failed.
func (e *connectError) last() attemptError { return e.attempts[max(e.n-1, 0)] }

func (e *connectError) Error() string {
	var b strings.Builder
	for i, a := range e.attempts[:e.n] {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(a.server)
		b.WriteByte('@')
		b.WriteString(a.netns)
		b.WriteString(": ")
		if a.err != nil {
			b.WriteString(a.err.Error())
		}
	}
	return b.String()
}

// Unwrap gives the attempts' errors, for errors.Is and errors.As.
func (e *connectError) Unwrap() []error {
	out := make([]error, 0, e.n)
	for _, a := range e.attempts[:e.n] {
		out = append(out, a.err)
	}
	return out
}

// connected makes the attempt in progress the session's server.
func (s *session) connected() {
	srv := s.at.srv
	srv.stats.Current.Add(1)
	srv.stats.Total.Add(1)
	s.b.stats.Total.Add(1)
	s.mu.Lock()
	s.srv, s.serverNS = srv, s.at.h
	s.mu.Unlock()
	s.counters[1] = &srv.stats
	for i, label := range s.netnsLabels() {
		s.counters[2+i] = s.e.ns.acquire(label)
	}
}

// connectTimeout bounds one attempt.
func (s *session) connectTimeout() time.Duration {
	if s.bs.ConnectTimeout > 0 {
		return s.bs.ConnectTimeout
	}
	return DefaultConnectTimeout
}

// resolve finds where an attempt on srv goes: the namespace its socket is
// made in (the client's for "namespace *"), checked against the tenant's
// allowlist, and the destination. The attempt carries srv even on error.
func (s *session) resolve(srv *server) (attempt, error) {
	at := attempt{srv: srv}
	h := s.clientNS
	if srv.spec.ClientNamespace {
		if err := s.clientNamespaceAllowed(h); err != nil {
			return at, err
		}
	} else {
		var err error
		if h, err = s.e.reg.Get(srv.spec.Namespace); err != nil {
			return at, err
		}
		if err := s.serverNamespaceAllowed(h); err != nil {
			return at, err
		}
	}
	dst, err := s.destination(srv.spec)
	if err != nil {
		return at, err
	}
	at.h, at.dst = h, dst
	// A destination from the client may be one of our own listeners.
	at.fromClient = !srv.spec.Addr.IsValid() || srv.spec.Addr.IsUnspecified() || srv.spec.PortMode != PortFixed
	return at, nil
}

// dial creates the attempt's socket inside its namespace and starts
// connecting it. Only in the daemon's own namespace may it run on a loop:
// no setns then, and the loop guard's question to the kernel (is the
// address local?) is one netlink request made right here.
func (s *session) dial(at attempt) (int, error) {
	if err := s.guard(at, nil); err != nil {
		return -1, err
	}
	return at.h.StartConnect(at.dst, s.dialOptions())
}

// started records the attempt in progress. It ends with the session if
// its namespace goes (Engine.nsGone finds it by s.at).
func (s *session) started(fd int, at attempt) (int, error) {
	s.mu.Lock()
	s.at = at
	s.mu.Unlock()
	s.e.watchNS(at.h)
	if at.h.Context().Err() != nil {
		s.abort("server_netns_gone")
	}
	return fd, nil
}

// guard refuses a destination from the client that is one of our own
// listeners (the loop guard). With asks set, it does not ask the kernel
// whether an address is local to the namespace (a netlink request made
// there, which a loop must not) but reports through asks that it would.
func (s *session) guard(at attempt, asks *bool) error {
	if !at.fromClient {
		return nil
	}
	isLocal := func(a netip.Addr) bool { return localInNamespace(at.h, a) }
	if asks != nil {
		isLocal = func(netip.Addr) bool { *asks = true; return false }
	}
	if s.e.own.isOwn(at.h, at.dst, isLocal) {
		return fmt.Errorf("%w: %s in namespace %s", ErrLoop, at.dst, at.h.Label())
	}
	return nil
}

// dialOptions: the source address the backend asks for.
func (s *session) dialOptions() netns.DialOptions {
	switch {
	case s.bs.UseSrcClientIP:
		return netns.DialOptions{Source: netip.AddrPortFrom(s.src.Addr(), 0), Transparent: true}
	case s.bs.Source.IsValid() && !s.bs.Source.IsUnspecified():
		return netns.DialOptions{Source: netip.AddrPortFrom(s.bs.Source, 0)}
	}
	return netns.DialOptions{}
}

// dstFamily is the socket family for dst.
func dstFamily(dst netip.AddrPort) int {
	if dst.Addr().Unmap().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
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
