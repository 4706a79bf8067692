package config

import "slices"

// Conflicts reports whether b and o cannot both listen: the same namespace
// and port, and addresses that overlap. Two addresses overlap when they are
// equal, or when one is a wildcard of a family the other listens on:
// 0.0.0.0 covers IPv4, :: v6only IPv6, and :: both (v4v6, or by default:
// net.ipv6.bindv6only is 0 unless the host says otherwise, and the rule
// must hold for the default). Linux refuses the second
// of two such listening sockets (EADDRINUSE) even with SO_REUSEADDR; the
// daemon sets no SO_REUSEPORT. It is the one bind-conflict rule: of the
// validator and of the daemon's planner for attachment exposures.
func (b Bind) Conflicts(o Bind) bool {
	if b.Namespace != o.Namespace || b.Addr.Port() != o.Addr.Port() {
		return false
	}
	x, y := b.Addr.Addr(), o.Addr.Addr()
	return x == y || (x.IsUnspecified() || y.IsUnspecified()) && b.families()&o.families() != 0
}

// families is a bind's address families as bits: 1 IPv4, 2 IPv6.
func (b Bind) families() int {
	switch {
	case b.Addr.Addr().Is4():
		return 1
	case b.Addr.Addr().IsUnspecified() && !b.V6Only:
		return 3
	}
	return 2
}

// BindSet holds binds, each with the frontend it belongs to, and finds the
// one a new bind conflicts with. The zero value is empty and ready.
type BindSet struct {
	byPort map[bindPort][]boundBy
}

type bindPort struct {
	ns   string
	port uint16
}

type boundBy struct {
	bind     Bind
	frontend *Frontend
}

// Add records that f listens on b.
func (s *BindSet) Add(b Bind, f *Frontend) {
	if s.byPort == nil {
		s.byPort = map[bindPort][]boundBy{}
	}
	k := bindPort{b.Namespace, b.Addr.Port()}
	s.byPort[k] = append(s.byPort[k], boundBy{b, f})
}

// Remove forgets that f listens on b (Add's pointer f). A port no bind
// holds any more leaves the set.
func (s *BindSet) Remove(b Bind, f *Frontend) {
	k := bindPort{b.Namespace, b.Addr.Port()}
	us := slices.DeleteFunc(s.byPort[k], func(u boundBy) bool { return u.frontend == f && u.bind.sameAddr(b) })
	if len(us) == 0 {
		delete(s.byPort, k)
		return
	}
	s.byPort[k] = us
}

// Len is the number of ports (per namespace) the set holds.
func (s *BindSet) Len() int { return len(s.byPort) }

// Compact copies the set into a new map when it holds less than a quarter
// of peak ports: a Go map keeps its largest bucket array, so a set that
// served thousands of containers would hold it after they left.
func (s *BindSet) Compact(peak int) {
	if peak < 64 || len(s.byPort) > peak/4 {
		return
	}
	next := make(map[bindPort][]boundBy, len(s.byPort))
	for k, v := range s.byPort {
		next[k] = v
	}
	s.byPort = next
}

// Conflict returns the first bind added that conflicts with b (see
// Bind.Conflicts), and its frontend.
func (s *BindSet) Conflict(b Bind) (Bind, *Frontend, bool) {
	for _, u := range s.byPort[bindPort{b.Namespace, b.Addr.Port()}] {
		if u.bind.Conflicts(b) {
			return u.bind, u.frontend, true
		}
	}
	return Bind{}, nil, false
}

// sameAddr reports whether b and o are the same listening address, not
// merely overlapping ones.
func (b Bind) sameAddr(o Bind) bool {
	return b.Namespace == o.Namespace && b.Addr == o.Addr
}
