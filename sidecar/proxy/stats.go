package proxy

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Snapshot is a consistent-enough copy of every counter, taken at scrape
// or query time; nothing on the hot path builds it.
type Snapshot struct {
	Frontends  []FrontendStats
	Backends   []BackendStats
	Namespaces []NamespaceStats
	// RemovedNamespaces are the totals of namespaces that are gone: a
	// namespace's counters leave Namespaces once it has left the registry
	// and its last connection has ended.
	RemovedNamespaces RemovedNamespaces
	Connections       int
	// PooledSockets are sockets made ahead in other namespaces
	// (sockpool.go), refills asked for and not yet made included.
	PooledSockets int
}

// FrontendStats are one frontend's counters and listeners.
type FrontendStats struct {
	Name, Tenant string
	Backend      string
	Current      int64
	Total        uint64
	BytesIn      uint64 // client to server
	BytesOut     uint64 // server to client
	// Refusals counts refused connections by reason: PROXY header errors
	// (no_header, timeout, malformed, too_large), NETNS TLV rejections
	// (bad_namespace, multiple_namespaces, netns_not_allowed,
	// netns_unavailable), untrusted_source, loop (a destination that is
	// one of our own listeners, or a header carrying our own hop); and
	// netns_tlv_ignored on lenient frontends.
	Refusals map[string]uint64
	// AcceptErrors counts failed accepts (EMFILE and the like); the
	// connection stays in the backlog and the listener backs off.
	AcceptErrors uint64
	Listeners    []ListenerState
}

// BackendStats are one backend's counters with its servers.
type BackendStats struct {
	Name          string
	Total         uint64
	ConnectErrors uint64
	Servers       []ServerStats
}

// ServerStats are one server's counters and health.
type ServerStats struct {
	Name      string
	Addr      string
	Namespace string // "*" for the client's namespace, "" default
	// Up: the balancer would send a new connection to the server now
	// (backend.pick's rule: not disabled, weight above 0, its namespace in
	// the registry, and its health checks passing or not run).
	Up bool
	// DownReason says why it would not, "" when Up: DownDisabled,
	// DownWeightZero, DownNoNamespace or DownCheck.
	DownReason    string
	Checked       bool // health checks run for it
	Active        int64
	Total         uint64
	BytesIn       uint64
	BytesOut      uint64
	ConnectErrors uint64
}

// NamespaceStats count connections by the namespaces they used: a
// connection counts once for its client namespace and once for its server
// namespace when they differ.
type NamespaceStats struct {
	Name     string // "default" for the daemon's own
	Current  int64
	Total    uint64
	BytesIn  uint64
	BytesOut uint64
}

// nsCounters holds the per-namespace counters by label, and the totals of
// the namespaces that are gone. A namespace's entry goes with the
// namespace (prune), so that container churn does not grow the map or the
// metrics without bound.
//
// Current rises only under mu (acquire), and a connection counts its last
// byte before it lowers Current: so an entry prune sees at Current 0
// under mu has no connection that could still add to it, and folding it
// loses nothing.
type nsCounters struct {
	mu      sync.Mutex
	m       map[string]*Counters
	removed RemovedNamespaces
	gone    map[string]bool // labels said to be gone (forget) whose counters were still in use
}

// RemovedNamespaces are the folded totals of namespaces that are gone.
type RemovedNamespaces struct {
	Namespaces uint64 // how many were folded
	Total      uint64
	BytesIn    uint64
	BytesOut   uint64
}

// acquire counts a new connection in label's namespace and returns the
// counters it feeds; the connection lowers Current when it ends, after it
// counted its last byte.
func (n *nsCounters) acquire(label string) *Counters {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.m[label]
	if c == nil {
		if n.m == nil {
			n.m = map[string]*Counters{}
		}
		c = new(Counters)
		n.m[label] = c
	}
	c.Current.Add(1)
	c.Total.Add(1)
	return c
}

// prune folds into the removed totals every namespace that no connection
// uses any more and that live no longer names.
func (n *nsCounters) prune(live func(label string) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for label := range n.m {
		n.foldLocked(label, live)
	}
}

// forget is prune for the labels of namespaces that just left and those
// that left earlier while a connection still used them, at their cost, not
// the cost of every namespace with counters (ApplyDelta).
func (n *nsCounters) forget(labels []string, live func(label string) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, label := range labels {
		if n.gone == nil {
			n.gone = map[string]bool{}
		}
		n.gone[label] = true
	}
	for label := range n.gone {
		if n.foldLocked(label, live) || n.m[label] == nil || live(label) {
			delete(n.gone, label)
		}
	}
}

// foldLocked folds label's counters into the removed totals when no
// connection uses them and live no longer names it, and says whether it did.
func (n *nsCounters) foldLocked(label string, live func(label string) bool) bool {
	c := n.m[label]
	if c == nil || c.Current.Load() != 0 || live(label) {
		return false
	}
	n.removed.Namespaces++
	n.removed.Total += c.Total.Load()
	n.removed.BytesIn += c.BytesIn.Load()
	n.removed.BytesOut += c.BytesOut.Load()
	delete(n.m, label)
	return true
}

// snapshot prunes, then copies what is left and the removed totals.
func (n *nsCounters) snapshot(live func(label string) bool) ([]NamespaceStats, RemovedNamespaces) {
	n.prune(live)
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]NamespaceStats, 0, len(n.m))
	for label, c := range n.m {
		out = append(out, NamespaceStats{Name: label, Current: c.Current.Load(),
			Total: c.Total.Load(), BytesIn: c.BytesIn.Load(), BytesOut: c.BytesOut.Load()})
	}
	return out, n.removed
}

// liveNamespace reports whether a namespace label still stands for a
// namespace: the daemon's own, or a name the registry holds.
func (e *Engine) liveNamespace(label string) bool {
	return label == "default" || e.reg.Known(label)
}

// namespacePresent reports whether a server's namespace can be dialled
// into now: the balancer's test (session.nextAttempt).
func (e *Engine) namespacePresent(name string) bool {
	_, err := e.reg.Get(name)
	return err == nil
}

// Snapshot copies every counter.
func (e *Engine) Snapshot() Snapshot {
	var s Snapshot
	e.mu.Lock()
	for _, fe := range e.frontends {
		spec := fe.spec.Load()
		fs := FrontendStats{Name: fe.name, Tenant: spec.Tenant, Backend: spec.Backend,
			Current: fe.stats.Current.Load(), Total: fe.stats.Total.Load(),
			BytesIn: fe.stats.BytesIn.Load(), BytesOut: fe.stats.BytesOut.Load(),
			Refusals: fe.refusals.snapshot(), AcceptErrors: fe.acceptErrors.Load()}
		for _, l := range fe.listeners {
			fs.Listeners = append(fs.Listeners, l.state())
		}
		slices.SortFunc(fs.Listeners, func(a, b ListenerState) int {
			return strings.Compare(a.Bind.Addr.String()+a.Bind.Namespace, b.Bind.Addr.String()+b.Bind.Namespace)
		})
		s.Frontends = append(s.Frontends, fs)
	}
	e.mu.Unlock()
	nsOK := e.namespacePresent
	e.backends.each(func(b *backend) {
		bs := BackendStats{Name: b.name, Total: b.stats.Total.Load(), ConnectErrors: b.stats.ConnectErrors.Load()}
		for _, sv := range b.snapshot() {
			ns := sv.spec.Namespace
			if sv.spec.ClientNamespace {
				ns = "*"
			}
			down := sv.downReason(nsOK)
			bs.Servers = append(bs.Servers, ServerStats{Name: sv.spec.Name, Addr: serverAddrString(sv.spec),
				Namespace: ns, Up: down == "", DownReason: down, Checked: sv.checker != nil, Active: sv.active.Load(),
				Total: sv.stats.Total.Load(), BytesIn: sv.stats.BytesIn.Load(), BytesOut: sv.stats.BytesOut.Load(),
				ConnectErrors: sv.stats.ConnectErrors.Load()})
		}
		s.Backends = append(s.Backends, bs)
	})

	s.Namespaces, s.RemovedNamespaces = e.ns.snapshot(e.liveNamespace)
	slices.SortFunc(s.Frontends, func(a, b FrontendStats) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Backends, func(a, b BackendStats) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Namespaces, func(a, b NamespaceStats) int { return strings.Compare(a.Name, b.Name) })
	s.Connections = e.Sessions()
	s.PooledSockets = int(e.pools.pooled.Load())
	return s
}

func serverAddrString(sp ServerSpec) string {
	host := "*"
	if sp.Addr.IsValid() && !sp.Addr.IsUnspecified() {
		host = sp.Addr.String()
		if sp.Addr.Is6() {
			host = "[" + host + "]"
		}
	}
	switch sp.PortMode {
	case PortFromClient:
		return host
	case PortOffset:
		if sp.PortOffset >= 0 {
			return host + ":+" + itoa(sp.PortOffset)
		}
		return host + ":" + itoa(sp.PortOffset)
	}
	return host + ":" + itoa(int(sp.Port))
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// ConnectionInfo describes one live connection.
type ConnectionInfo struct {
	ID                        uint64
	Frontend, Backend, Server string
	Client                    string
	ClientNetns, ServerNetns  string
	Start                     time.Time
	BytesIn, BytesOut         uint64
}

// Connections lists the live connections.
func (e *Engine) Connections() []ConnectionInfo {
	e.sessMu.Lock()
	ss := make([]*session, 0, len(e.sessions))
	for s := range e.sessions {
		ss = append(ss, s)
	}
	e.sessMu.Unlock()
	out := make([]ConnectionInfo, 0, len(ss))
	for _, s := range ss {
		s.mu.Lock()
		ci := ConnectionInfo{ID: s.id, Frontend: s.fe.Name, Backend: s.backendName(), Client: s.src.String(),
			ClientNetns: s.clientNS.Label(), Start: s.start, BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load()}
		if s.srv != nil {
			ci.Server = s.srv.spec.Name
		}
		if s.serverNS != nil {
			ci.ServerNetns = s.serverNS.Label()
		}
		s.mu.Unlock()
		out = append(out, ci)
	}
	slices.SortFunc(out, func(a, b ConnectionInfo) int { return int(a.ID) - int(b.ID) })
	return out
}
