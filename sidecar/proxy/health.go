package proxy

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// checker runs active TCP health checks for one server, inside the
// server's namespace, and flips server.up after Rise successes or Fall
// failures in a row. A server starts up and needs Fall failures in a row to
// go down (HAProxy's default init-state goes down at the first failure).
type checker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *checker) stop() {
	c.cancel()
	<-c.done
}

// checkable reports whether a checker runs for spec while it is enabled:
// only then can a DOWN verdict change (backend.update keeps it only then).
func checkable(spec ServerSpec) bool {
	return spec.Check && !spec.ClientNamespace && spec.Addr.IsValid() && !spec.Addr.IsUnspecified() &&
		spec.PortMode == PortFixed
}

func (e *Engine) startCheck(s *server) {
	spec := s.spec
	if !spec.Check || spec.Disabled {
		return
	}
	if spec.ClientNamespace {
		// There is no client, so no namespace to check in. HAProxy checks in
		// the default namespace and reports a server reachable only inside
		// client namespaces as down; we do not check at all.
		e.log.Warn("health check skipped: a 'namespace *' server has no namespace until a client connects",
			"backend", s.backend, "server", spec.Name)
		return
	}
	if !spec.Addr.IsValid() || spec.Addr.IsUnspecified() || spec.PortMode != PortFixed {
		e.log.Warn("health check skipped: the server's address or port comes from each client",
			"backend", s.backend, "server", spec.Name)
		return
	}
	ctx, cancel := context.WithCancel(e.ctx)
	c := &checker{cancel: cancel, done: make(chan struct{})}
	s.checker = c
	go func() {
		defer close(c.done)
		e.runCheck(ctx, s)
	}()
}

func (e *Engine) runCheck(ctx context.Context, s *server) {
	spec := s.spec
	addr := netip.AddrPortFrom(spec.Addr, spec.Port)
	inter := spec.Inter
	if inter <= 0 {
		inter = 2 * time.Second
	}
	rise, fall := max(spec.Rise, 1), max(spec.Fall, 1)
	okRun, failRun := 0, 0
	// Spread the first checks so that many servers do not fire together.
	t := time.NewTimer(time.Duration(rand.Int64N(int64(inter)/4 + 1)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := e.checkOnce(ctx, s, addr)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
			if !s.up.Load() && okRun >= rise {
				s.up.Store(true)
				e.log.Info("server up", "backend", s.backend, "server", spec.Name,
					"server_netns", nsLabel(spec.Namespace), "check", "tcp connect ok")
			}
		} else {
			okRun, failRun = 0, failRun+1
			if s.up.Load() && failRun >= fall {
				s.up.Store(false)
				e.log.Warn("server down", "backend", s.backend, "server", spec.Name,
					"server_netns", nsLabel(spec.Namespace), "err", err.Error())
			}
		}
		t.Reset(inter)
	}
}

func (e *Engine) checkOnce(ctx context.Context, s *server, addr netip.AddrPort) error {
	h, err := e.reg.Get(s.spec.Namespace)
	if err != nil {
		return err
	}
	bs := e.backendSpec(s.backend)
	timeout := s.spec.Inter
	if bs != nil {
		switch {
		case bs.CheckTimeout > 0:
			timeout = bs.CheckTimeout
		case bs.ConnectTimeout > 0:
			timeout = min(bs.ConnectTimeout, timeout)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := h.Dial(cctx, addr, netns.DialOptions{})
	if err != nil {
		return err
	}
	c.SetLinger(0) // a check leaves no TIME_WAIT behind
	return c.Close()
}

func nsLabel(name string) string {
	if name == "" {
		return "default"
	}
	return name
}
