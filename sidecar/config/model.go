package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Origin is the syntax an object was written in.
type Origin uint8

const (
	OriginFile     Origin = iota // an HAProxy-style file (File:Line)
	OriginAPI                    // the control API's JSON (Object, Field)
	OriginManifest               // a YAML manifest (File:Line:Col when known, Object, Field)
)

// Pos is where a definition was written. For the files: file and 1-based
// line. For run-time objects: the object ("frontend web" for the API,
// "Tenant/acme.spec.frontends[0]" for a manifest) and the JSON path of a
// field inside it ("binds[1].addr"); a manifest's file, line and column
// when its decoder recorded them.
type Pos struct {
	File   string
	Line   int
	Col    int
	Origin Origin
	Object string
	Field  string
}

func (p Pos) String() string {
	switch p.Origin {
	case OriginAPI:
		if p.Field == "" {
			return "api " + p.Object
		}
		return "api " + p.Object + " field " + p.Field
	case OriginManifest:
		if p.Line > 0 {
			if p.Col > 0 {
				return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
			}
			return fmt.Sprintf("%s:%d", p.File, p.Line)
		}
		if p.Field == "" {
			return "manifest " + p.Object
		}
		return "manifest " + p.Object + "." + p.Field
	}
	if p.File == "" {
		return fmt.Sprintf("line %d", p.Line)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Config is the one validated model that every syntax loads into.
// Loaders resolve defaults sections, so every value here is final.
type Config struct {
	Global     Global
	Namespaces []NamespaceRef // namespace_list, in file order
	Frontends  []*Frontend    // frontend and listen sections, in file order
	Backends   []*Backend     // backend and listen sections, in file order
	// Defaults are the defaults in effect after the last file (its last
	// defaults section, else the built-in ones): what objects created at
	// run time inherit, as if they were written at the end of the files.
	// Zero in a Config built in code: see RuntimeDefaults.
	Defaults Defaults
}

// Defaults is what a defaults section sets for the proxies that follow it.
type Defaults struct {
	Frontend Frontend // MaxConn, client and proxy-header timeouts, options
	Backend  Backend  // Balance, server-side timeouts, Source
	Server   Server   // default-server options
}

// RuntimeDefaults is c.Defaults, or the built-in defaults when c was built
// in code without them.
func (c *Config) RuntimeDefaults() Defaults {
	if c.Defaults.Backend.Balance == "" {
		return BuiltinDefaults()
	}
	return c.Defaults
}

// Global holds the process-wide settings of the global section.
type Global struct {
	// MaxConn caps concurrent client connections over all frontends;
	// 0 means unlimited. Excess connections wait in the accept backlog.
	MaxConn int
	// ProxyHeaderMaxSize caps an incoming PROXY header in bytes
	// (tune.proxy-header-max-size); 0: the proxyproto default (4096).
	ProxyHeaderMaxSize int
	// NbThread is the number of event loops that move the
	// bytes of established connections (nbthread); 0: one per CPU. A
	// change takes effect when the daemon next starts.
	NbThread int
}

// NamespaceRef is one name of the namespace_list section.
type NamespaceRef struct {
	Name string
	Pos  Pos
}

// Frontend is a frontend section, or the frontend half of a listen section.
type Frontend struct {
	Name string
	Pos  Pos
	// Tenant owns the frontend; "" is the default tenant (every object of
	// the HAProxy-style files). A connection reaches only its tenant's
	// namespaces.
	Tenant string
	// Listen is true when the frontend came from a listen section.
	Listen         bool
	Binds          []Bind
	DefaultBackend string // for listen sections: the section's own name
	// MaxConn caps concurrent connections of this frontend; 0: no cap.
	MaxConn int
	// ClientTimeout is the client-side inactivity timeout; 0: none.
	ClientTimeout time.Duration
	// ClientFinTimeout replaces ClientTimeout once either side half-closed (HAProxy's rule); 0: ClientTimeout.
	ClientFinTimeout time.Duration
	// ProxyHeaderTimeout bounds reading a PROXY header on accept-proxy binds
	// (timeout proxy-header); 0: 5s.
	ProxyHeaderTimeout time.Duration
	// TrustedProxies (trusted-proxies CIDR...), when not empty, are the only
	// sources allowed to connect to this frontend's accept-proxy binds.
	TrustedProxies []netip.Prefix
	// LenientNetnsTLV (option lenient-netns-tlv) keeps the listener's
	// namespace when a PROXY NETNS TLV names a namespace that is not allowed
	// or is malformed, as HAProxy does, instead of refusing the connection.
	LenientNetnsTLV bool
}

// Bind is one bind line.
type Bind struct {
	Pos Pos
	// Addr is the listening address; an unspecified address (0.0.0.0 or ::)
	// listens on every address of the namespace.
	Addr netip.AddrPort
	// Namespace is the network namespace the listening socket is created in;
	// empty means the daemon's default namespace.
	Namespace   string
	AcceptProxy bool
	// V4V6 ("bind :::80 v4v6") makes an IPv6 wildcard bind accept IPv4
	// too; V6Only ("v6only") keeps it IPv6 only. With neither, HAProxy's
	// rule: 0.0.0.0 listens on IPv4 only, and :: follows the namespace's
	// net.ipv6.bindv6only (0, the Linux default: both families).
	V4V6   bool
	V6Only bool
	// NoTakeover, set only for attachment exposures: a port found in use
	// belongs to another program; report it, never retry into it.
	NoTakeover bool
	// AdoptFrom, set only for attachment exposures, is a container id:
	// serve the listening socket its runtime reserved for this address
	// (podman's conmon) instead of binding one. Never from a file.
	AdoptFrom string
}

// Balance is a load-balancing algorithm.
type Balance string

const (
	BalanceRoundRobin Balance = "roundrobin"
	BalanceLeastConn  Balance = "leastconn"
	BalanceSource     Balance = "source"
	BalanceFirst      Balance = "first"
)

// Backend is a backend section, or the backend half of a listen section.
type Backend struct {
	Name    string
	Pos     Pos
	Tenant  string // "" is the default tenant
	Listen  bool
	Balance Balance // never empty after loading: roundrobin by default
	// ConnectTimeout bounds a connection attempt to a server; 0: the OS limit.
	ConnectTimeout time.Duration
	// ServerTimeout is the server-side inactivity timeout; 0: none.
	ServerTimeout time.Duration
	// ServerFinTimeout replaces ServerTimeout once either side half-closed (HAProxy's rule); 0: ServerTimeout.
	ServerFinTimeout time.Duration
	// CheckTimeout is "timeout check": when set, a check's connect waits
	// min(ConnectTimeout, inter) instead of inter; it would bound the
	// reply, which TCP checks do not read. 0: unset.
	CheckTimeout time.Duration
	// UseSrcClientIP is "source 0.0.0.0 usesrc clientip": outgoing
	// connections bind to the client's address.
	UseSrcClientIP bool
	// Source is the local address of outgoing connections (the first argument
	// of "source"); invalid when unset.
	Source  netip.Addr
	Servers []*Server
	// DefaultServer is what the backend's servers start from: the
	// default-server lines of its defaults and its own. A server added at
	// run time starts from it too. Zero in a Backend built in code: then
	// the built-in defaults.
	DefaultServer Server
}

// PortMode says how a server's port is found.
type PortMode int

const (
	// PortFixed: Server.Port is the port.
	PortFixed PortMode = iota
	// PortFromClient: no port given; use the destination port of the
	// client connection (from the PROXY header, else the accepted socket).
	PortFromClient
	// PortOffset: Server.PortOffset is added to the client's destination port
	// ("+N" or "-N").
	PortOffset
)

// Server is one server line.
type Server struct {
	Name string
	Pos  Pos
	// Addr is the server address. An invalid or unspecified (0.0.0.0, ::, "*")
	// address means: the client's destination address.
	Addr       netip.Addr
	Port       uint16
	PortMode   PortMode
	PortOffset int
	// Namespace the outgoing socket is created in; empty: default namespace.
	Namespace string
	// ClientNamespace is "namespace *": the connection's own namespace.
	ClientNamespace bool
	Check           bool
	Inter           time.Duration // check interval; never 0 after loading (2s)
	Rise            int           // never 0 after loading (2)
	Fall            int           // never 0 after loading (3)
	Weight          int           // 0..256, 1 by default
	Backup          bool
	Disabled        bool
	// SendProxy is the PROXY protocol version sent to the server: 0 (none), 1 or 2.
	SendProxy int
}

// UsesClientDestination reports whether the server's address comes from the client connection.
func (s *Server) UsesClientDestination() bool {
	return !s.Addr.IsValid() || s.Addr.IsUnspecified()
}
