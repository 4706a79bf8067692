package sidecar

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// exposure is the frontend and backend that publish one TCP port mapping
// of an attachment: a listener on hostIP:hostPort in the daemon's
// namespace that forwards into the container's namespace.
type exposure struct {
	key      api.AttachmentKey
	mapping  api.PortMapping
	bind     config.Bind
	frontend *config.Frontend
	backend  *config.Backend
	// rule is the Exposure or Service manifest that made it ("": the
	// attachment's own port mapping); lo..hi its port range (0: fixed).
	rule   string
	lo, hi int
	src    *rule
	// service, for a Service rule: the listener inside the container.
	service *api.ServiceListener
}

// attachmentNamespace is the registry name of an attachment's namespace:
// the name the daemon gave it (see assignNames), or the one it asks for.
func attachmentNamespace(a api.Attachment) string {
	if a.Name != "" {
		return a.Name
	}
	return requestedName(a)
}

// maxExposureName bounds the names of an exposure's frontend and backend.
const maxExposureName = 200

// exposureName is "<namespace>-<hostPort>", the namespace cut so that the
// port, which tells the exposures of one attachment apart, survives.
func exposureName(ns string, hostPort int) string {
	return hooks.WithSuffix(hooks.SanitizeName(ns), strconv.Itoa(hostPort), maxExposureName)
}

// exposuresFor turns an attachment's port mappings into exposures of
// tenant's. UDP and other protocols are reported, not proxied.
func exposuresFor(a api.Attachment, tenant string) ([]exposure, []string) {
	var out []exposure
	var problems []string
	ns := attachmentNamespace(a)
	target := containerAddr(a)
	sendProxy := 0
	switch a.Metadata[hooks.MetaSendProxy] {
	case "v1", "1":
		sendProxy = 1
	case "v2", "2":
		sendProxy = 2
	}
	for _, pm := range a.PortMappings {
		proto := strings.ToLower(pm.Protocol)
		if proto != "" && proto != "tcp" {
			problems = append(problems, fmt.Sprintf("%s mapping %d->%d not proxied: nsproxy handles TCP only; keep the portmap plugin for %s",
				proto, pm.HostPort, pm.ContainerPort, proto))
			continue
		}
		if pm.HostPort < 1 || pm.HostPort > 65535 || pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
			problems = append(problems, fmt.Sprintf("mapping %d->%d: ports must be 1..65535", pm.HostPort, pm.ContainerPort))
			continue
		}
		// No hostIP: every address of both families, as podman and Docker
		// publish -p, on one dual-stack socket ([::] v4v6); 0.0.0.0 or ::
		// given explicitly listen on that family only.
		host, v4v6 := netip.IPv6Unspecified(), true
		if a.Metadata[hooks.MetaHostPorts] == "adopt" {
			host, v4v6 = netip.IPv4Unspecified(), false // whatever the runtime bound
		}
		if pm.HostIP != "" {
			v4v6 = false
			h, err := netip.ParseAddr(pm.HostIP)
			if err != nil {
				problems = append(problems, fmt.Sprintf("mapping %d->%d: hostIP %q is not an IP", pm.HostPort, pm.ContainerPort, pm.HostIP))
				continue
			}
			host = h
		}
		name := exposureName(ns, pm.HostPort)
		pos := config.Pos{File: "attachment " + a.ContainerID + "/" + a.IfName}
		bind := config.Bind{Pos: pos, Addr: netip.AddrPortFrom(host, uint16(pm.HostPort)), V4V6: v4v6,
			V6Only: pm.HostIP != "" && host.Is6() && host.IsUnspecified()}
		if a.Metadata[hooks.MetaHostPorts] == "adopt" {
			bind.AdoptFrom = a.ContainerID
		} else {
			// A port another program holds stays its own, also after it
			// exits: sshd restarted on :22 must not find a container there.
			bind.NoTakeover = true
		}
		e := exposure{key: a.AttachmentKey, mapping: pm, bind: bind}
		e.frontend, e.backend = forwarding(name, pos, tenant, bind, 0,
			config.Server{Name: "c", Addr: target, Port: uint16(pm.ContainerPort), Namespace: ns, SendProxy: sendProxy})
		out = append(out, e)
	}
	return out, problems
}

// forwarding is the frontend and backend an exposure stands for: bind,
// forwarding to one server s (name, address, port, namespace, PROXY) with
// the built-in default-server's checks and weight, as a file's server has.
func forwarding(name string, pos config.Pos, tenant string, bind config.Bind, maxConn int, s config.Server) (*config.Frontend, *config.Backend) {
	def := config.BuiltinDefaults()
	srv := def.Server
	srv.Name, srv.Pos, srv.Addr, srv.Port, srv.PortMode = s.Name, pos, s.Addr, s.Port, config.PortFixed
	srv.Namespace, srv.SendProxy = s.Namespace, s.SendProxy
	fe := &config.Frontend{Name: name, Pos: pos, Tenant: tenantField(tenant), Binds: []config.Bind{bind},
		DefaultBackend: name, MaxConn: maxConn}
	be := &config.Backend{Name: name, Pos: pos, Tenant: tenantField(tenant), Balance: def.Backend.Balance,
		Servers: []*config.Server{&srv}}
	return fe, be
}

// tenantField is a tenant as the model's Tenant fields hold it ("" for
// the default tenant, as the files' objects have it).
func tenantField(t string) string {
	if t == netns.DefaultTenant {
		return ""
	}
	return t
}

// ruleExposure is what the Exposure rule r makes for a, of tenant's: a
// listener on r's host address and port (a range rule: port, chosen by the
// plan) forwarding to r's container port in a's namespace.
func ruleExposure(a api.Attachment, tenant string, r rule, port int) exposure {
	ns := attachmentNamespace(a)
	target := containerAddr(a)
	if r.loopback {
		target = netip.MustParseAddr("127.0.0.1")
	}
	name := hooks.WithSuffix(hooks.SanitizeName(ns), hooks.SanitizeName(r.name)+"-"+strconv.Itoa(port), maxExposureName)
	pos := config.Pos{File: "Exposure/" + r.name + " for " + a.ContainerID + "/" + a.IfName}
	bind := config.Bind{Pos: pos, Addr: netip.AddrPortFrom(r.hostAddr, uint16(port)), NoTakeover: true}
	pm := api.PortMapping{HostPort: port, ContainerPort: r.containerPort, Protocol: "tcp", HostIP: r.hostAddr.String()}
	e := exposure{key: a.AttachmentKey, mapping: pm, bind: bind, rule: r.name, lo: r.lo, hi: r.hi, src: &r}
	e.frontend, e.backend = forwarding(name, pos, tenant, bind, r.maxConn,
		config.Server{Name: "c", Addr: target, Port: uint16(r.containerPort), Namespace: ns, SendProxy: r.sendProxy})
	return e
}

// serviceExposure is what the Service rule r makes for a: a listener
// inside a's namespace at r.listen forwarding to r.target (on the host or
// in a namespace of a's tenant, checked when the rule was indexed).
func serviceExposure(a api.Attachment, tenant string, r rule) exposure {
	ns := attachmentNamespace(a)
	name := hooks.WithSuffix(hooks.SanitizeName(ns), "svc-"+hooks.SanitizeName(r.name), maxExposureName)
	pos := config.Pos{File: "Service/" + r.name + " for " + a.ContainerID + "/" + a.IfName}
	bind := config.Bind{Pos: pos, Addr: r.listen, Namespace: ns, NoTakeover: true}
	e := exposure{key: a.AttachmentKey, bind: bind, rule: r.name,
		service: &api.ServiceListener{Rule: r.name, Listen: r.listen.String(), Target: r.target.String(),
			TargetNamespace: r.targetNS, Frontend: name}}
	e.frontend, e.backend = forwarding(name, pos, tenant, bind, 0,
		config.Server{Name: "s", Addr: r.target.Addr(), Port: r.target.Port(), Namespace: r.targetNS, SendProxy: r.targetPxy})
	return e
}

// preferredPort is the first port a range rule offers a: derived from its
// key and the rule, so that it is the same after a restart without being
// written anywhere. Only a port taken from the first choice is persisted
// (State.Ports).
func preferredPort(k api.AttachmentKey, rule string, lo, hi int) int {
	h := fnv.New64a()
	h.Write([]byte(k.ContainerID + "\x00" + k.IfName + "\x00" + rule))
	return lo + int(h.Sum64()%uint64(hi-lo+1))
}

// listenerConflicts maps the frontends whose bind found its address in use
// by another program to that address.
func (d *Daemon) listenerConflicts() map[string]netip.AddrPort {
	out := map[string]netip.AddrPort{}
	for _, l := range d.engine.Listeners() {
		if l.Conflict {
			out[l.Frontend] = l.Bind.Addr
		}
	}
	return out
}

// exposedNames are the frontends of the exposures in s, for the API's
// Exposed.
func (s attachmentStatus) exposedNames() []string {
	var out []string
	for _, x := range s.exposures {
		out = append(out, x.Frontend)
	}
	return out
}

// withConflicts moves the exposures whose host port another program holds
// (the engine found it in use and will not retry) from exposed to problems.
func withConflicts(s attachmentStatus, conflicts map[string]netip.AddrPort) attachmentStatus {
	out := attachmentStatus{problems: s.problems, tenant: s.tenant}
	for _, sv := range s.services {
		addr, ok := conflicts[sv.Frontend]
		if !ok {
			out.services = append(out.services, sv)
			continue
		}
		out.problems = append(out.problems, fmt.Sprintf("Service %s: %s inside the container: conflict: in use by a program "+
			"of the container; not served: free the address, or change the Service's listen", sv.Rule, addr))
	}
	for _, x := range s.exposures {
		addr, ok := conflicts[x.Frontend]
		if !ok {
			out.exposures = append(out.exposures, x)
			continue
		}
		out.problems = append(out.problems, fmt.Sprintf("host port %s: conflict: in use by another program; not exposed and "+
			"never taken over, also after that program exits: free the port, then remove and re-add the container's network "+
			"(CNI DEL and ADD, e.g. podman stop and start)", addr))
	}
	return out
}

// containerAddr is where exposed ports are sent inside the container's
// namespace: its first IPv4 address, else its first address, else (or
// when asked) 127.0.0.1, which a service bound to loopback still answers.
func containerAddr(a api.Attachment) netip.Addr {
	if a.Metadata[hooks.MetaTarget] == "loopback" {
		return netip.MustParseAddr("127.0.0.1")
	}
	var first netip.Addr
	for _, s := range a.IPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			p, perr := netip.ParsePrefix(s)
			if perr != nil {
				continue
			}
			ip = p.Addr()
		}
		if ip.Is4() {
			return ip
		}
		if !first.IsValid() {
			first = ip
		}
	}
	if first.IsValid() {
		return first
	}
	return netip.MustParseAddr("127.0.0.1")
}

// exposureLabel names x in a problem. Built only for a problem:
// formatting it for every live exposure cost O(live) per write.
func exposureLabel(x exposure) string {
	switch {
	case x.service != nil:
		return fmt.Sprintf("Service %s: %s inside the container", x.rule, x.bind.Addr)
	case x.rule != "":
		return fmt.Sprintf("Exposure %s: host port %s", x.rule, x.bind.Addr)
	}
	return fmt.Sprintf("host port %s", x.bind.Addr)
}

// portTaken is the problem of exposure x, left out: its port is taken.
func portTaken(x exposure) string {
	return exposureLabel(x) + " is already in use by another frontend or container; not exposed"
}

// nameTaken is the problem of exposure x, left out: its name is taken.
func nameTaken(x exposure) string {
	return fmt.Sprintf("%s: name %q is taken; not exposed", exposureLabel(x), x.frontend.Name)
}
