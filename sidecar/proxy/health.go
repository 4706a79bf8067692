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
	if !checkable(spec) {
		why := "the server's address or port comes from each client"
		if spec.ClientNamespace {
			// There is no client, so no namespace to check in. HAProxy checks
			// in the default namespace and reports a server reachable only
			// inside client namespaces as down; we do not check at all.
			why = "a 'namespace *' server has no namespace until a client connects"
		}
		e.log.Warn("health check skipped: "+why, "backend", s.backend, "server", spec.Name)
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
	inter := checkInter(spec)
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
	cctx, cancel := context.WithTimeout(ctx, checkConnectTimeout(bs, checkInter(s.spec)))
	defer cancel()
	c, err := h.Dial(cctx, addr, checkDialOptions(bs))
	if err != nil {
		return err
	}
	c.SetLinger(0) // a check leaves no TIME_WAIT behind
	return c.Close()
}

// checkInter is the interval between a server's checks.
func checkInter(spec ServerSpec) time.Duration {
	if spec.Inter <= 0 {
		return 2 * time.Second
	}
	return spec.Inter
}

// checkConnectTimeout bounds a check's connect, as HAProxy does: inter,
// and with timeout check set min(timeout connect, inter), timeout check
// being then a read timeout for the check's reply (so that a long timeout
// connect, made for queues, does not slow checks down). A TCP check ends
// once connected and reads nothing, so timeout check bounds no phase of
// its own: it only switches the connect bound to min(connect, inter).
func checkConnectTimeout(bs *BackendSpec, inter time.Duration) time.Duration {
	if bs == nil || bs.CheckTimeout <= 0 {
		return inter
	}
	connect := bs.ConnectTimeout
	if connect <= 0 {
		connect = DefaultConnectTimeout
	}
	return min(connect, inter)
}

// checkDialOptions: a check connects from the backend's source address, as
// its traffic does. usesrc clientip has no client to take an address
// from (its source is 0.0.0.0), so such a backend's checks bind nothing,
// and never transparently.
func checkDialOptions(bs *BackendSpec) netns.DialOptions {
	if bs != nil && bs.Source.IsValid() && !bs.Source.IsUnspecified() {
		return netns.DialOptions{Source: netip.AddrPortFrom(bs.Source, 0)}
	}
	return netns.DialOptions{}
}

func nsLabel(name string) string {
	if name == "" {
		return "default"
	}
	return name
}
