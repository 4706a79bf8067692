package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/nsproxy/nsproxy/sidecar/netns"
)

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
		if reason := refusalReason(err); reason != "" {
			srv.active.Add(-1)
			s.e.frontendRefusal(s.fe.Name, reason)
			s.setTerm(reason)
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
	if srv.spec.ClientNamespace {
		if err := s.clientNamespaceAllowed(h); err != nil {
			return nil, nil, err
		}
	} else {
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
