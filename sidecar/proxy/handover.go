package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// HandedListener is one running listener, duplicated for a successor
// process: File shares the listening socket (and its accept queue) with
// the engine's own fd. The caller closes File.
type HandedListener struct {
	Frontend string
	Bind     BindSpec
	// Netns is the identity of the namespace the socket lives in, as this
	// engine's registry knows it.
	Netns netns.Identity
	File  *os.File
}

// InheritedListener is a listening socket received from the process this
// engine replaces. The engine serves it instead of binding Bind, once the
// namespace the registry resolves for Bind.Namespace is the one the socket
// lives in.
type InheritedListener struct {
	Bind     BindSpec
	Listener *net.TCPListener
	// Frontend is the frontend the predecessor served it for ("" from a
	// predecessor that did not say): its caller keeps that frontend's
	// claim on the bind, as a reload keeps a running one's.
	Frontend string
}

// HandOver duplicates every socket that is listening now.
func (e *Engine) HandOver() ([]HandedListener, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []HandedListener
	for _, fe := range e.frontends {
		for bs, l := range fe.listeners {
			l.mu.Lock()
			f, h, err := l.dupFD()
			l.mu.Unlock()
			if f == nil && err == nil {
				continue // not listening
			}
			if err != nil {
				for _, x := range out {
					x.File.Close()
				}
				return nil, fmt.Errorf("frontend %s bind %s: %w", fe.name, bs.Addr, err)
			}
			out = append(out, HandedListener{Frontend: fe.name, Bind: bs, Netns: h.Identity(), File: f})
		}
	}
	return out, nil
}

// dupFD duplicates the listening socket (l.mu held; nil when there is
// none): the listener closes its own fd only after taking l.mu.
func (l *listener) dupFD() (*os.File, *netns.Handle, error) {
	if l.fd < 0 || l.h == nil {
		return nil, nil, nil
	}
	nfd, err := unix.FcntlInt(uintptr(l.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("dup listener: %w", err)
	}
	return os.NewFile(uintptr(nfd), "handed-listener"), l.h, nil
}

// StopAccepting closes every listener (the sockets live on in the
// successor that holds duplicates; nothing is unlinked) and refuses later
// Applies. Established connections go on; Shutdown drains them.
func (e *Engine) StopAccepting() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.handedOver = true
	for _, fe := range e.frontends {
		for _, l := range fe.listeners {
			l.stop()
		}
	}
}

// Inherit gives the engine listening sockets to serve instead of binding.
// Call it before the first Apply; Apply closes those no bind wants.
func (e *Engine) Inherit(ls []InheritedListener) {
	e.inheritMu.Lock()
	defer e.inheritMu.Unlock()
	if e.inherited == nil {
		e.inherited = map[BindSpec][]*net.TCPListener{}
	}
	for _, x := range ls {
		e.inherited[x.Bind] = append(e.inherited[x.Bind], x.Listener)
	}
}

// takeInherited returns the inherited socket for bs when there is one and
// it lives in h's namespace. A socket of another namespace (the name now
// means a recreated namespace) is closed and never served.
func (e *Engine) takeInherited(bs BindSpec, h *netns.Handle) *net.TCPListener {
	e.inheritMu.Lock()
	defer e.inheritMu.Unlock()
	for len(e.inherited[bs]) > 0 {
		ln := e.inherited[bs][0]
		e.inherited[bs] = e.inherited[bs][1:]
		if len(e.inherited[bs]) == 0 {
			delete(e.inherited, bs)
		}
		raw, err := ln.SyscallConn()
		if err == nil {
			raw.Control(func(fd uintptr) { err = h.CheckSocket(int(fd)) })
		}
		if err != nil {
			e.log.Warn("inherited listener not reused", "bind", bs.Addr.String(), "netns", nsLabel(bs.Namespace), "err", err.Error())
			ln.Close()
			continue
		}
		e.log.Info("listener taken over", "bind", bs.Addr.String(), "netns", h.Label())
		return ln
	}
	return nil
}

// dropUnwantedInherited closes inherited sockets that want refuses.
func (e *Engine) dropUnwantedInherited(want func(BindSpec) bool) {
	e.inheritMu.Lock()
	defer e.inheritMu.Unlock()
	for bs, lns := range e.inherited {
		if want(bs) {
			continue
		}
		for _, ln := range lns {
			e.log.Info("inherited listener closed: no bind wants it", "bind", bs.Addr.String(), "netns", nsLabel(bs.Namespace))
			ln.Close()
		}
		delete(e.inherited, bs)
	}
}

// WaitInherited waits until every inherited socket is served or ctx ends,
// then closes the rest (their namespace never showed up) and returns how
// many that were.
func (e *Engine) WaitInherited(ctx context.Context) int {
	for {
		e.inheritMu.Lock()
		n := len(e.inherited)
		e.inheritMu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			e.dropUnwantedInherited(func(BindSpec) bool { return false })
			return n
		case <-time.After(10 * time.Millisecond):
		}
	}
}
