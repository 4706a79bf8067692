// Package ocihook is the OCI hook of `nsproxy hook oci STAGE`: the
// counterpart of the CNI plugin (package cniplugin) for runtimes that run
// OCI hooks instead of, or besides, CNI.
//
// At createRuntime (or any stage whose state has a pid) it names the
// container's network namespace in the netns directory, writes an
// attachment record, then registers it with the daemon, exposing the ports
// of the AnnExpose annotation; a daemon that is down replays the record
// when it starts, as it does the CNI plugin's. At poststop it removes the
// record and unregisters it. A container that shares the host's network
// namespace (--network host) has none of its own to register: the hook
// leaves it alone at both stages. Annotations under hooks.MetaPrefix (e.g.
// hooks.MetaTarget, hooks.MetaSendProxy) travel to the daemon as metadata.
//
// It owns the hook's logic and its parsers (State, ParseExpose); it must
// not read flags, stdin or the environment: cmd/nsproxy does.
package ocihook

import "github.com/nsproxy/nsproxy/hooks"

// Annotations the hook reads itself.
const (
	AnnExpose = hooks.MetaPrefix + "expose" // "8080:80,127.0.0.1:8443:443/tcp"
	// AnnTenant is the tenant the container asks for. Whoever creates the
	// container sets it, so the daemon gives that tenant only when one of
	// the tenant's selectors matches the container (the annotation is also
	// metadata a selector can match); otherwise the container stays in the
	// default tenant and the attachment's problems say so.
	AnnTenant = hooks.MetaPrefix + "tenant"
)

// IfName is the interface name of the hook's attachments, which have no
// interface of their own.
const IfName = "oci"
