package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
)

// Validate checks a whole, merged Config, whichever syntax it came from:
// names and namespace names are valid and unique, every frontend has a bind
// line and a default_backend that names a backend or listen section, no
// (namespace, address:port) is bound twice, and every value is in range.
// It reports every problem, joined with errors.Join; each is an *Error.
// Load and Parse call it.
func (c *Config) Validate() error {
	if c == nil {
		return fmt.Errorf("%w: nil Config", ErrInvalid)
	}
	return errors.Join(c.check(nil)...)
}

// NamespaceNames returns every namespace name the config references, in
// namespace_list, bind and server lines, sorted and without duplicates.
// "namespace *" names no namespace and is not included.
func (c *Config) NamespaceNames() []string {
	var names []string
	for _, n := range c.Namespaces {
		names = append(names, n.Name)
	}
	for _, f := range c.Frontends {
		if f == nil {
			continue
		}
		for _, b := range f.Binds {
			if b.Namespace != "" {
				names = append(names, b.Namespace)
			}
		}
	}
	for _, b := range c.Backends {
		if b == nil {
			continue
		}
		for _, s := range b.Servers {
			if s != nil && s.Namespace != "" {
				names = append(names, s.Namespace)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func (f *Frontend) describe() string {
	if f.Listen {
		return fmt.Sprintf("listen %q", f.Name)
	}
	return fmt.Sprintf("frontend %q", f.Name)
}

func (b *Backend) describe() string {
	if b.Listen {
		return fmt.Sprintf("listen %q", b.Name)
	}
	return fmt.Sprintf("backend %q", b.Name)
}

func describeNamespace(ns string) string {
	if ns == "" {
		return "the default namespace"
	}
	return fmt.Sprintf("namespace %q", ns)
}

// checker collects the problems of one validation.
type checker struct {
	errs []error
}

func (ch *checker) add(pos Pos, kind error, format string, args ...any) {
	ch.errs = append(ch.errs, newError(pos, kind, format, args...))
}

func (ch *checker) nonNegative(pos Pos, where, what string, d time.Duration) {
	if d < 0 {
		ch.add(pos, ErrInvalid, "%s: %s is negative (%s); use 0 for none or a positive duration", where, what, d)
	}
}

// check validates c. Frontends in incomplete had a bind or default_backend
// line rejected by the parser: a missing one is not reported again.
func (c *Config) check(incomplete map[*Frontend]bool) []error {
	var ch checker
	if c.Global.MaxConn < 0 {
		ch.add(Pos{}, ErrInvalid, "global maxconn %d is negative; use 0 for no limit or a positive number", c.Global.MaxConn)
	}

	namespaces := map[string]Pos{}
	for _, n := range c.Namespaces {
		if !hooks.ValidName(n.Name) {
			ch.add(n.Pos, ErrInvalid, "invalid namespace name %q in namespace_list; %s", n.Name, hooks.NameRule)
		} else if first, dup := namespaces[n.Name]; dup {
			ch.add(n.Pos, ErrDuplicate, "namespace %q is listed twice in namespace_list (first at %s); remove one", n.Name, first)
		} else {
			namespaces[n.Name] = n.Pos
		}
	}

	frontends := c.checkFrontends(&ch, incomplete)
	backends := c.checkBackends(&ch)

	for _, f := range c.Frontends {
		if f == nil || f.DefaultBackend == "" {
			continue
		}
		if _, ok := backends[f.DefaultBackend]; ok {
			continue
		}
		// An API object says "backend", a file "default_backend".
		pos, kw := f.Pos, "default_backend"
		if pos.Origin == OriginAPI {
			pos.Field, kw = "backend", "backend"
		}
		if g, ok := frontends[f.DefaultBackend]; ok {
			ch.add(pos, ErrUnknownBackend, "%s: %s %q names a frontend (at %s), not a backend; add a backend of that name or name a backend or listen section", f.describe(), kw, f.DefaultBackend, g.Pos)
		} else {
			ch.add(pos, ErrUnknownBackend, "%s: %s %q is not defined; add a backend or listen section of that name, or fix the name", f.describe(), kw, f.DefaultBackend)
		}
	}
	return ch.errs
}

// checkFrontends checks the frontends on their own and returns them by name.
func (c *Config) checkFrontends(ch *checker, incomplete map[*Frontend]bool) map[string]*Frontend {
	byName := map[string]*Frontend{}
	var listeners BindSet
	for i, f := range c.Frontends {
		if f == nil {
			ch.add(Pos{}, ErrInvalid, "frontend #%d is nil; remove it", i)
			continue
		}
		where := f.describe()
		if !validName(f.Name) {
			ch.add(f.Pos, ErrInvalid, "%s: invalid name; %s", where, nameRule)
		} else if first, dup := byName[f.Name]; dup {
			ch.add(f.Pos, ErrDuplicate, "duplicate %s, first defined at %s as %s; rename one of them", where, first.Pos, first.describe())
		} else {
			byName[f.Name] = f
		}
		if f.MaxConn < 0 {
			ch.add(f.Pos, ErrInvalid, "%s: maxconn %d is negative; use 0 for no limit or a positive number", where, f.MaxConn)
		}
		ch.nonNegative(f.Pos, where, "timeout client", f.ClientTimeout)
		ch.nonNegative(f.Pos, where, "timeout client-fin", f.ClientFinTimeout)
		if len(f.Binds) == 0 && !incomplete[f] {
			ch.add(f.Pos, ErrIncomplete, "%s has no bind line; add bind ADDR:PORT", where)
		}
		for _, b := range f.Binds {
			if !b.Addr.IsValid() || b.Addr.Port() == 0 {
				ch.add(b.Pos, ErrInvalid, "bind in %s: invalid address %q; write ADDR:PORT with a port from 1 to 65535", where, b.Addr)
				continue
			}
			if b.Addr.Addr().Zone() != "" {
				ch.add(b.Pos, ErrInvalid, "bind in %s: IPv6 zones are not supported; remove the zone of %q", where, b.Addr)
				continue
			}
			if b.Namespace != "" && !hooks.ValidName(b.Namespace) {
				ch.add(b.Pos, ErrInvalid, "bind in %s: invalid namespace name %q; %s", where, b.Namespace, hooks.NameRule)
				continue
			}
			if b.V4V6 && b.Addr.Addr().Is4() {
				ch.add(b.Pos, ErrInvalid, "bind %s in %s: v4v6 applies to IPv6 addresses; for both families write bind [::]:%d v4v6", b.Addr, where, b.Addr.Port())
				continue
			}
			if u, first, dup := listeners.Conflict(b); dup {
				if u.sameAddr(b) {
					ch.add(b.Pos, ErrDuplicate, "bind %s in %s of %s is already bound by %s at %s; use another address, port or namespace", b.Addr, describeNamespace(b.Namespace), where, first.describe(), u.Pos)
				} else {
					ch.add(b.Pos, ErrDuplicate, "bind %s in %s of %s overlaps bind %s of %s at %s (a wildcard address takes the port on every address of its family); use another address, port or namespace", b.Addr, describeNamespace(b.Namespace), where, u.Addr, first.describe(), u.Pos)
				}
				continue
			}
			listeners.Add(b, f)
		}
		if f.DefaultBackend == "" && !incomplete[f] {
			ch.add(f.Pos, ErrIncomplete, "%s has no default_backend; add default_backend NAME", where)
		}
	}
	return byName
}

// checkBackends checks the backends and their servers and returns the
// backends by name.
func (c *Config) checkBackends(ch *checker) map[string]*Backend {
	byName := map[string]*Backend{}
	for i, b := range c.Backends {
		if b == nil {
			ch.add(Pos{}, ErrInvalid, "backend #%d is nil; remove it", i)
			continue
		}
		where := b.describe()
		if !validName(b.Name) {
			ch.add(b.Pos, ErrInvalid, "%s: invalid name; %s", where, nameRule)
		} else if first, dup := byName[b.Name]; dup {
			ch.add(b.Pos, ErrDuplicate, "duplicate %s, first defined at %s as %s; rename one of them", where, first.Pos, first.describe())
		} else {
			byName[b.Name] = b
		}
		switch b.Balance {
		case BalanceRoundRobin, BalanceLeastConn, BalanceSource, BalanceFirst:
		default:
			ch.add(b.Pos, ErrInvalid, "%s: unknown balance algorithm %q; use roundrobin, leastconn, source or first", where, b.Balance)
		}
		ch.nonNegative(b.Pos, where, "timeout connect", b.ConnectTimeout)
		ch.nonNegative(b.Pos, where, "timeout server", b.ServerTimeout)
		ch.nonNegative(b.Pos, where, "timeout server-fin", b.ServerFinTimeout)
		ch.nonNegative(b.Pos, where, "timeout check", b.CheckTimeout)
		if b.Source.Zone() != "" {
			ch.add(b.Pos, ErrInvalid, "%s: IPv6 zones are not supported; remove the zone of source %q", where, b.Source)
		}
		if b.UseSrcClientIP && b.Source.IsValid() && b.Source != netip.IPv4Unspecified() {
			ch.add(b.Pos, ErrInvalid, "%s: usesrc clientip needs source 0.0.0.0, not %q; write source 0.0.0.0 usesrc clientip", where, b.Source)
		}
		checkServers(ch, b, where)
	}
	return byName
}

func checkServers(ch *checker, b *Backend, where string) {
	byName := map[string]*Server{}
	for i, s := range b.Servers {
		if s == nil {
			ch.add(b.Pos, ErrInvalid, "%s: server #%d is nil; remove it", where, i)
			continue
		}
		what := fmt.Sprintf("server %q in %s", s.Name, where)
		if !validName(s.Name) {
			ch.add(s.Pos, ErrInvalid, "%s: invalid name; %s", what, nameRule)
		} else if first, dup := byName[s.Name]; dup {
			ch.add(s.Pos, ErrDuplicate, "duplicate %s, first defined at %s; rename one of them", what, first.Pos)
		} else {
			byName[s.Name] = s
		}
		if s.Addr.Zone() != "" {
			ch.add(s.Pos, ErrInvalid, "%s: IPv6 zones are not supported; remove the zone of %q", what, s.Addr)
		}
		if src := b.Source; src.IsValid() && src.Zone() == "" && !src.IsUnspecified() && s.Addr.IsValid() && !s.Addr.IsUnspecified() &&
			src.Unmap().Is4() != s.Addr.Unmap().Is4() {
			ch.add(s.Pos, ErrInvalid, "%s: address %s and the backend's source %s are of different address families, so no connection can be made; give the server an address of the source's family or change the source",
				what, s.Addr, src)
		}
		if s.Namespace != "" && !hooks.ValidName(s.Namespace) {
			ch.add(s.Pos, ErrInvalid, "%s: invalid namespace name %q; %s", what, s.Namespace, hooks.NameRule)
		}
		if s.Namespace != "" && s.ClientNamespace {
			ch.add(s.Pos, ErrInvalid, "%s has both namespace %q and namespace *; keep one", what, s.Namespace)
		}
		switch s.PortMode {
		case PortFixed:
			if s.Port == 0 {
				ch.add(s.Pos, ErrInvalid, "%s: fixed port 0; write a port from 1 to 65535, or none to use the client's", what)
			}
		case PortFromClient:
		case PortOffset:
			if s.PortOffset == 0 || s.PortOffset < -65535 || s.PortOffset > 65535 {
				ch.add(s.Pos, ErrInvalid, "%s: port offset %d out of range; write +N or -N with N from 1 to 65535", what, s.PortOffset)
			}
		default:
			ch.add(s.Pos, ErrInvalid, "%s: unknown port mode %d; use PortFixed, PortFromClient or PortOffset", what, s.PortMode)
		}
		if s.Inter <= 0 {
			ch.add(s.Pos, ErrInvalid, "%s: check interval inter %s must be greater than 0; set a positive duration such as 2s", what, s.Inter)
		}
		if s.Rise < 1 || s.Fall < 1 {
			ch.add(s.Pos, ErrInvalid, "%s: rise %d and fall %d must be at least 1; set both to 1 or more", what, s.Rise, s.Fall)
		}
		if s.Weight < 0 || s.Weight > 256 {
			ch.add(s.Pos, ErrInvalid, "%s: weight %d out of range; use 0 to 256", what, s.Weight)
		}
		if s.SendProxy < 0 || s.SendProxy > 2 {
			ch.add(s.Pos, ErrInvalid, "%s: send-proxy version %d; use 0 (none), 1 or 2", what, s.SendProxy)
		}
	}
}
