package sidecar

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// tenantIndex is the tenant manifests of the state, checked and indexed
// for the plan: who owns which static namespace, whose selectors claim
// attachments, which rules apply to a tenant's attachments. It is built
// once per manifest change (tenantIndexFor), never per attachment write.
type tenantIndex struct {
	from    manifest.Set
	tenants map[string]*manifest.Tenant
	nsOwner map[string]string // static namespace name → tenant
	nsPath  map[string]string // static namespace name → path ("" = netns dir)
	claims  []claim           // every selector of every tenant, in document order
	rules   map[string][]rule // tenant → its Exposure and Service rules
	err     error             // the manifests' own problems, with positions
	// staticIDs are the static namespaces' identities, read by the first
	// plan that found them (staticIdentities); plans run under the
	// daemon's lock.
	staticIDs map[string]netns.Identity
}

type claim struct {
	tenant string
	sel    manifest.Selector
}

// rule is one Exposure or Service document, checked.
type rule struct {
	kind   string // manifest.KindExposure or manifest.KindService
	name   string
	tenant string
	sel    manifest.Selector
	// Exposure
	containerPort int
	loopback      bool
	hostAddr      netip.Addr
	hostPort      int
	lo, hi        int // portRange
	sendProxy     int
	maxConn       int
	// Service
	listen    netip.AddrPort
	target    netip.AddrPort
	targetNS  string
	targetPxy int
}

// tenantError is a manifest problem at the field path (KIND/NAME.field):
// where the decoder read it (FILE:LINE:COLUMN), else the path, and what
// to do. Restore blames the document (config.Pos.Object up to the first
// dot) and drops it.
func tenantError(set *manifest.Set, path, msg string) error {
	pos := origin{kind: config.OriginManifest, object: path, set: set}.pos("")
	return &config.Error{Pos: pos, Msg: msg, Err: config.ErrInvalid}
}

// sameSet: b is a unchanged (an apply replaces the set's slices whole).
func sameSet(a, b manifest.Set) bool {
	return sameSlice(a.Tenants, b.Tenants) && sameSlice(a.Exposures, b.Exposures) && sameSlice(a.Services, b.Services)
}

// tenantIndexFor is the index of set, reusing prev when set is unchanged.
func tenantIndexFor(prev *tenantIndex, set manifest.Set) *tenantIndex {
	if prev != nil && sameSet(prev.from, set) {
		return prev
	}
	return buildTenantIndex(set)
}

func validGlob(g string) bool {
	_, err := path.Match(g, "")
	return err == nil
}

func checkSelector(set *manifest.Set, at string, s manifest.Selector) []error {
	var errs []error
	switch s.Source {
	case "", hooks.SourceCNI, hooks.SourceOCI:
	default:
		errs = append(errs, tenantError(set, at+".source", fmt.Sprintf("source %q: use cni or oci (or leave it out for both)", s.Source)))
	}
	for field, g := range map[string]string{"network": s.Network, "podNamespace": s.PodNamespace,
		"podName": s.PodName, "containerName": s.ContainerName} {
		if !validGlob(g) {
			errs = append(errs, tenantError(set, at+"."+field, fmt.Sprintf("%s %q is not a valid glob (path.Match syntax: * ? [a-z])", field, g)))
		}
	}
	return errs
}

func buildTenantIndex(set manifest.Set) *tenantIndex {
	ix := &tenantIndex{from: set, tenants: map[string]*manifest.Tenant{}, nsOwner: map[string]string{},
		nsPath: map[string]string{}, rules: map[string][]rule{}}
	var errs []error
	for i := range set.Tenants {
		t := &set.Tenants[i]
		doc := "Tenant/" + t.Meta.Name
		if !hooks.ValidName(t.Meta.Name) {
			errs = append(errs, tenantError(&set, doc+".metadata.name", fmt.Sprintf("tenant name %q: use [A-Za-z0-9._:-], 1 to 255 characters", t.Meta.Name)))
			continue
		}
		if ix.tenants[t.Meta.Name] != nil {
			errs = append(errs, tenantError(&set, doc, fmt.Sprintf("tenant %q is defined twice: keep one document", t.Meta.Name)))
			continue
		}
		ix.tenants[t.Meta.Name] = t
		for j, n := range t.Spec.Namespaces {
			at := fmt.Sprintf("%s.spec.namespaces[%d]", doc, j)
			switch owner, taken := ix.nsOwner[n.Name]; {
			case !hooks.ValidName(n.Name):
				errs = append(errs, tenantError(&set, at+".name", fmt.Sprintf("namespace name %q: use [A-Za-z0-9._:-]", n.Name)))
			case n.Path != "" && !strings.HasPrefix(n.Path, "/"):
				errs = append(errs, tenantError(&set, at+".path", fmt.Sprintf("path %q must be absolute", n.Path)))
			case taken:
				errs = append(errs, tenantError(&set, at+".name", fmt.Sprintf("namespace %q already belongs to tenant %q: a namespace belongs to at most one tenant", n.Name, owner)))
			default:
				ix.nsOwner[n.Name], ix.nsPath[n.Name] = t.Meta.Name, n.Path
			}
		}
		for j, s := range t.Spec.Select {
			errs = append(errs, checkSelector(&set, fmt.Sprintf("%s.spec.select[%d]", doc, j), s)...)
			ix.claims = append(ix.claims, claim{tenant: t.Meta.Name, sel: s})
		}
	}
	owner := func(doc string, m manifest.Meta) bool {
		if ix.tenants[m.Tenant] == nil {
			errs = append(errs, tenantError(&set, doc+".metadata.tenant", fmt.Sprintf("tenant %q is not defined: name a Tenant document of the same apply", m.Tenant)))
			return false
		}
		return true
	}
	for _, x := range set.Exposures {
		doc := "Exposure/" + x.Meta.Name
		if !owner(doc, x.Meta) {
			continue
		}
		r, rerrs := exposureRule(&set, doc, x)
		errs = append(errs, rerrs...)
		if len(rerrs) == 0 {
			ix.rules[r.tenant] = append(ix.rules[r.tenant], r)
		}
	}
	for _, s := range set.Services {
		doc := "Service/" + s.Meta.Name
		if !owner(doc, s.Meta) {
			continue
		}
		r, rerrs := serviceRule(&set, doc, s, ix.nsOwner)
		errs = append(errs, rerrs...)
		if len(rerrs) == 0 {
			ix.rules[r.tenant] = append(ix.rules[r.tenant], r)
		}
	}
	ix.err = errors.Join(errs...)
	return ix
}

func exposureRule(set *manifest.Set, doc string, x manifest.Exposure) (rule, []error) {
	var errs []error
	sp := doc + ".spec"
	r := rule{kind: manifest.KindExposure, name: x.Meta.Name, tenant: x.Meta.Tenant, sel: x.Spec.Select,
		containerPort: x.Spec.ContainerPort, hostPort: x.Spec.HostPort, maxConn: x.Spec.MaxConn}
	errs = append(errs, checkSelector(set, sp+".select", x.Spec.Select)...)
	if x.Spec.ContainerPort < 1 || x.Spec.ContainerPort > 65535 {
		errs = append(errs, tenantError(set, sp+".containerPort", fmt.Sprintf("containerPort %d: use 1..65535", x.Spec.ContainerPort)))
	}
	switch x.Spec.Target {
	case "", "ip":
	case "loopback":
		r.loopback = true
	default:
		errs = append(errs, tenantError(set, sp+".target", fmt.Sprintf("target %q: use ip or loopback", x.Spec.Target)))
	}
	r.hostAddr = netip.IPv4Unspecified()
	if x.Spec.HostAddr != "" {
		a, err := netip.ParseAddr(x.Spec.HostAddr)
		if err != nil || a.Zone() != "" {
			errs = append(errs, tenantError(set, sp+".hostAddr", fmt.Sprintf("hostAddr %q is not an IP address", x.Spec.HostAddr)))
		}
		r.hostAddr = a
	}
	switch {
	case (x.Spec.HostPort != 0) == (x.Spec.PortRange != ""):
		errs = append(errs, tenantError(set, sp, "give exactly one of hostPort (a fixed port) and portRange (LOW-HIGH, one port per container)"))
	case x.Spec.HostPort != 0 && (x.Spec.HostPort < 1 || x.Spec.HostPort > 65535):
		errs = append(errs, tenantError(set, sp+".hostPort", fmt.Sprintf("hostPort %d: use 1..65535", x.Spec.HostPort)))
	case x.Spec.PortRange != "":
		lo, hi, ok := parsePortRange(x.Spec.PortRange)
		if !ok {
			errs = append(errs, tenantError(set, sp+".portRange", fmt.Sprintf("portRange %q: use LOW-HIGH with 1 <= LOW <= HIGH <= 65535", x.Spec.PortRange)))
		}
		r.lo, r.hi = lo, hi
	}
	if x.Spec.SendProxyV2 {
		r.sendProxy = 2
	}
	if x.Spec.MaxConn < 0 {
		errs = append(errs, tenantError(set, sp+".maxconn", "maxconn must be 0 (no cap) or more"))
	}
	return r, errs
}

func parsePortRange(s string) (int, int, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

func serviceRule(set *manifest.Set, doc string, s manifest.Service, nsOwner map[string]string) (rule, []error) {
	var errs []error
	sp := doc + ".spec"
	r := rule{kind: manifest.KindService, name: s.Meta.Name, tenant: s.Meta.Tenant, sel: s.Spec.Select,
		targetNS: s.Spec.Target.Namespace, targetPxy: s.Spec.Target.SendProxy}
	errs = append(errs, checkSelector(set, sp+".select", s.Spec.Select)...)
	l, err := netip.ParseAddrPort(s.Spec.Listen)
	if err != nil || l.Port() == 0 {
		errs = append(errs, tenantError(set, sp+".listen", fmt.Sprintf("listen %q: use IP:PORT (the address inside the container, e.g. 127.0.0.1:5432)", s.Spec.Listen)))
	}
	r.listen = l
	t, err := netip.ParseAddrPort(s.Spec.Target.Addr)
	if err != nil || t.Port() == 0 || t.Addr().IsUnspecified() {
		errs = append(errs, tenantError(set, sp+".target.addr", fmt.Sprintf("target addr %q: use IP:PORT of the service", s.Spec.Target.Addr)))
	}
	r.target = t
	if n := s.Spec.Target.Namespace; n != "" {
		switch owner := nsOwner[n]; owner {
		case s.Meta.Tenant:
		case "":
			errs = append(errs, tenantError(set, sp+".target.namespace", fmt.Sprintf("namespace %q is not a namespace of tenant %q: list it in the tenant's spec.namespaces, or leave namespace out for the host", n, s.Meta.Tenant)))
		default:
			errs = append(errs, tenantError(set, sp+".target.namespace", fmt.Sprintf("namespace %q belongs to tenant %q: a service reaches only its own tenant's namespaces (tenant %q)", n, owner, s.Meta.Tenant)))
		}
	}
	if r.targetPxy < 0 || r.targetPxy > 2 {
		errs = append(errs, tenantError(set, sp+".target.sendProxy", fmt.Sprintf("sendProxy %d: use 0, 1 or 2", r.targetPxy)))
	}
	return r, errs
}

// ownerOf is the tenant a belongs to, the tenants whose claims overlap on
// a (two or more, sorted; nil when they do not), and a problem when a's
// owner is not the one its claims ask for. The claims are the tenants
// whose selectors match, and the tenant a CNI network asks for (its
// "tenant", which root writes in the conflist; "default" asks for
// nothing) when that tenant has no selectors of its own (no manifest, or
// one without spec.select: the network's word, as before manifests). A
// tenant with selectors is joined only through them. The OCI hook's
// tenant is an annotation that whoever creates the container sets: it
// joins no tenant on its own word (hookClaimRefused), only through a
// selector of the tenant.
// Two different claims: a belongs to the default tenant (today's
// behaviour) and the overlap is reported, never resolved.
func (ix *tenantIndex) ownerOf(a api.Attachment) (string, []string, string) {
	var by []string
	for _, c := range ix.claims {
		if !slices.Contains(by, c.tenant) && c.sel.Matches(a) {
			by = append(by, c.tenant)
		}
	}
	var refused string
	if t := tenantOr(a.Tenant); t != netns.DefaultTenant && !slices.Contains(by, t) {
		switch mt := ix.tenants[t]; {
		case a.Source == api.SourceOCI:
			refused = hookClaimRefused(t)
		case mt == nil || len(mt.Spec.Select) == 0:
			by = append(by, t)
		default:
			refused = fmt.Sprintf("the hook asks for tenant %s, whose spec.select does not match this container: not given "+
				"(a tenant with selectors is joined through them only)", t)
		}
	}
	switch len(by) {
	case 0:
		return netns.DefaultTenant, nil, refused
	case 1:
		return by[0], nil, refused
	}
	slices.Sort(by)
	overlap := fmt.Sprintf("claimed by tenants %s (selectors or the hook's tenant overlap): "+
		"it belongs to none of them and stays in the default tenant; change the selectors so that one tenant matches",
		strings.Join(by, ", "))
	if refused != "" {
		overlap += "; " + refused
	}
	return netns.DefaultTenant, by, overlap
}

// hookClaimRefused is the problem of an OCI container whose annotation
// nsproxy.io/tenant asks for tenant t that no selector of t gives it.
func hookClaimRefused(t string) string {
	return fmt.Sprintf("the OCI annotation nsproxy.io/tenant asks for tenant %s, whose spec.select does not match this container: "+
		"not given, it stays in the default tenant (whoever creates a container sets its annotations; a tenant takes OCI "+
		"containers through a selector, e.g. source: oci with annotations: {nsproxy.io/tenant: %s} and what else identifies them)", t, t)
}

// kernelNS is a kernel namespace as the identity index keys it: device
// and inode, as netns handles compare them.
type kernelNS struct{ dev, ino uint64 }

// nsHolder is who holds a kernel namespace in a plan: its tenant and the
// name that took it first.
type nsHolder struct{ tenant, name string }

// identityIndex maps the kernel namespaces a plan has given out to their
// tenant: a tenant's static namespaces first, then each attachment in
// state order. A plan builds it in its one pass over the attachments (one
// map operation each; the identity is the exposure cache's, one stat per
// attachment change), so an ADD costs what it did.
type identityIndex map[kernelNS]nsHolder

// staticIdentities is a new identity index holding the static namespaces
// of the tenants. A static namespace's identity is read once per index;
// one that did not exist then is read again at each plan until it does.
func (ix *tenantIndex) staticIdentities(dir string) identityIndex {
	ids := identityIndex{}
	if ix == nil || len(ix.nsOwner) == 0 {
		return ids
	}
	if ix.staticIDs == nil {
		ix.staticIDs = make(map[string]netns.Identity, len(ix.nsOwner))
	}
	for name, tenant := range ix.nsOwner {
		id, ok := ix.staticIDs[name]
		if !ok {
			p := ix.nsPath[name]
			if p == "" {
				p = path.Join(dir, name)
			}
			var err error
			if id, err = netns.StatIdentity(p); err != nil {
				continue
			}
			ix.staticIDs[name] = id
		}
		ids[kernelNS{id.Dev, id.Ino}] = nsHolder{tenant, name}
	}
	return ids
}

// addAPI adds the API namespaces (nsproxy ns add, root's, each of its
// tenant) to the index, after the static namespaces, and returns their
// identities by path for the next plan: each path is stat'ed once while
// it is in the state (a missing one again at each plan).
func (ids identityIndex) addAPI(nss []api.Namespace, prev map[string]netns.Identity, dir string) map[string]netns.Identity {
	if len(nss) == 0 {
		return nil
	}
	next := make(map[string]netns.Identity, len(nss))
	for _, n := range nss {
		p := n.Path
		if p == "" {
			p = path.Join(dir, n.Name)
		}
		id, ok := prev[p]
		if !ok {
			var err error
			if id, err = netns.StatIdentity(p); err != nil {
				continue
			}
		}
		next[p] = id
		ids.claim(id, tenantOr(n.Tenant), n.Name) // the first holder keeps it; an attachment is checked against both
	}
	return next
}

// claim gives the namespace id to name of tenant, or says why not: a
// kernel namespace belongs to at most one tenant, so another tenant's
// (static namespace or earlier attachment) is refused; the same tenant's
// is fine (a pod on two networks). A zero id (the file could not be read)
// claims nothing.
func (ids identityIndex) claim(id netns.Identity, tenant, name string) string {
	if id.Ino == 0 {
		return ""
	}
	k := kernelNS{id.Dev, id.Ino}
	h, ok := ids[k]
	switch {
	case !ok:
		ids[k] = nsHolder{tenant, name}
	case h.tenant != tenant:
		return fmt.Sprintf("its network namespace (%s) is already %s of tenant %s; a namespace belongs to at most one tenant: "+
			"not registered and not exposed for tenant %s (give the container its own network namespace, or "+
			"let one tenant select both)", id, h.name, h.tenant, tenant)
	}
	return ""
}

// limits are tenant's limits (none for the default tenant or a tenant
// without a manifest).
func (ix *tenantIndex) limits(tenant string) manifest.Limits {
	if t := ix.tenants[tenant]; t != nil {
		return t.Spec.Limits
	}
	return manifest.Limits{}
}

// maxConnections are the tenants' limits.maxConnections, for the engine
// (proxy.Spec.TenantMaxConn); nil when no tenant sets one.
func (ix *tenantIndex) maxConnections() map[string]int {
	if ix == nil {
		return nil
	}
	var out map[string]int
	for name, t := range ix.tenants {
		if n := t.Spec.Limits.MaxConnections; n > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[name] = n
		}
	}
	return out
}

// tenantUse counts what each tenant holds during a plan, for its limits;
// the attachment fast path keeps the last plan's and counts on.
type tenantUse map[string]*tenantCount

// tenantCount is one tenant's use: exposed ports (exposures) and
// listeners (its frontends' binds, exposures and service listeners).
type tenantCount struct{ exposed, listeners int }

func (u tenantUse) of(tenant string) *tenantCount {
	c := u[tenant]
	if c == nil {
		c = &tenantCount{}
		u[tenant] = c
	}
	return c
}

func (u tenantUse) add(tenant string, exposed, listeners int) {
	c := u.of(tenant)
	c.exposed += exposed
	c.listeners += listeners
}

// limitProblem is the problem of exposure x of tenant when the tenant's use
// u has reached one of its limits, "" when not. The plan checks them
// after the port and the name, and before it places the exposure: one
// over them takes no port, so it never moves another container's.
func limitProblem(x exposure, tenant string, lim manifest.Limits, u tenantCount) string {
	if x.service == nil && lim.MaxExposedPorts > 0 && u.exposed >= lim.MaxExposedPorts {
		return fmt.Sprintf("%s: tenant %s has reached limits.maxExposedPorts (%d); not exposed: raise the limit or remove exposures",
			exposureLabel(x), tenant, lim.MaxExposedPorts)
	}
	if lim.MaxListeners > 0 && u.listeners >= lim.MaxListeners {
		return fmt.Sprintf("%s: tenant %s has reached limits.maxListeners (%d); not exposed: raise the limit or remove listeners",
			exposureLabel(x), tenant, lim.MaxListeners)
	}
	return ""
}

// uses adds to u what exposure x of tenant holds (sign -1: gives it back).
func (u tenantUse) uses(tenant string, x exposure, sign int) {
	u.of(tenant).take(x, sign)
}

// take counts what exposure x holds: a listener, and an exposed port
// unless it is a service listener.
func (c *tenantCount) take(x exposure, sign int) {
	c.listeners += sign
	if x.service == nil {
		c.exposed += sign
	}
}

// checkOwners: a tenant's static namespace is no one else's. The files'
// names (namespace_list, binds, servers) and API namespaces belong to the
// default tenant or their own; a manifest cannot take them over.
func (ix *tenantIndex) checkOwners(file *config.Config, st State) error {
	if len(ix.nsOwner) == 0 {
		return nil
	}
	var errs []error
	at := func(name string) string {
		t := ix.tenants[ix.nsOwner[name]]
		for i, n := range t.Spec.Namespaces {
			if n.Name == name {
				return fmt.Sprintf("Tenant/%s.spec.namespaces[%d].name", t.Meta.Name, i)
			}
		}
		return "Tenant/" + t.Meta.Name
	}
	if file != nil {
		for _, n := range file.NamespaceNames() {
			if owner, ok := ix.nsOwner[n]; ok {
				errs = append(errs, tenantError(&ix.from, at(n), fmt.Sprintf("namespace %q of tenant %q is named by the configuration files "+
					"(the default tenant's): remove it from the files or from the tenant", n, owner)))
			}
		}
	}
	for _, n := range st.Namespaces {
		if owner, ok := ix.nsOwner[n.Name]; ok {
			errs = append(errs, tenantError(&ix.from, at(n.Name), fmt.Sprintf("namespace %q of tenant %q is also an API namespace (nsproxy ns add, tenant %q): "+
				"remove one of them", n.Name, owner, tenantOr(n.Tenant))))
		}
	}
	return errors.Join(errs...)
}

// unresolvedRefs are the namespace names the merged objects use that are
// neither a tenant's static namespace nor an API namespace: attachments'
// (resolved by the plan's pass over the attachments) or the files'.
func (ix *tenantIndex) unresolvedRefs(st State, base *config.Config) map[string]string {
	api := make(map[string]bool, len(st.Namespaces))
	for _, n := range st.Namespaces {
		api[n.Name] = true
	}
	refs := map[string]string{}
	namespaceUses(base, func(n, _ string) {
		if _, static := ix.nsOwner[n]; n != "" && !static && !api[n] {
			refs[n] = ""
		}
	})
	return refs
}

// namespaceUses calls use with every namespace name a bind or a server
// (not "namespace *") of cfg names, and the tenant of its object.
func namespaceUses(cfg *config.Config, use func(name, tenant string)) {
	for _, f := range cfg.Frontends {
		for _, b := range f.Binds {
			use(b.Namespace, tenantOr(f.Tenant))
		}
	}
	for _, b := range cfg.Backends {
		for _, sv := range b.Servers {
			if !sv.ClientNamespace {
				use(sv.Namespace, tenantOr(b.Tenant))
			}
		}
	}
}

// waitingNames are the names of refs that no attachment holds (held) and
// the files do not name, and that only objects of one tenant other than
// the default use, when the name was that tenant's already (mayWait: the
// running state registered it under the tenant, or restore): the tenant's
// container stopped. The name stays the tenant's: refs gets the tenant, so
// its objects are not refused (a DEL of the container must never be, nor
// a restart drop the tenant's documents), and the commit registers the
// name as waiting (netns.Entry.Waiting: known, opened from nowhere), so
// the objects wait for the container as a file's bind waits for its
// namespace, and nothing of the netns directory is opened for the tenant
// under that name. assignNames gives the name to no other tenant's
// container. A name no one held is not given this way: a tenant's write
// cannot reserve a name its containers never had (refused, as before).
func waitingNames(file, base *config.Config, refs map[string]string, held map[string]bool,
	mayWait func(name, tenant string) bool) map[string]string {
	var cand map[string][]string
	for n := range refs {
		if !held[n] {
			if cand == nil {
				cand = map[string][]string{}
			}
			cand[n] = nil
		}
	}
	if cand == nil {
		return nil
	}
	if file != nil {
		for _, n := range file.NamespaceNames() {
			delete(cand, n)
		}
	}
	namespaceUses(base, func(n, tenant string) {
		if users, ok := cand[n]; ok && !slices.Contains(users, tenant) {
			cand[n] = append(users, tenant)
		}
	})
	var out map[string]string
	for n, users := range cand {
		if len(users) == 1 && users[0] != netns.DefaultTenant && mayWait(n, users[0]) {
			if out == nil {
				out = map[string]string{}
			}
			out[n] = users[0]
			refs[n] = users[0]
		}
	}
	return out
}

// checkTenantRefs: every object reaches only namespaces of its own
// tenant. A frontend's binds and its default backend, a backend's servers
// (also those added through the API) naming another tenant's namespace
// are refused with the object's position. refs holds the tenants of the
// attachments' namespaces the objects name; "namespace *" is checked per
// connection by the engine (netns.Registry.MayUse).
func checkTenantRefs(base *config.Config, ix *tenantIndex, st State, refs map[string]string) error {
	apiTenant := make(map[string]string, len(st.Namespaces))
	for _, n := range st.Namespaces {
		apiTenant[n.Name] = tenantOr(n.Tenant)
	}
	owner := func(n string) string {
		if t, ok := ix.nsOwner[n]; ok {
			return t
		}
		if t, ok := apiTenant[n]; ok {
			return t
		}
		return tenantOr(refs[n])
	}
	var errs []error
	refuse := func(pos config.Pos, what, tenant, ns, other string) {
		errs = append(errs, &config.Error{Pos: pos, Err: config.ErrInvalid, Msg: fmt.Sprintf("%s of tenant %q names namespace %q of tenant %q: "+
			"a tenant's objects reach only its own namespaces; use a namespace of tenant %q", what, tenant, ns, other, tenant)})
	}
	backendTenant := make(map[string]string, len(base.Backends))
	for _, b := range base.Backends {
		bt := tenantOr(b.Tenant)
		backendTenant[b.Name] = bt
		for _, s := range b.Servers {
			if s.ClientNamespace || s.Namespace == "" {
				continue
			}
			if o := owner(s.Namespace); o != bt {
				refuse(s.Pos, fmt.Sprintf("server %s/%s", b.Name, s.Name), bt, s.Namespace, o)
			}
		}
	}
	for _, f := range base.Frontends {
		ft := tenantOr(f.Tenant)
		for _, b := range f.Binds {
			if b.Namespace == "" {
				continue
			}
			if o := owner(b.Namespace); o != ft {
				refuse(b.Pos, fmt.Sprintf("frontend %s: bind %s", f.Name, b.Addr), ft, b.Namespace, o)
			}
		}
		if bt, ok := backendTenant[f.DefaultBackend]; ok && bt != ft {
			errs = append(errs, &config.Error{Pos: f.Pos, Err: config.ErrInvalid, Msg: fmt.Sprintf("frontend %s of tenant %q uses backend %s of tenant %q: "+
				"a frontend uses only its own tenant's backends", f.Name, ft, f.DefaultBackend, bt)})
		}
	}
	return errors.Join(errs...)
}

// portAllocations indexes State.Ports: each allocation's port, and who
// holds each port, so a range rule never hands a held port to another

// liveAllocations are st.Ports of the attachments st holds: the port of
// an attachment that is gone (deleted by this very write, or dropped at
// restore) is free for the others in the same plan.
func liveAllocations(st State) []PortAllocation {
	if len(st.Ports) == 0 {
		return nil
	}
	live := make(map[api.AttachmentKey]bool, len(st.Attachments))
	for _, a := range st.Attachments {
		live[a.AttachmentKey] = true
	}
	out := make([]PortAllocation, 0, len(st.Ports))
	for _, pa := range st.Ports {
		if live[pa.AttachmentKey] {
			out = append(out, pa)
		}
	}
	return out
}

// container.
func portAllocations(ps []PortAllocation) (map[allocKey]int, map[int]allocKey) {
	if len(ps) == 0 {
		return nil, nil
	}
	allocs := make(map[allocKey]int, len(ps))
	held := make(map[int]allocKey, len(ps))
	for _, p := range ps {
		k := allocKey{p.AttachmentKey, p.Rule}
		allocs[k] = p.Port
		held[p.Port] = k
	}
	return allocs, held
}

// freePort is the first port of x's range, from x's current port on,
// that no frontend binds and no other container holds.
func freePort(x exposure, used *config.BindSet, held map[int]allocKey) (int, bool) {
	n := x.hi - x.lo + 1
	start := int(x.bind.Addr.Port()) - x.lo
	me := allocKey{x.key, x.rule}
	for i := 0; i < n; i++ {
		p := x.lo + (start+i)%n
		if k, ok := held[p]; ok && k != me {
			continue
		}
		b := x.bind
		b.Addr = netip.AddrPortFrom(b.Addr.Addr(), uint16(p))
		if _, _, taken := used.Conflict(b); !taken {
			return p, true
		}
	}
	return 0, false
}

// ApplyManifests makes set the daemon's tenant manifests, replacing the
// ones applied before: all of it or nothing, validated with the rest of
// the desired state, persisted before it is applied. With dryRun it only
// validates. set must not be modified afterwards (the daemon keeps it).
func (d *Daemon) ApplyManifests(set manifest.Set, dryRun bool) error {
	if dryRun {
		d.mu.Lock()
		defer d.mu.Unlock()
		next := d.state.clone()
		next.Manifests = set
		assignNames(d.file, &next, givenNames(d.state))
		if _, err := d.dryPlan(d.file, next); err != nil {
			return &validationError{err}
		}
		return nil
	}
	var moved []movedName
	err := d.mutate(func(s *State) error {
		prev := givenNames(*s)
		s.Manifests = set
		// A tenant's static namespace may be a name an attachment holds:
		// the attachment moves to another of its names.
		moved = assignNames(d.file, s, prev)
		return nil
	})
	if err == nil {
		d.logNames(moved)
		d.log.Info("tenant manifests applied", "tenants", len(set.Tenants), "exposures", len(set.Exposures),
			"services", len(set.Services))
	}
	return err
}

// fullRanges are the range rules (by host address and rule) a plan found
// without a free port, with the problem that says so: the attachments
// after them skip the search and share the message, so an exhausted range
// costs one search per plan, not one per container.
type fullRanges map[netip.Addr]map[string]string

func (f fullRanges) of(x exposure) (string, bool) {
	msg, ok := f[x.bind.Addr.Addr()][x.rule]
	return msg, ok
}

func (f fullRanges) add(x exposure) string {
	a := x.bind.Addr.Addr()
	if f[a] == nil {
		f[a] = map[string]string{}
	}
	msg := fmt.Sprintf("Exposure %s: every port of %d-%d on %s is taken; not exposed: widen portRange", x.rule, x.lo, x.hi, a)
	f[a][x.rule] = msg
	return msg
}

// serviceNames are the frontends of the service listeners in s.
func (s attachmentStatus) serviceNames() []string {
	var out []string
	for _, sv := range s.services {
		out = append(out, sv.Frontend)
	}
	return out
}
