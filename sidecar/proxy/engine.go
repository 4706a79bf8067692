package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// ErrStopped is returned by Apply after Shutdown.
var ErrStopped = errors.New("nsproxy: engine stopped")

// Engine runs frontends and backends. Apply may be called any number of
// times; Shutdown once.
type Engine struct {
	reg *netns.Registry
	log *slog.Logger

	ctx    context.Context // parent of every listener and check
	cancel context.CancelFunc

	mu        sync.Mutex // serialises Apply and Shutdown
	stopped   bool
	frontends map[string]*frontend
	backends  backendSet // read lock-free per connection
	global    *limiter
	tenants   map[string]*limiter // per-tenant maxconn (Spec.TenantMaxConn), of the frontends' tenants
	proxyMax  atomic.Int64        // Spec.ProxyHeaderMaxSize
	ns        nsCounters          // per-namespace counters, by label
	own       ownListeners        // our listening sockets, for the loop guard
	hop       []byte              // our v2 headers' loop marker (NOOP TLV value)
	// nofile is RLIMIT_NOFILE: maxconn is kept below what it allows.
	nofile  uint64
	lastMax int // the effective global maxconn last applied
	// specMaxConn is the last Spec.MaxConn applied; binds counts the
	// binds of the frontends (for fitMaxConn, also after ApplyDelta).
	specMaxConn, binds int
	frontendsPeak      int        // most frontends since the map was made (shrunk)
	pipes              pipeBudget // splice pipes of every loop, capped by fitMaxConn

	handedOver bool // StopAccepting: a successor serves the listeners

	inheritMu sync.Mutex
	inherited map[BindSpec][]*net.TCPListener // from the process this one replaces

	// loops are the event loops that own established connections,
	// started by the first Apply (Spec.NbThread of that Apply).
	loops []*evloop

	sessMu   sync.Mutex
	sessions map[*session]struct{}
	sessWG   sync.WaitGroup
	// connectorWG: the connectors and the pool trimmer (hdrloop.go), which
	// Shutdown waits for.
	connectorWG sync.WaitGroup
	connectQ    chan *pconn // connect attempts for the connectors (hdrloop.go)
	pools       sockPools   // sockets made ahead in other namespaces (sockpool.go)
	// connectorAttempts counts the attempts a loop gave a connector (a
	// server's socket in another namespace).
	connectorAttempts atomic.Uint64
	// nsWatched: the namespaces (*netns.Handle) whose end aborts the
	// sessions using them (watchNS).
	nsWatched sync.Map
	nextID    atomic.Uint64

	// nsListeners: the listeners whose socket is in a loop, by namespace,
	// for that namespace's end (nsGone) to close them: no goroutine per
	// listening socket waits for it.
	lisMu       sync.Mutex
	nsListeners map[*netns.Handle]*listenerSet
}

// listenerSet is the listeners serving in one namespace; its map is made
// anew when it falls to a quarter of its peak (shrunk).
type listenerSet struct {
	m    map[*listener]struct{}
	peak int
}

// watchListener has h's end close l's socket (nsGone).
func (e *Engine) watchListener(h *netns.Handle, l *listener) {
	e.lisMu.Lock()
	if e.nsListeners == nil {
		e.nsListeners = map[*netns.Handle]*listenerSet{}
	}
	set := e.nsListeners[h]
	if set == nil {
		set = &listenerSet{m: map[*listener]struct{}{}}
		e.nsListeners[h] = set
	}
	set.m[l] = struct{}{}
	set.peak = max(set.peak, len(set.m))
	e.lisMu.Unlock()
	e.watchNS(h)
}

// unwatchListener forgets l, whose socket in h is closed.
func (e *Engine) unwatchListener(h *netns.Handle, l *listener) {
	e.lisMu.Lock()
	defer e.lisMu.Unlock()
	set := e.nsListeners[h]
	if set == nil {
		return
	}
	delete(set.m, l)
	switch {
	case len(set.m) == 0:
		delete(e.nsListeners, h)
	case shrunk(len(set.m), &set.peak):
		set.m = resized(set.m)
	}
}

// listenersIn takes the set of the listeners serving in h, which has ended.
func (e *Engine) listenersIn(h *netns.Handle) []*listener {
	e.lisMu.Lock()
	defer e.lisMu.Unlock()
	set := e.nsListeners[h]
	if set == nil {
		return nil
	}
	out := make([]*listener, 0, len(set.m))
	for l := range set.m {
		out = append(out, l)
	}
	return out
}

// New returns an engine that resolves namespaces through reg.
func New(reg *netns.Registry, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{reg: reg, log: log, ctx: ctx, cancel: cancel,
		frontends: map[string]*frontend{}, global: newLimiter(0), sessions: map[*session]struct{}{},
		hop: newHopMarker(), nofile: raiseNoFile()}
	return e
}

// frontend is a running FrontendSpec.
type frontend struct {
	name      string
	spec      atomic.Pointer[FrontendSpec]
	limit     *limiter
	tenant    atomic.Pointer[limiter] // its tenant's, shared by the tenant's frontends
	listeners map[BindSpec]*listener
	stats     Counters
	refusals  reasonCounter // PROXY header and NETNS TLV refusals by reason
	// acceptErrors counts failed accept(2) calls of its listeners.
	acceptErrors atomic.Uint64
	// limitGiven: removed, its limiter went on with the frontend that
	// kept one of its listeners (inheritedLimit); under Engine.mu.
	limitGiven bool
}

// Apply reconciles the running state with spec: listeners whose BindSpec is
// unchanged keep their sockets and connections, servers whose ServerSpec is
// unchanged keep their health; settings take effect for new connections.
// Established connections of removed frontends finish on their own.
func (e *Engine) Apply(spec Spec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped || e.handedOver {
		return ErrStopped
	}
	if e.loops == nil {
		if err := e.startLoops(spec.NbThread); err != nil {
			return fmt.Errorf("start event loops: %w", err)
		}
	} else if spec.NbThread > 0 && spec.NbThread != len(e.loops) {
		e.log.Warn("nbthread changes take effect at the next start", "running", len(e.loops), "wanted", spec.NbThread)
	}
	e.specMaxConn, e.binds = spec.MaxConn, 0
	for _, fs := range spec.Frontends {
		e.binds += len(fs.Binds)
	}
	e.global.setLimit(e.fitMaxConn(spec.MaxConn, e.binds))
	e.proxyMax.Store(int64(spec.ProxyHeaderMaxSize))

	wanted := make(map[string]bool, len(spec.Backends))
	for _, bs := range spec.Backends {
		e.backends.set(e.updateBackend(e.backends.get(bs.Name), bs))
		wanted[bs.Name] = true
	}
	e.backends.each(func(b *backend) {
		if !wanted[b.name] {
			b.stop()
			e.backends.remove(b.name)
		}
	})

	// Stop what goes before starting what comes, so that a bind that
	// changes options finds its address free. A bind line kept under
	// another frontend (renamed, or the line moved) keeps its listener,
	// handed to that frontend (moving): closed and bound again, it would
	// refuse connections until the new socket is in a loop.
	// A frontend has a bind or two: a slice, not a map per frontend.
	want := make(map[string][]BindSpec, len(spec.Frontends))
	for _, fs := range spec.Frontends {
		want[fs.Name] = fs.Binds
	}
	owners := bindOwners(spec.Frontends)
	var moving map[BindSpec]*listener
	for name, fe := range e.frontends {
		binds, wanted := want[name]
		for bs, l := range fe.listeners {
			if slices.Contains(binds, bs) {
				continue
			}
			moving = keepOrStop(moving, owners, name, bs, l)
			delete(fe.listeners, bs)
		}
		if !wanted {
			delete(e.frontends, name)
		}
	}
	tenants := e.tenantLimiters(spec)
	for _, fs := range spec.Frontends {
		e.startFrontend(fs, tenants[fs.Tenant], moving)
	}
	for _, l := range moving { // a bind two frontends name: the validator refuses it
		l.stop()
	}
	e.ns.prune(e.liveNamespace) // namespaces removed since the last Apply
	e.dropUnwantedInherited(func(bs BindSpec) bool {
		for _, fs := range spec.Frontends {
			if slices.Contains(fs.Binds, bs) {
				return true
			}
		}
		return false
	})
	return nil
}

// updateBackend is b (nil: a new one) running bs: unchanged, it is kept as
// it is; else its servers are updated, those whose spec is unchanged
// keeping their health.
func (e *Engine) updateBackend(b *backend, bs BackendSpec) *backend {
	if bs.Balance == "" {
		bs.Balance = RoundRobin
	}
	if b == nil {
		b = &backend{name: bs.Name}
	} else if sameBackendSpec(*b.spec.Load(), bs) {
		return b // unchanged: an Apply costs what changed
	}
	dropped, added, raised := b.update(bs)
	for _, s := range dropped {
		s.stopCheck()
	}
	for _, s := range raised {
		e.log.Info("server up", "backend", s.backend, "server", s.spec.Name,
			"server_netns", nsLabel(s.spec.Namespace), "check", "no longer checked")
	}
	for _, s := range added {
		e.startCheck(s)
	}
	return b
}

// bindOwners maps each bind line of fronts to the first frontend that has it.
func bindOwners(fronts []FrontendSpec) map[BindSpec]string {
	owners := map[BindSpec]string{}
	for _, fs := range fronts {
		for _, bs := range fs.Binds {
			if _, ok := owners[bs]; !ok {
				owners[bs] = fs.Name
			}
		}
	}
	return owners
}

// keepOrStop deals with listener l of bind bs, which frontend from no
// longer has: when another frontend has that bind line (owners), l is kept
// for it in moving (returned, made when needed), else stopped.
func keepOrStop(moving map[BindSpec]*listener, owners map[BindSpec]string, from string, bs BindSpec, l *listener) map[BindSpec]*listener {
	if to, ok := owners[bs]; ok && to != from && moving[bs] == nil {
		if moving == nil {
			moving = map[BindSpec]*listener{}
		}
		moving[bs] = l
		return moving
	}
	l.stop()
	return moving
}

// inheritedLimit is the maxconn limiter a new frontend fs takes over, with
// its count: that of the removed frontend whose listener fs keeps (a
// rename), so that the connections still open under the old name count
// against maxconn; the first frontend to keep one of its listeners gets it.
// nil: fs starts from zero.
func inheritedLimit(fs FrontendSpec, moving map[BindSpec]*listener, running map[string]*frontend) *limiter {
	for _, bs := range fs.Binds {
		l := moving[bs]
		if l == nil {
			continue
		}
		if old := l.fe.Load(); running[old.name] != old && !old.limitGiven {
			old.limitGiven = true
			return old.limit
		}
	}
	return nil
}

// startFrontend makes fs the spec of its frontend (new or running) and
// starts the listeners of its binds that are not running, or takes them
// from moving (listeners of other frontends, kept for their bind line);
// the caller has stopped those of binds fs no longer has.
func (e *Engine) startFrontend(fs FrontendSpec, tenant *limiter, moving map[BindSpec]*listener) {
	fe := e.frontends[fs.Name]
	if fe == nil {
		lim := inheritedLimit(fs, moving, e.frontends)
		if lim == nil {
			lim = newLimiter(fs.MaxConn)
		}
		fe = &frontend{name: fs.Name, limit: lim, listeners: map[BindSpec]*listener{}}
		e.frontends[fs.Name] = fe
	}
	if cur := fe.spec.Load(); cur == nil || !sameFrontendSpec(*cur, fs) {
		fe.spec.Store(&fs)
	}
	if old := fe.tenant.Swap(tenant); old != nil && old != tenant {
		// A listener paused on the old tenant's limit waits for its wake-up.
		old.wakeAll()
	}
	for _, bs := range fs.Binds {
		if fe.listeners[bs] != nil {
			continue
		}
		if l := moving[bs]; l != nil {
			delete(moving, bs)
			l.moveTo(fe)
			fe.listeners[bs] = l
			continue
		}
		fe.listeners[bs] = e.startListener(fe, bs)
	}
	// Last: a limiter taken over with its waiters wakes them, and they
	// must find their listeners moved to fe.
	fe.limit.setLimit(fs.MaxConn)
}

// Delta changes the running spec by whole frontends and backends: those
// to add (or replace, by name) and those to remove.
type Delta struct {
	Frontends       []FrontendSpec
	Backends        []BackendSpec
	RemoveFrontends []string
	RemoveBackends  []string
	// TenantMaxConn: as Spec's, read for a tenant that has no frontend yet.
	TenantMaxConn map[string]int
	// GoneNamespaces left the registry: their counters are folded into the
	// removed totals once no connection uses them (Apply prunes them all).
	GoneNamespaces []string
}

// ApplyDelta is Apply for the spec last applied changed by d, at the cost
// of d: Apply's pass over every frontend and backend made each container's
// ADD cost grow with the live containers (issue 13). Apply must have run
// once before. A tenant whose last frontend d removes keeps its limiter
// until the next Apply.
func (e *Engine) ApplyDelta(d Delta) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped || e.handedOver || e.loops == nil {
		return ErrStopped
	}
	for _, name := range d.RemoveBackends {
		if b := e.backends.get(name); b != nil {
			b.stop()
			e.backends.remove(name)
		}
	}
	for _, bs := range d.Backends {
		e.backends.set(e.updateBackend(e.backends.get(bs.Name), bs))
	}
	// As in Apply, a bind line d gives to another frontend keeps its
	// listener (moving).
	owners := bindOwners(d.Frontends)
	var moving map[BindSpec]*listener
	stop := func(fe *frontend, keep []BindSpec) {
		for bs, l := range fe.listeners {
			if slices.Contains(keep, bs) {
				continue
			}
			moving = keepOrStop(moving, owners, fe.name, bs, l)
			delete(fe.listeners, bs)
			e.binds--
		}
	}
	for _, name := range d.RemoveFrontends {
		if fe := e.frontends[name]; fe != nil {
			stop(fe, nil)
			delete(e.frontends, name)
		}
	}
	// Every bind d drops is stopped (or set moving) before any starts.
	for _, fs := range d.Frontends {
		if fe := e.frontends[fs.Name]; fe != nil {
			stop(fe, fs.Binds)
		}
	}
	for _, fs := range d.Frontends {
		before := 0
		if fe := e.frontends[fs.Name]; fe != nil {
			before = len(fe.listeners)
		}
		l := e.tenants[fs.Tenant]
		if l == nil {
			l = newLimiter(0)
			l.setLimit(d.TenantMaxConn[fs.Tenant])
			e.tenants[fs.Tenant] = l
		}
		e.startFrontend(fs, l, moving)
		e.binds += len(e.frontends[fs.Name].listeners) - before
	}
	for _, l := range moving { // a bind two frontends name: refused by the plan
		l.stop()
	}
	e.global.setLimit(e.fitMaxConn(e.specMaxConn, e.binds))
	e.ns.forget(d.GoneNamespaces, e.liveNamespace)
	e.frontendsPeak = max(e.frontendsPeak, len(e.frontends))
	if shrunk(len(e.frontends), &e.frontendsPeak) {
		e.frontends = resized(e.frontends)
	}
	if len(d.RemoveFrontends) > 0 {
		e.dropUnwantedInherited(func(bs BindSpec) bool {
			for _, fe := range e.frontends {
				if fe.listeners[bs] != nil {
					return true
				}
			}
			return false
		})
	}
	return nil
}

// shrunk reports whether a map of n entries fell to a quarter of its peak
// (at least 256), and then makes n its peak: a Go map keeps its largest
// bucket array, so the caller copies it (resized) to let the rest go
// after a node's containers left.
func shrunk(n int, peak *int) bool {
	if *peak < 256 || n > *peak/4 {
		return false
	}
	*peak = n
	return true
}

// resized is m copied into a map made for its size now (maps.Clone keeps
// the source's capacity).
func resized[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	maps.Copy(out, m)
	return out
}

// tenantLimiters gives each tenant of spec's frontends its limiter, with
// the limit spec sets, and forgets the tenants no frontend has any more
// (their connections keep the limiter they took a slot of). A tenant's
// limiter lives as long as the tenant has frontends, so its count spans
// applies, as a frontend's does.
func (e *Engine) tenantLimiters(spec Spec) map[string]*limiter {
	next := make(map[string]*limiter, len(e.tenants))
	for _, fs := range spec.Frontends {
		if next[fs.Tenant] != nil {
			continue
		}
		l := e.tenants[fs.Tenant]
		if l == nil {
			l = newLimiter(0)
		}
		l.setLimit(spec.TenantMaxConn[fs.Tenant])
		next[fs.Tenant] = l
	}
	e.tenants = next
	return next
}

// sameBackendSpec: a and b are equal, servers included.
// TestSpecCompareFields keeps it in step with BackendSpec's fields.
func sameBackendSpec(a, b BackendSpec) bool {
	return a.Name == b.Name && a.Balance == b.Balance && a.ConnectTimeout == b.ConnectTimeout &&
		a.ServerTimeout == b.ServerTimeout && a.ServerFinTimeout == b.ServerFinTimeout &&
		a.CheckTimeout == b.CheckTimeout && a.Source == b.Source && a.UseSrcClientIP == b.UseSrcClientIP &&
		slices.Equal(a.Servers, b.Servers)
}

// sameFrontendSpec: a and b are equal, binds and trusted networks included.
// TestSpecCompareFields keeps it in step with FrontendSpec's fields.
func sameFrontendSpec(a, b FrontendSpec) bool {
	return a.Name == b.Name && a.Tenant == b.Tenant && a.Backend == b.Backend && a.MaxConn == b.MaxConn &&
		a.ClientTimeout == b.ClientTimeout && a.ClientFinTimeout == b.ClientFinTimeout &&
		a.Proxy.HeaderTimeout == b.Proxy.HeaderTimeout && a.Proxy.LenientNamespace == b.Proxy.LenientNamespace &&
		slices.Equal(a.Binds, b.Binds) && slices.Equal(a.Proxy.Trusted, b.Proxy.Trusted)
}

func (e *Engine) backend(name string) *backend { return e.backends.get(name) }

// backendSet maps names to the running backends: read lock-free per
// connection, changed per name (a copy of the whole map per change made
// each container's ADD cost grow with the live containers, issue 13).
// Written with Engine.mu held.
type backendSet struct{ m sync.Map }

func (s *backendSet) get(name string) *backend {
	if v, ok := s.m.Load(name); ok {
		return v.(*backend)
	}
	return nil
}

func (s *backendSet) set(b *backend)     { s.m.Store(b.name, b) }
func (s *backendSet) remove(name string) { s.m.Delete(name) }
func (s *backendSet) each(f func(*backend)) {
	s.m.Range(func(_, v any) bool { f(v.(*backend)); return true })
}

func (e *Engine) backendSpec(name string) *BackendSpec {
	if b := e.backend(name); b != nil {
		return b.spec.Load()
	}
	return nil
}

// Shutdown stops accepting, lets established connections finish until ctx
// ends, then closes the rest. It returns the number of connections it had
// to close.
func (e *Engine) Shutdown(ctx context.Context) int {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return 0
	}
	e.stopped = true
	for _, fe := range e.frontends {
		for _, l := range fe.listeners {
			l.stop()
		}
	}
	e.backends.each(func(b *backend) { b.stop() })
	e.mu.Unlock()

	done := make(chan struct{})
	go func() { e.sessWG.Wait(); close(done) }()
	forced := 0
	select {
	case <-done:
	case <-ctx.Done():
		e.sessMu.Lock()
		for s := range e.sessions {
			s.abort("shutdown")
			forced++
		}
		e.sessMu.Unlock()
		<-done
	}
	e.stopLoops()
	e.pools.close()
	e.cancel()
	// A refill in flight closes its sockets once it sees the pools
	// closed; the queued ones are given back here.
	e.connectorWG.Wait()
	e.pools.drainRefills()
	return forced
}

// ListenerState describes one listening socket for status output and tests.
type ListenerState struct {
	Frontend  string
	Bind      BindSpec
	Listening bool
	Addr      string // the bound address while listening
	Netns     string
	Err       string // why it is not listening
	// Conflict: a NoTakeover bind found its address in use; it stays
	// down until its frontend is removed.
	Conflict bool
}

// Listeners lists every listener and whether it is up.
func (e *Engine) Listeners() []ListenerState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ListenerState
	for _, fe := range e.frontends {
		for _, l := range fe.listeners {
			out = append(out, l.state())
		}
	}
	return out
}

// ListenersOf lists the listeners of one frontend: a look-up that costs
// what one frontend has, not what the engine has.
func (e *Engine) ListenersOf(frontend string) []ListenerState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ListenerState
	if fe := e.frontends[frontend]; fe != nil {
		for _, l := range fe.listeners {
			out = append(out, l.state())
		}
	}
	return out
}

// ServerState describes one server's state for status output and tests.
type ServerState struct {
	Backend, Server string
	Up              bool // as ServerStats.Up: the balancer would use it
	Active          int64
	Total           uint64
}

// Servers lists every server with its health.
func (e *Engine) Servers() []ServerState {
	var out []ServerState
	e.backends.each(func(b *backend) {
		for _, s := range b.snapshot() {
			out = append(out, ServerState{Backend: b.name, Server: s.spec.Name, Up: s.usable(e.namespacePresent),
				Active: s.active.Load(), Total: s.stats.Total.Load()})
		}
	})
	return out
}

// Sessions is the number of connections being proxied now.
func (e *Engine) Sessions() int {
	e.sessMu.Lock()
	defer e.sessMu.Unlock()
	return len(e.sessions)
}
