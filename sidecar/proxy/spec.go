package proxy

import (
	"net/netip"
	"time"
)

// Spec is the whole desired state of the engine. Apply reconciles the
// running state with it.
type Spec struct {
	// MaxConn caps concurrent client connections over every frontend; 0: none.
	MaxConn int
	// ProxyHeaderMaxSize caps incoming PROXY headers; 0: the proxyproto default.
	ProxyHeaderMaxSize int
	// NbThread is the number of event loops (each a goroutine with its own epoll set) that own
	// established connections; 0: one per CPU. Read by the first Apply
	// only: a change takes effect at the next start.
	NbThread int
	// TenantMaxConn caps concurrent client connections over all the
	// frontends of a tenant (FrontendSpec.Tenant), next to each frontend's
	// MaxConn and the global MaxConn: excess ones wait in the listen
	// backlog. A tenant absent or 0: no cap.
	TenantMaxConn map[string]int
	Frontends     []FrontendSpec
	Backends      []BackendSpec
}

// FrontendSpec is one frontend: its listeners and where connections go.
type FrontendSpec struct {
	Name   string
	Tenant string
	Binds  []BindSpec
	// Backend receives every connection of this frontend.
	Backend string
	// MaxConn caps this frontend's concurrent connections; excess ones wait
	// in the listen backlog. 0: no cap.
	MaxConn int
	// ClientTimeout: inactivity timeout on the client side; 0: none.
	ClientTimeout time.Duration
	// ClientFinTimeout: the same once either side has half-closed; 0: ClientTimeout.
	ClientFinTimeout time.Duration
	// AcceptProxy tunables (used by binds with AcceptProxy).
	Proxy ProxyPolicy
}

// ProxyPolicy says how PROXY headers are read on accept-proxy binds.
type ProxyPolicy struct {
	// HeaderTimeout bounds reading the header; 0: proxyproto's default (5s).
	HeaderTimeout time.Duration
	// LenientNamespace keeps the listener's namespace when a NETNS TLV names
	// a namespace that is not allowed (HAProxy's behaviour) instead of
	// refusing the connection.
	LenientNamespace bool
	// Trusted, when not empty, lists the source networks allowed to send
	// PROXY headers; connections from elsewhere are refused.
	Trusted []netip.Prefix
}

// BindSpec is one listening socket. It is comparable: an unchanged
// BindSpec keeps its socket and connections across Apply.
type BindSpec struct {
	Addr        netip.AddrPort
	Namespace   string // "": the default namespace
	AcceptProxy bool
	// V4V6 and V6Only: the family of a :: bind (netns.ListenOptions).
	V4V6   bool
	V6Only bool
	// NoTakeover makes "address in use" final: the port belongs to another
	// program, so the listener reports a conflict and never retries (a
	// retry would take the port over as soon as its owner exits). The
	// first bind is tried during Apply, so the conflict is known when it
	// returns. For attachments' exposures; files' binds retry.
	NoTakeover bool
	// AdoptFrom is a container id: instead of binding Addr, serve the
	// listening socket that container's runtime (podman's conmon) holds
	// for it. Only in the default namespace.
	AdoptFrom string
}

// Balance algorithms.
const (
	RoundRobin = "roundrobin"
	LeastConn  = "leastconn"
	Source     = "source"
	First      = "first"
)

// BackendSpec is a set of servers and how to reach them.
type BackendSpec struct {
	Name    string
	Balance string // one of the Balance constants; "" is RoundRobin
	// ConnectTimeout bounds one connection attempt; 0: DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ServerTimeout: inactivity timeout on the server side; 0: none.
	ServerTimeout time.Duration
	// ServerFinTimeout: the same once either side has half-closed; 0: ServerTimeout.
	ServerFinTimeout time.Duration
	// CheckTimeout ("timeout check"), when > 0, bounds a check's connect by
	// min(ConnectTimeout, the server's Inter) instead of Inter alone
	// (checkConnectTimeout).
	CheckTimeout time.Duration
	// Source, when valid, is the local address of outgoing connections.
	Source netip.Addr
	// UseSrcClientIP binds outgoing connections to the client's address.
	UseSrcClientIP bool
	Servers        []ServerSpec
}

// PortMode says where a server's port comes from.
type PortMode int

const (
	PortFixed      PortMode = iota // ServerSpec.Port
	PortFromClient                 // the client's destination port
	PortOffset                     // the client's destination port + PortOffset
)

// ServerSpec is one server. It is comparable: an unchanged ServerSpec keeps
// its health state across Apply.
type ServerSpec struct {
	Name string
	// Addr, when invalid or unspecified, is the client's destination address.
	Addr       netip.Addr
	Port       uint16
	PortMode   PortMode
	PortOffset int
	// Namespace the outgoing socket is created in; "": default namespace.
	Namespace string
	// ClientNamespace ("namespace *"): the connection's namespace.
	ClientNamespace bool
	Check           bool
	Inter           time.Duration
	Rise, Fall      int
	Weight          int
	Backup          bool
	Disabled        bool
	SendProxy       int // 0, 1 or 2
}

// DefaultConnectTimeout applies when a backend sets none.
const DefaultConnectTimeout = 5 * time.Second
