package api

import (
	"time"

	"github.com/nsproxy/nsproxy/hooks"
)

// Version prefixes every path: /v1/...
const Version = "v1"

// DefaultSocket is where the daemon listens for control requests.
const DefaultSocket = hooks.DefaultSocket

// Sources of objects and namespaces. The hooks' own are defined in package
// hooks, the contract with them.
const (
	SourceConfig   = "config"   // a -f file; read-only through the API
	SourceAPI      = "api"      // created through the control socket
	SourceManifest = "manifest" // a tenant's manifest; changed by apply and delete
	SourceCNI      = hooks.SourceCNI
	SourceOCI      = hooks.SourceOCI
)

// Namespace is a registry entry. On POST /v1/namespaces give Name and at
// most one of Path or Pid (neither: the file Name in the netns directory).
type Namespace struct {
	Name   string `json:"name"`
	Path   string `json:"path,omitempty"`
	Pid    int    `json:"pid,omitempty"`
	Source string `json:"source,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// Allowed: on the allowlist that PROXY NETNS TLVs and "namespace *" use.
	Allowed  bool              `json:"allowed"`
	State    string            `json:"state,omitempty"` // available | missing
	Identity *Identity         `json:"identity,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// UsedBy lists what refers to it: frontend/F, backend/B/server/S, attachment/ID/IF.
	UsedBy []string `json:"usedBy,omitempty"`
}

// Namespace states.
const (
	StateAvailable = hooks.StateAvailable
	StateMissing   = "missing"
)

// Identity of an open namespace.
type Identity struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Cookie uint64 `json:"cookie,omitempty"`
}

// Bind is one listening address of a frontend.
type Bind struct {
	Addr        string `json:"addr"` // IP:PORT
	Namespace   string `json:"namespace,omitempty"`
	AcceptProxy bool   `json:"acceptProxy,omitempty"`
	// V4V6 / V6Only: a :: bind on both families / on IPv6 only (HAProxy's
	// "v4v6" and "v6only"); with neither, :: follows net.ipv6.bindv6only.
	V4V6   bool `json:"v4v6,omitempty"`
	V6Only bool `json:"v6only,omitempty"`
}

// Frontend is a set of listeners and the backend they feed: what a
// frontend section says. Empty fields inherit from the files' last defaults
// section, as a frontend written at the end of the files would; what GET
// prints is the resolved value, valid POST input again.
type Frontend struct {
	Name          string `json:"name"`
	Source        string `json:"source,omitempty"`
	Tenant        string `json:"tenant,omitempty"` // read-only: the owning tenant (ignored on create)
	Binds         []Bind `json:"binds"`
	Backend       string `json:"backend"`
	MaxConn       int    `json:"maxconn,omitempty"`
	ClientTimeout string `json:"clientTimeout,omitempty"` // HAProxy time format: 30s, 500ms
	// ClientFinTimeout (timeout client-fin) replaces ClientTimeout once either side half-closed.
	ClientFinTimeout string `json:"clientFinTimeout,omitempty"`
	// ProxyHeaderTimeout (timeout proxy-header) bounds reading a PROXY header.
	ProxyHeaderTimeout string `json:"proxyHeaderTimeout,omitempty"`
	// TrustedProxies (trusted-proxies): the only sources allowed on
	// accept-proxy binds, as CIDRs or addresses.
	TrustedProxies []string `json:"trustedProxies,omitempty"`
	// LenientNetnsTLV (option lenient-netns-tlv): a NETNS TLV naming a
	// namespace that is not allowed keeps the listener's namespace.
	LenientNetnsTLV bool `json:"lenientNetnsTLV,omitempty"`
	// Status (ignored on create).
	Listeners []Listener `json:"listeners,omitempty"`
	Current   int64      `json:"current"`
	Total     uint64     `json:"total"`
	BytesIn   uint64     `json:"bytesIn"`
	BytesOut  uint64     `json:"bytesOut"`
}

// Listener is the state of one bind.
type Listener struct {
	Addr      string `json:"addr"`
	Namespace string `json:"namespace"`
	Listening bool   `json:"listening"`
	Error     string `json:"error,omitempty"`
}

// Backend is a set of servers: what a backend section says. Empty fields
// inherit from the files' last defaults section; its servers start from its
// default-server options.
type Backend struct {
	Name           string `json:"name"`
	Source         string `json:"source,omitempty"`
	Tenant         string `json:"tenant,omitempty"` // read-only: the owning tenant (ignored on create)
	Balance        string `json:"balance,omitempty"`
	ConnectTimeout string `json:"connectTimeout,omitempty"`
	ServerTimeout  string `json:"serverTimeout,omitempty"`
	// ServerFinTimeout (timeout server-fin) replaces ServerTimeout once either side half-closed.
	ServerFinTimeout string `json:"serverFinTimeout,omitempty"`
	// CheckTimeout (timeout check): when set, a health check's connect waits
	// min(ConnectTimeout, inter) instead of inter (HAProxy's rule).
	CheckTimeout string `json:"checkTimeout,omitempty"`
	// SourceAddr and UseSrc are "source ADDR [usesrc clientip]": the local
	// address of connections to the servers; UseSrc "clientip" binds them
	// to the client's address (SourceAddr then 0.0.0.0, or empty).
	SourceAddr string   `json:"sourceAddr,omitempty"`
	UseSrc     string   `json:"usesrc,omitempty"`
	Servers    []Server `json:"servers,omitempty"`
}

// Server is one server of a backend. Addr is IP:PORT, IP, "*" or "*:PORT";
// PORT may be an offset +N or -N to the client's destination port, and
// without one the client's destination port is used. Namespace "*" is the
// client's namespace. Zero fields inherit the backend's default-server
// options; Weight 0 is a weight, so it is a pointer.
type Server struct {
	Backend   string `json:"backend"`
	Name      string `json:"name"`
	Source    string `json:"source,omitempty"`
	Addr      string `json:"addr"`
	Namespace string `json:"namespace,omitempty"`
	Check     bool   `json:"check,omitempty"`
	Inter     string `json:"inter,omitempty"`
	Rise      int    `json:"rise,omitempty"`
	Fall      int    `json:"fall,omitempty"`
	Weight    *int   `json:"weight,omitempty"`
	Backup    bool   `json:"backup,omitempty"`
	Disabled  bool   `json:"disabled,omitempty"`
	SendProxy int    `json:"sendProxy,omitempty"` // 0, 1 or 2
	// Status (ignored on create). Up: new connections may go to the
	// server now; DownReason says why they may not: "disabled", "weight_zero",
	// "no_namespace" (not in the registry) or "check_failed".
	Up            bool   `json:"up"`
	DownReason    string `json:"downReason,omitempty"`
	Active        int64  `json:"active"`
	Total         uint64 `json:"total"`
	ConnectErrors uint64 `json:"connectErrors"`
}

// Connection is one proxied connection.
type Connection struct {
	ID          uint64    `json:"id"`
	Frontend    string    `json:"frontend"`
	Backend     string    `json:"backend"`
	Server      string    `json:"server"`
	Client      string    `json:"client"`
	ClientNetns string    `json:"clientNetns"`
	ServerNetns string    `json:"serverNetns"`
	Start       time.Time `json:"start"`
	BytesIn     uint64    `json:"bytesIn"`
	BytesOut    uint64    `json:"bytesOut"`
}

// The attachment types are the hooks' contract, defined once in package
// hooks (which the CNI plugin uses without the daemon's packages).
type (
	PortMapping     = hooks.PortMapping
	AttachmentKey   = hooks.AttachmentKey
	Attachment      = hooks.Attachment
	Exposure        = hooks.Exposure
	ServiceListener = hooks.ServiceListener
	GCRequest       = hooks.GCRequest
	GCResult        = hooks.GCResult
)

// Stats is the daemon-wide summary.
type Stats struct {
	Uptime     string `json:"uptime"`
	Namespaces int    `json:"namespaces"`
	Frontends  int    `json:"frontends"`
	Backends   int    `json:"backends"`
	Servers    int    `json:"servers"`
	ServersUp  int    `json:"serversUp"`
	// ServersDown counts the other servers by Server.DownReason.
	ServersDown map[string]int `json:"serversDown,omitempty"`
	Connections int            `json:"connections"`
	Total       uint64         `json:"total"`
	BytesIn     uint64         `json:"bytesIn"`
	BytesOut    uint64         `json:"bytesOut"`
	Attachments int            `json:"attachments"`
}

// Error is the body of every non-2xx answer.
type Error = hooks.ErrorBody
