// Package manifest is the YAML tenant manifest: Kubernetes-style documents
// (apiVersion nsproxy.io/v1alpha1, kind, metadata.name, spec) that describe
// tenants, their objects and the rules that expose their containers. It
// decodes and checks documents (every problem as FILE:LINE:COLUMN); it does
// not touch the daemon, namespaces or the network. The frontends, backends
// and servers of a Tenant are the control API's own types (sidecar/api), so
// what `GET` prints is valid manifest YAML and valid POST input alike.
//
// These types are the public schema; manifests/README.md documents every
// field. Fields are only added.
package manifest

import (
	"fmt"
	"strings"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// APIVersion is the only apiVersion this package reads.
const APIVersion = "nsproxy.io/v1alpha1"

// Kinds of documents.
const (
	KindTenant   = "Tenant"
	KindExposure = "Exposure" // a container port published on the host
	KindService  = "Service"  // a service made reachable inside containers
)

// Pos is where a value was read: file, 1-based line and column.
type Pos struct {
	File string
	Line int
	Col  int
}

// Set is every document of one apply: what a file or directory says.
type Set struct {
	Tenants   []Tenant   `json:"tenants,omitempty"`
	Exposures []Exposure `json:"exposures,omitempty"`
	Services  []Service  `json:"services,omitempty"`
	// Positions maps a field path to where the decoder read it. A path is
	// "KIND/NAME" (the document) followed by the JSON path of a field:
	// "Tenant/acme.spec.frontends[0].binds[1].addr" (list elements by
	// index), "Tenant/acme.metadata.labels[team]" (map entries by key).
	// Filled by the decoder; not persisted.
	Positions map[string]Pos `yaml:"-" json:"-"`
}

// Where is the position of a field path, or of its nearest ancestor the
// decoder recorded ("Tenant/acme.spec.frontends[0].binds[9]" falls back to
// "Tenant/acme.spec.frontends[0]", then to the document).
func (s *Set) Where(path string) Pos {
	for path != "" {
		if p, ok := s.Positions[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return Pos{}
}

// String prints FILE:LINE:COLUMN (parts that are unknown are left out).
func (p Pos) String() string {
	switch {
	case p.File == "" && p.Line == 0:
		return ""
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Meta is a document's metadata.
type Meta struct {
	Name string `yaml:"name" json:"name"`
	// Tenant names the owning tenant of an Exposure or Service document.
	Tenant      string            `yaml:"tenant,omitempty" json:"tenant,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
	Pos         Pos               `yaml:"-" json:"-"` // the document's first line
}

// Tenant owns namespaces and the objects that may reach them.
type Tenant struct {
	Meta Meta       `yaml:"metadata" json:"metadata"`
	Spec TenantSpec `yaml:"spec" json:"spec"`
}

// TenantSpec is what a tenant consists of.
type TenantSpec struct {
	// Namespaces are static named namespaces (under the netns directory, or
	// a path) that belong to the tenant.
	Namespaces []StaticNamespace `yaml:"namespaces,omitempty" json:"namespaces,omitempty"`
	// Select claims run-time namespaces (CNI and OCI-hook attachments): an
	// attachment matching any selector belongs to the tenant. An attachment
	// matched by two tenants is reported on both and belongs to neither.
	Select    []Selector     `yaml:"select,omitempty" json:"select,omitempty"`
	Access    Access         `yaml:"access,omitempty" json:"access,omitempty"`
	Proxy     ProxyPolicy    `yaml:"proxy,omitempty" json:"proxy,omitempty"`
	Limits    Limits         `yaml:"limits,omitempty" json:"limits,omitempty"`
	Frontends []api.Frontend `yaml:"frontends,omitempty" json:"frontends,omitempty"`
	Backends  []api.Backend  `yaml:"backends,omitempty" json:"backends,omitempty"`
}

// StaticNamespace is a named namespace of the tenant.
type StaticNamespace struct {
	Name string `yaml:"name" json:"name"`
	Path string `yaml:"path,omitempty" json:"path,omitempty"` // default: the netns directory's NAME
}

// Selector matches attachments. Every non-empty field must match; string
// fields are shell globs (path.Match). Matches is the rule: which
// attachment metadata each field matches (annotations: pod annotations
// (CNI) or container annotations (OCI hook) under nsproxy.io/; labels:
// nothing yet, no hook delivers pod labels).
type Selector struct {
	Source        string            `yaml:"source,omitempty" json:"source,omitempty"` // cni | oci
	Network       string            `yaml:"network,omitempty" json:"network,omitempty"`
	PodNamespace  string            `yaml:"podNamespace,omitempty" json:"podNamespace,omitempty"`
	PodName       string            `yaml:"podName,omitempty" json:"podName,omitempty"`
	ContainerName string            `yaml:"containerName,omitempty" json:"containerName,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// Access limits the control socket: members of these unix groups (or
// these users) may apply, delete and read this tenant's objects only.
type Access struct {
	Groups []string `yaml:"groups,omitempty" json:"groups,omitempty"`
	Users  []string `yaml:"users,omitempty" json:"users,omitempty"`
}

// ProxyPolicy says what PROXY headers may do on this tenant's frontends.
type ProxyPolicy struct {
	// NetnsTLV: whether a v2 NETNS TLV may select one of the tenant's
	// namespaces (never another tenant's). Default true.
	NetnsTLV *bool `yaml:"netnsTLV,omitempty" json:"netnsTLV,omitempty"`
	// TrustedProxies: source prefixes whose PROXY headers are believed;
	// empty: any peer of an accept-proxy bind.
	TrustedProxies []string `yaml:"trustedProxies,omitempty" json:"trustedProxies,omitempty"`
}

// Limits cap what the tenant may hold; 0 means no cap.
type Limits struct {
	MaxConnections  int `yaml:"maxConnections,omitempty" json:"maxConnections,omitempty"`
	MaxListeners    int `yaml:"maxListeners,omitempty" json:"maxListeners,omitempty"`
	MaxExposedPorts int `yaml:"maxExposedPorts,omitempty" json:"maxExposedPorts,omitempty"`
}

// Exposure publishes a port of every matching container of the tenant on
// the host.
type Exposure struct {
	Meta Meta         `yaml:"metadata" json:"metadata"`
	Spec ExposureSpec `yaml:"spec" json:"spec"`
}

// ExposureSpec: for every container matching Select, listen on Host
// (a fixed port, or one port allocated from PortRange per container) and
// forward to ContainerPort inside the container's namespace.
type ExposureSpec struct {
	Select        Selector `yaml:"select" json:"select"`
	ContainerPort int      `yaml:"containerPort" json:"containerPort"`
	// Target: "ip" (the container's address, default) or "loopback"
	// (127.0.0.1 inside its namespace).
	Target string `yaml:"target,omitempty" json:"target,omitempty"`
	// HostAddr is the host address to listen on (default 0.0.0.0).
	HostAddr string `yaml:"hostAddr,omitempty" json:"hostAddr,omitempty"`
	// HostPort is a fixed port; PortRange "LOW-HIGH" allocates one per
	// container instead (reported in the attachment's exposures and the
	// CNI result). Exactly one of them.
	HostPort    int    `yaml:"hostPort,omitempty" json:"hostPort,omitempty"`
	PortRange   string `yaml:"portRange,omitempty" json:"portRange,omitempty"`
	SendProxyV2 bool   `yaml:"sendProxyV2,omitempty" json:"sendProxyV2,omitempty"`
	// MaxConn caps the connections at once on each container's exposed
	// port; 0: no cap.
	MaxConn int `yaml:"maxconn,omitempty" json:"maxconn,omitempty"`
}

// Service makes a service of the tenant reachable inside every matching
// container: a listener inside each container's namespace at Listen that
// forwards to Target (on the host, or in a namespace of the same tenant).
type Service struct {
	Meta Meta        `yaml:"metadata" json:"metadata"`
	Spec ServiceSpec `yaml:"spec" json:"spec"`
}

// ServiceSpec is one service made reachable in containers.
type ServiceSpec struct {
	Select Selector `yaml:"select" json:"select"`
	Listen string   `yaml:"listen" json:"listen"` // IP:PORT inside the container
	Target Endpoint `yaml:"target" json:"target"`
}

// Endpoint is an address in a namespace ("" = the host).
type Endpoint struct {
	Addr      string `yaml:"addr" json:"addr"`
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	SendProxy int    `yaml:"sendProxy,omitempty" json:"sendProxy,omitempty"` // 0, 1 or 2
}
