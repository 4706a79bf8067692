package manifest

import (
	"fmt"
	"net/netip"
	"path"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/config"
)

// The schema's checks: what a document must say to mean anything. Checks
// that need the daemon's model (addresses and durations of frontends and
// servers, backend references, bind conflicts, namespaces and tenants the
// daemon already has) are the daemon's validator's, which positions its
// errors with Set.Where.

// nameRule says the metadata.name rule (hooks.ValidName) in words.
const nameRule = `names are 1 to 255 characters of A-Z a-z 0-9 . _ : - and not "." or ".."`

// objectNameRule is the rule of frontend, backend and server names, the
// HAProxy-style files' rule (sidecar/config).
const objectNameRule = "names are made of A-Z a-z 0-9 . _ : -"

func validObjectName(s string) bool { return s != "" && hooks.SanitizeName(s) == s }

// at is where path was read, for an error about it.
func (d *decoder) at(path string) Pos { return d.set.Where(path) }

// need reports a field missing in the value at path.
func (d *decoder) need(path, format string, args ...any) {
	d.probs.add(d.at(path), "%s: %s", d.what(path), fmt.Sprintf(format, args...))
}

// fail reports a problem of the value at path: "FIELD: what; to do",
// unless the value was refused already.
func (d *decoder) fail(path, format string, args ...any) {
	if d.bad[path] {
		return
	}
	d.probs.add(d.at(path), "%s: %s", d.what(path), fmt.Sprintf(format, args...))
}

func (d *decoder) checkMeta(kind string, m *Meta, md *yaml.Node) {
	if md == nil || isNull(md) {
		return // reported: metadata is missing
	}
	p := d.prefix + ".metadata"
	switch {
	case m.Name == "":
		d.fail(p+".name", "missing; add name: NAME")
	case !hooks.ValidName(m.Name):
		d.fail(p+".name", "%q is not a valid name; %s", m.Name, nameRule)
	default:
		if first, dup := d.defined[d.prefix]; dup {
			d.fail(p+".name", "%s %q is defined twice (first at %s); rename or remove one", kind, m.Name, first)
		} else {
			d.defined[d.prefix] = d.at(d.prefix)
		}
	}
	switch {
	case kind == KindTenant && m.Tenant != "":
		d.fail(p+".tenant", "a Tenant belongs to no tenant; remove metadata.tenant")
	case kind != KindTenant && m.Tenant == "":
		d.need(p, "tenant is missing; add tenant: NAME, the Tenant this %s belongs to", kind)
	case kind != KindTenant && !hooks.ValidName(m.Tenant):
		d.fail(p+".tenant", "%q is not a valid tenant name; %s", m.Tenant, nameRule)
	}
}

func (d *decoder) checkTenant(t *Tenant) {
	p := d.prefix + ".spec"
	s := &t.Spec
	seen := map[string]string{}
	for i, ns := range s.Namespaces {
		q := fmt.Sprintf("%s.namespaces[%d]", p, i)
		switch {
		case ns.Name == "":
			d.need(q, "name is missing; add name: NAME (the namespace's name under the netns directory)")
		case !hooks.ValidName(ns.Name):
			d.fail(q+".name", "%q is not a valid namespace name; %s", ns.Name, hooks.NameRule)
		case seen[ns.Name] != "":
			d.fail(q+".name", "namespace %q is listed twice (first at %s); remove one", ns.Name, seen[ns.Name])
		default:
			seen[ns.Name] = d.at(q + ".name").String()
		}
		if ns.Path != "" && !strings.HasPrefix(ns.Path, "/") {
			d.fail(q+".path", "%q is not an absolute path; write the path of a namespace file, e.g. /run/netns/NAME or /proc/PID/ns/net, or leave path out", ns.Path)
		}
	}
	for i := range s.Select {
		d.checkSelector(&s.Select[i], fmt.Sprintf("%s.select[%d]", p, i), true)
	}
	for _, l := range []struct {
		field string
		ids   []string
	}{{"groups", s.Access.Groups}, {"users", s.Access.Users}} {
		for i, id := range l.ids {
			if id == "" || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == ':' || r == 0x7f }) {
				d.fail(fmt.Sprintf("%s.access.%s[%d]", p, l.field, i), "%q is not a unix %s name; write a name or a numeric id", id, strings.TrimSuffix(l.field, "s"))
			}
		}
	}
	for i, tp := range s.Proxy.TrustedProxies {
		if _, err := config.ParseTrustedProxy(tp); err != nil {
			d.fail(fmt.Sprintf("%s.proxy.trustedProxies[%d]", p, i), "%s", err)
		}
	}
	for _, l := range []struct {
		field string
		v     int
	}{{"maxConnections", s.Limits.MaxConnections}, {"maxListeners", s.Limits.MaxListeners}, {"maxExposedPorts", s.Limits.MaxExposedPorts}} {
		if l.v < 0 {
			d.fail(p+".limits."+l.field, "%d is negative; write 0 (no cap) or more", l.v)
		}
	}
	frontends := map[string]string{}
	for i, f := range s.Frontends {
		q := fmt.Sprintf("%s.frontends[%d]", p, i)
		d.impliedTenant(q, t.Meta.Name, &s.Frontends[i])
		d.checkObjectName(q, "frontend", f.Name, frontends)
		if len(f.Binds) == 0 {
			d.need(q, "binds are missing; add binds: [{addr: IP:PORT}]")
		}
		for j, b := range f.Binds {
			if b.Addr == "" {
				d.need(fmt.Sprintf("%s.binds[%d]", q, j), "addr is missing; add addr: IP:PORT")
			}
		}
		if f.Backend == "" {
			d.need(q, "backend is missing; add backend: NAME, a backend of this tenant")
		}
	}
	backends := map[string]string{}
	for i := range s.Backends {
		b := &s.Backends[i]
		q := fmt.Sprintf("%s.backends[%d]", p, i)
		d.checkObjectName(q, "backend", b.Name, backends)
		d.impliedTenant(q, t.Meta.Name, b)
		servers := map[string]string{}
		for j := range b.Servers {
			sv := &b.Servers[j]
			qs := fmt.Sprintf("%s.servers[%d]", q, j)
			d.checkObjectName(qs, "server", sv.Name, servers)
			if sv.Addr == "" {
				d.need(qs, "addr is missing; add addr: IP:PORT")
			}
			if sv.Backend != "" && sv.Backend != b.Name {
				d.fail(qs+".backend", "the server is listed under backend %q but names backend %q; remove backend:", b.Name, sv.Backend)
			}
			sv.Backend = "" // implied by where the server is listed
		}
	}
}

// impliedTenant checks and clears the "tenant" field of an API object
// (*api.Frontend, *api.Backend; read-only in the API, printed by get): in
// a manifest the object's tenant is the Tenant it is listed under. Found
// by its JSON name, like every field here.
func (d *decoder) impliedTenant(q, tenant string, obj any) {
	v := reflect.ValueOf(obj).Elem()
	f, ok := lookupField(v.Type(), "tenant")
	if !ok || f.typ.Kind() != reflect.String {
		return
	}
	fv := v.FieldByIndex(f.index)
	if got := fv.String(); got != "" && got != tenant {
		d.fail(q+".tenant", "the object is listed under Tenant %q but names tenant %q; remove tenant:", tenant, got)
	}
	fv.SetString("")
}

// checkObjectName checks the name of a frontend, backend or server and
// that it is unique among seen (name → where first defined).
func (d *decoder) checkObjectName(q, what, name string, seen map[string]string) {
	switch {
	case name == "":
		d.need(q, "name is missing; add name: NAME")
	case !validObjectName(name):
		d.fail(q+".name", "%q is not a valid %s name; %s", name, what, objectNameRule)
	case seen[name] != "":
		d.fail(q+".name", "%s %q is defined twice (first at %s); rename or remove one", what, name, seen[name])
	default:
		seen[name] = d.at(q + ".name").String()
	}
}

// checkSelector checks the globs of a selector; a tenant's selector must
// say something (an empty one would claim every container of the host).
func (d *decoder) checkSelector(s *Selector, q string, nonEmpty bool) {
	if s.Source != "" && s.Source != hooks.SourceCNI && s.Source != hooks.SourceOCI {
		d.fail(q+".source", "%q is not a source; write cni or oci, or leave source out (both)", s.Source)
	}
	for _, g := range []struct{ field, glob string }{
		{"network", s.Network}, {"podNamespace", s.PodNamespace}, {"podName", s.PodName}, {"containerName", s.ContainerName},
	} {
		d.checkGlob(q+"."+g.field, g.glob)
	}
	for _, m := range []struct {
		field string
		kv    map[string]string
	}{{"labels", s.Labels}, {"annotations", s.Annotations}} {
		for k, v := range m.kv {
			if k == "" {
				d.fail(q+"."+m.field, "a key is empty; write the %s's key", strings.TrimSuffix(m.field, "s"))
			}
			d.checkGlob(q+"."+m.field+"["+k+"]", v)
		}
	}
	if nonEmpty && s.isEmpty() {
		d.fail(q, "an empty selector would claim every container of the host; give at least one of source, network, podNamespace, podName, containerName, labels, annotations")
	}
}

func (s *Selector) isEmpty() bool {
	return s.Source == "" && s.Network == "" && s.PodNamespace == "" && s.PodName == "" && s.ContainerName == "" &&
		len(s.Labels) == 0 && len(s.Annotations) == 0
}

func (d *decoder) checkGlob(q, glob string) {
	if _, err := path.Match(glob, ""); err != nil {
		d.fail(q, "%q is not a valid pattern; use * ? and [a-z] (escape with \\), and close every [", glob)
	}
}

// checkPort checks a port field: 1-65535, or 0 = not set unless required.
func (d *decoder) checkPort(q string, port int, required bool) {
	switch {
	case port == 0 && required:
		d.fail(q, "missing; give a port 1-65535")
	case port < 0 || port > 65535:
		d.fail(q, "%d is not a port; give a port 1-65535", port)
	}
}

// ParsePortRange parses "LOW-HIGH" (1 <= LOW <= HIGH <= 65535).
func ParsePortRange(s string) (low, high int, err error) {
	a, b, ok := strings.Cut(s, "-")
	low, err1 := strconv.Atoi(strings.TrimSpace(a))
	high, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || low < 1 || high > 65535 || low > high {
		return 0, 0, fmt.Errorf("%q is not a port range; write LOW-HIGH with 1 <= LOW <= HIGH <= 65535, e.g. 30000-30999", s)
	}
	return low, high, nil
}

func (d *decoder) checkExposure(x *Exposure) {
	p := d.prefix + ".spec"
	s := &x.Spec
	d.checkSelector(&s.Select, p+".select", false)
	d.checkPort(p+".containerPort", s.ContainerPort, true)
	switch s.Target {
	case "", TargetIP, TargetLoopback:
	default:
		d.fail(p+".target", "%q is not a target; write ip (the container's address) or loopback (127.0.0.1 in its namespace)", s.Target)
	}
	if s.HostAddr != "" {
		if a, err := netip.ParseAddr(s.HostAddr); err != nil || a.Zone() != "" {
			d.fail(p+".hostAddr", "%q is not an IP address; write e.g. 0.0.0.0, 192.0.2.1 or ::", s.HostAddr)
		}
	}
	d.checkPort(p+".hostPort", s.HostPort, false)
	if s.PortRange != "" {
		if _, _, err := ParsePortRange(s.PortRange); err != nil {
			d.fail(p+".portRange", "%v", err)
		}
	}
	switch {
	case s.HostPort != 0 && s.PortRange != "":
		d.fail(p+".portRange", "give hostPort or portRange, not both")
	case s.HostPort == 0 && s.PortRange == "":
		d.need(p, "the host port is missing; give hostPort: PORT (one port) or portRange: LOW-HIGH (one port of it per container)")
	}
	if s.MaxConn < 0 {
		d.fail(p+".maxconn", "%d is negative; write 0 (no cap) or more", s.MaxConn)
	}
}

// Targets of an Exposure.
const (
	TargetIP       = "ip"
	TargetLoopback = "loopback"
)

func (d *decoder) checkService(s *Service) {
	p := d.prefix + ".spec"
	sp := &s.Spec
	d.checkSelector(&sp.Select, p+".select", false)
	d.checkAddrPort(p+".listen", "listen", sp.Listen, "the address inside each container", "127.0.0.1:5432")
	d.checkAddrPort(p+".target.addr", "target.addr", sp.Target.Addr, "the service's address", "10.0.0.5:5432")
	if ns := sp.Target.Namespace; ns != "" && !hooks.ValidName(ns) {
		d.fail(p+".target.namespace", "%q is not a valid namespace name; %s", ns, hooks.NameRule)
	}
	if v := sp.Target.SendProxy; v != 0 && v != 1 && v != 2 {
		d.fail(p+".target.sendProxy", "%d is not a PROXY version; write 1 or 2, or leave it out (none)", v)
	}
}

func (d *decoder) checkAddrPort(q, field, s, what, example string) {
	if s == "" {
		d.probs.add(d.at(q), "%s is missing; add %s: IP:PORT, %s, e.g. %s", field, field[strings.LastIndexByte(field, '.')+1:], what, example)
		return
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		d.fail(q, "%q is not IP:PORT with a port 1-65535; write %s, e.g. %s", s, what, example)
	}
}

// checkSet checks what spans documents: a static namespace belongs to at
// most one tenant of the Set.
func (d *decoder) checkSet() {
	owner := map[string]string{}
	for _, t := range d.set.Tenants {
		for i, ns := range t.Spec.Namespaces {
			if ns.Name == "" {
				continue
			}
			q := fmt.Sprintf("%s/%s.spec.namespaces[%d].name", KindTenant, t.Meta.Name, i)
			if o, ok := owner[ns.Name]; ok && o != t.Meta.Name {
				d.probs.add(d.at(q), "namespace %q belongs to tenant %q already; a namespace belongs to at most one tenant", ns.Name, o)
				continue
			}
			owner[ns.Name] = t.Meta.Name
		}
	}
}
