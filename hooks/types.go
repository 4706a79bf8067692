package hooks

// DefaultSocket is where the daemon serves its control API.
const DefaultSocket = "/run/nsproxy/nsproxy.sock"

// Sources of an attachment: which hook registered it.
const (
	SourceCNI = "cni" // the nsproxy-cni plugin
	SourceOCI = "oci" // the OCI hook
)

// StateAvailable is the State of an attachment whose namespace the daemon
// holds open; anything else ("missing") means it could not open it.
const StateAvailable = "available"

// Metadata keys. The daemon reads MetaTarget and MetaSendProxy to shape
// the exposures of an attachment; the others are set by the CNI plugin to
// tell where an attachment came from (GC uses MetaNetwork and MetaRuntime).
const (
	// MetaTarget "loopback" sends exposed ports to 127.0.0.1 inside the
	// container's namespace instead of the container's IP.
	MetaTarget = "nsproxy.io/target"
	// MetaSendProxy "v1" or "v2" sends a PROXY header with the client's
	// address to the container.
	MetaSendProxy = "nsproxy.io/send-proxy"
	// MetaHostPorts "adopt" makes the daemon serve the listening socket the
	// runtime reserved for a host port (podman's conmon holds one for every
	// -p mapping) instead of binding its own, which would collide with it.
	MetaHostPorts = "nsproxy.io/host-ports"
	// MetaNetwork is the name of the CNI network the attachment belongs to.
	MetaNetwork = "nsproxy.io/cni-network"
	// MetaRuntime is the runtime that ran the plugin's ADD: the
	// executable of the plugin's parent process. Runtimes may name their
	// networks alike, and a GC only collects its own runtime's attachments.
	MetaRuntime = "nsproxy.io/cni-runtime"
	// Kubernetes identity of the pod, from CNI_ARGS.
	MetaPodName      = "nsproxy.io/pod-name"
	MetaPodNamespace = "nsproxy.io/pod-namespace"
	MetaPodUID       = "nsproxy.io/pod-uid"
)

// MetaPrefix is the prefix of the annotation keys that become metadata.
const MetaPrefix = "nsproxy.io/"

// IdentityKey reports whether k is a metadata key only the CNI plugin sets,
// from what the runtime tells it (the network, CNI_ARGS' pod identity): a
// container's own annotation of that name is not copied, since tenant
// selectors match these keys and CNI GC goes by the network and runtime.
func IdentityKey(k string) bool {
	switch k {
	case MetaNetwork, MetaRuntime, MetaPodName, MetaPodNamespace, MetaPodUID:
		return true
	}
	return false
}

// PortMapping is a CNI portMappings entry: a TCP HostPort on HostIP (empty:
// every address) of the host is forwarded to ContainerPort in the
// container. Protocols other than TCP are reported by the daemon, not
// proxied.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// AttachmentKey identifies an attachment: a container's interface, as CNI
// does (CNI_CONTAINERID, CNI_IFNAME).
type AttachmentKey struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// Attachment is what a hook registers for a container network namespace.
// It is the daemon's API type too (sidecar/api.Attachment is this type):
// fields are only ever added, so that an older plugin and the records it
// wrote stay understood.
type Attachment struct {
	AttachmentKey
	// Netns is the namespace's path (CNI_NETNS, /proc/PID/ns/net).
	Netns string `json:"netns"`
	// Name is the registry name asked for; empty: the daemon's default,
	// cni-<first 12 of the container ID>-<ifname>. When it is taken, the
	// daemon gives the attachment the name with a suffix derived from its
	// key instead of refusing it; its answers carry the name given.
	Name   string `json:"name,omitempty"`
	Source string `json:"source,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// IPs of the container (an optional /prefix is ignored by the daemon).
	IPs          []string          `json:"ips,omitempty"`
	PortMappings []PortMapping     `json:"portMappings,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`

	// Status, set by the daemon in its answers; ignored on create and
	// never written to a record.
	State string `json:"state,omitempty"`
	// Exposures are the port mappings the daemon serves, each with the
	// frontend it made for it.
	Exposures []Exposure `json:"exposures,omitempty"`
	// Exposed names the frontends of Exposures; plugins older than
	// Exposures found a mapping's frontend by its "-<hostPort>" suffix.
	Exposed  []string `json:"exposed,omitempty"`
	Problems []string `json:"problems,omitempty"` // e.g. port conflicts, UDP mappings
	// Tenant owning the namespace as the daemon decided it (the hook's
	// tenant or the tenant whose manifest selectors match); status only.
	Owner string `json:"owner,omitempty"`
	// Services are the listeners a tenant's Service rules made inside the
	// attachment's namespace.
	Services []ServiceListener `json:"services,omitempty"`
}

// ServiceListener is a listener a Service rule made inside an
// attachment's namespace: Listen there forwards to Target (in
// TargetNamespace; "": the host).
type ServiceListener struct {
	Rule            string `json:"rule"`
	Listen          string `json:"listen"`
	Target          string `json:"target"`
	TargetNamespace string `json:"targetNamespace,omitempty"`
	Frontend        string `json:"frontend"`
}

// Exposure is a TCP port mapping of an attachment that the daemon serves:
// the mapping as the attachment gave it, and the frontend listening on its
// host port.
type Exposure struct {
	PortMapping
	Frontend string `json:"frontend"`
	// Rule is the Exposure manifest that made it ("": a port mapping of
	// the attachment's own); its HostPort may come from the rule's range.
	Rule string `json:"rule,omitempty"`
}

// Exposes reports whether the daemon serves pm for a: an exposure with the
// same host address, host port and container port.
func (a Attachment) Exposes(pm PortMapping) bool {
	for _, x := range a.Exposures {
		if x.HostPort == pm.HostPort && x.ContainerPort == pm.ContainerPort && x.HostIP == pm.HostIP {
			return true
		}
	}
	return false
}

// WithoutStatus is a with the daemon's status fields cleared: what a hook
// sends and records.
func (a Attachment) WithoutStatus() Attachment {
	a.State, a.Exposures, a.Exposed, a.Problems, a.Owner, a.Services = "", nil, nil, nil, "", nil
	return a
}

// GCRequest lists the attachments that are still valid; the rest go.
type GCRequest struct {
	Valid []AttachmentKey `json:"valid"`
}

// GCResult lists what a GC removed.
type GCResult struct {
	Removed []AttachmentKey `json:"removed"`
}
