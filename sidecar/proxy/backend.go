package proxy

import (
	"hash/fnv"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// backend is a running BackendSpec. Settings are swapped atomically on
// Apply; servers whose spec did not change keep their state.
type backend struct {
	name    string
	spec    atomic.Pointer[BackendSpec]
	mu      sync.Mutex // guards servers and the balancing state
	servers []*server
	next    int // leastconn: where the scan for ties starts
	stats   Counters
}

// server is a running ServerSpec with its health and counters.
type server struct {
	spec    ServerSpec
	backend string
	up      atomic.Bool // health-check verdict (true without checks)
	*serverLoad
	curW    int // smooth weighted round-robin state, under backend.mu
	checker *checker
}

// serverLoad is what a server's sessions count. A server edited in place
// (same name, address and namespace) shares it with the object it
// replaces: the sessions that object holds end on it, so its open
// connections stay counted (metrics, leastconn) and its totals go on.
type serverLoad struct {
	active atomic.Int64
	stats  Counters
}

// Counters are the per-object traffic counters.
type Counters struct {
	Current       atomic.Int64
	Total         atomic.Uint64
	BytesIn       atomic.Uint64 // client to server
	BytesOut      atomic.Uint64 // server to client
	ConnectErrors atomic.Uint64
}

func newServer(be string, s ServerSpec) *server {
	sv := &server{spec: s, backend: be, serverLoad: &serverLoad{}}
	sv.up.Store(true)
	return sv
}

// usable reports whether new connections may go to the server now
// (downReason says why not).
func (s *server) usable(nsOK func(string) bool) bool { return s.downReason(nsOK) == "" }

// Why a server takes no new connection (ServerStats.DownReason).
const (
	DownDisabled    = "disabled"     // the server line says disabled
	DownWeightZero  = "weight_zero"  // drained (weight 0)
	DownNoNamespace = "no_namespace" // its namespace is not in the registry (not created yet, or deleted)
	DownCheck       = "check_failed" // its health checks marked it down
)

// downReason is the balancer's rule (usable) with the reason it says no,
// "" when it says yes: stats report it, so that "up" means what the
// balancer does. The
// namespace is asked before the health verdict, as the checks of a server
// whose namespace is missing fail for that reason.
func (s *server) downReason(nsOK func(string) bool) string {
	switch {
	case s.spec.Disabled:
		return DownDisabled
	case s.spec.Weight <= 0:
		return DownWeightZero
	case !s.spec.ClientNamespace && !nsOK(s.spec.Namespace):
		return DownNoNamespace
	case !s.up.Load():
		return DownCheck
	}
	return ""
}

// update installs a new spec, keeping servers whose spec is unchanged.
// It returns the servers that were dropped, for the caller to stop, those
// added, for it to start checking, and those of added that were down and
// are up again because nothing checks them any more, for it to log.
func (b *backend) update(bs BackendSpec) (dropped, added, raised []*server) {
	b.spec.Store(&bs)
	b.mu.Lock()
	defer b.mu.Unlock()
	old := map[ServerSpec]*server{}
	byName := map[string]*server{}
	for _, s := range b.servers {
		old[s.spec] = s
		byName[s.spec.Name] = s
	}
	next := make([]*server, len(bs.Servers))
	for i, ss := range bs.Servers {
		if s, ok := old[ss]; ok {
			next[i] = s
			delete(old, ss)
		}
	}
	for i, ss := range bs.Servers {
		if next[i] != nil {
			continue
		}
		s := newServer(bs.Name, ss)
		// A server edited in place (weight, backup, checks...) but still at
		// the same address keeps its counters, and its verdict (a DOWN
		// server stays down) while checks still run for it: only a checker
		// raises a server again, so one no longer checked is up, as a new
		// unchecked server is; a server kept as it is keeps its own.
		if prev := byName[ss.Name]; prev != nil && old[prev.spec] == prev && prev.spec.Addr == ss.Addr &&
			prev.spec.Port == ss.Port && prev.spec.Namespace == ss.Namespace && prev.spec.ClientNamespace == ss.ClientNamespace {
			switch {
			case checkable(ss):
				s.up.Store(prev.up.Load())
			case !prev.up.Load():
				raised = append(raised, s)
			}
			s.serverLoad = prev.serverLoad
			delete(byName, ss.Name)
		}
		next[i] = s
		added = append(added, s)
	}
	for _, s := range old {
		dropped = append(dropped, s)
	}
	b.servers = next
	return dropped, added, raised
}

// pick chooses a server for a client by the backend's algorithm, among
// usable servers not in tried; backup servers only when no other is usable.
func (b *backend) pick(client netip.Addr, tried []*server, nsOK func(string) bool) *server {
	b.mu.Lock()
	defer b.mu.Unlock()
	var cands []*server
	for _, s := range b.servers {
		if !s.spec.Backup && !slices.Contains(tried, s) && s.usable(nsOK) {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		// As HAProxy without "option allbackups": the first usable backup
		// takes everything while no active server is usable.
		for _, s := range b.servers {
			if s.spec.Backup && !slices.Contains(tried, s) && s.usable(nsOK) {
				return s
			}
		}
		return nil
	}
	switch b.spec.Load().Balance {
	case First:
		return cands[0]
	case LeastConn:
		// Ties rotate, as HAProxy's leastconn round-robins equal loads; the
		// caller counts the connection as active before it dials, so that a
		// burst does not pile onto one server.
		b.next++
		start := b.next % len(cands)
		best := cands[start]
		for i := 1; i < len(cands); i++ {
			s := cands[(start+i)%len(cands)]
			// active/weight compared without division.
			if s.active.Load()*int64(best.spec.Weight) < best.active.Load()*int64(s.spec.Weight) {
				best = s
			}
		}
		return best
	case Source:
		total := 0
		for _, s := range cands {
			total += s.spec.Weight
		}
		h := fnv.New32a()
		a := client.Unmap().AsSlice()
		h.Write(a)
		n := int(h.Sum32() % uint32(total))
		for _, s := range cands {
			if n < s.spec.Weight {
				return s
			}
			n -= s.spec.Weight
		}
		return cands[len(cands)-1]
	default: // smooth weighted round robin
		total := 0
		var best *server
		for _, s := range cands {
			s.curW += s.spec.Weight
			total += s.spec.Weight
			if best == nil || s.curW > best.curW {
				best = s
			}
		}
		best.curW -= total
		return best
	}
}

func (b *backend) snapshot() []*server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*server(nil), b.servers...)
}

func (b *backend) stop() {
	for _, s := range b.snapshot() {
		s.stopCheck()
	}
}

func (s *server) stopCheck() {
	if s.checker != nil {
		s.checker.stop()
	}
}
