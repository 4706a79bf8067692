package sidecar

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
)

// Run-time objects (the control API's, the tenants' manifests') are
// converted into the typed model directly, with the value parsers of
// package config, and the merged model is checked by config's validator:
// one model and one validator for every syntax. Each object keeps its
// origin in its Pos, so every problem names the object and field at fault.

// origin is where a run-time object came from.
type origin struct {
	kind   config.Origin
	tenant string        // "" is the default tenant
	object string        // "frontend web", or "Tenant/acme.spec.frontends[0]"
	set    *manifest.Set // the manifest's positions, or nil
}

// apiOrigin is the origin of an API object; key is backendKey, serverKey
// or frontendKey of it.
func apiOrigin(key string) origin { return origin{kind: config.OriginAPI, object: key} }

// manifestOrigin is the origin of the object at path in set, owned by tenant.
func manifestOrigin(set *manifest.Set, tenant, path string) origin {
	return origin{kind: config.OriginManifest, tenant: tenant, object: path, set: set}
}

// pos is the position of a field of the object ("" for the object itself).
func (o origin) pos(field string) config.Pos {
	p := config.Pos{Origin: o.kind, Object: o.object, Field: field}
	if o.kind == config.OriginManifest && o.set != nil {
		full := o.object
		if field != "" {
			full += "." + field
		}
		mp := o.set.Where(full)
		p.File, p.Line, p.Col = mp.File, mp.Line, mp.Col
	}
	return p
}

// Keys of API objects: the Object of their positions, and what restore
// drops when a problem names one.
func backendKey(name string) string         { return "backend " + name }
func serverKey(backend, name string) string { return "server " + backend + "/" + name }
func frontendKey(name string) string        { return "frontend " + name }

// converter turns one object into the model and collects its problems.
// Field paths are relative to prefix ("servers[2]." while converting a
// backend's server), joined only for a problem: a plan converts every live
// object, and most have none.
type converter struct {
	o      origin
	prefix string
	errs   []error
}

func (c *converter) fail(field string, kind error, format string, args ...any) {
	c.errs = append(c.errs, config.Errorf(c.o.pos(c.prefix+field), kind, format, args...))
}

// value records the error of a config value parser, if any, and reports
// whether there was none.
func (c *converter) value(field string, err error) bool {
	if err != nil {
		c.errs = append(c.errs, config.ErrorAt(c.o.pos(c.prefix+field), err))
	}
	return err == nil
}

// duration sets *d from s unless s is empty (inherit).
func (c *converter) duration(field, s string, d *time.Duration) {
	if s == "" {
		return
	}
	if v, err := config.ParseDuration(s); c.value(field, err) {
		*d = v
	}
}

func (c *converter) name(field, kind, name string) {
	if !config.ValidName(name) {
		c.fail(field, config.ErrInvalid, "invalid %s name %q; %s", kind, name, config.NameRule)
	}
}

// count checks a number where 0 means inherit.
func (c *converter) count(field string, n, max int) bool {
	if n < 0 || n > max {
		c.fail(field, config.ErrInvalid, "%d out of range; write 1 to %d, or leave it out (0) to inherit the default", n, max)
		return false
	}
	return n != 0
}

func (c *converter) err() error { return errors.Join(c.errs...) }

// frontendModel converts an API frontend. It starts from the defaults
// (the files' last defaults section) as a frontend section written after
// the files would.
func frontendModel(f api.Frontend, o origin, defs config.Defaults) (*config.Frontend, error) {
	c := converter{o: o}
	cf := defs.Frontend
	cf.Name, cf.Pos, cf.Tenant, cf.Listen = f.Name, o.pos(""), o.tenant, false
	cf.Binds, cf.TrustedProxies = nil, slices.Clone(cf.TrustedProxies)
	c.name("name", "frontend", f.Name)
	if len(f.Binds) == 0 {
		c.fail("binds", config.ErrIncomplete, "no bind; add one, e.g. {\"addr\": \"0.0.0.0:80\"}")
	}
	for i, b := range f.Binds {
		field := fmt.Sprintf("binds[%d]", i)
		addr, err := config.ParseBindAddr(b.Addr)
		ok := c.value(field+".addr", err)
		cb := config.Bind{Pos: o.pos(field), Addr: addr, AcceptProxy: b.AcceptProxy, V4V6: b.V4V6, V6Only: b.V6Only}
		if b.Namespace != "" {
			ns, err := config.ParseBindNamespace(b.Namespace)
			ok = c.value(field+".namespace", err) && ok
			cb.Namespace = ns
		}
		if ok && c.value(field, config.CheckBindFamily(cb)) {
			cf.Binds = append(cf.Binds, cb)
		}
	}
	if f.Backend == "" {
		c.fail("backend", config.ErrIncomplete, "required; name the backend this frontend feeds")
	} else {
		c.name("backend", "backend", f.Backend)
	}
	cf.DefaultBackend = f.Backend
	if c.count("maxconn", f.MaxConn, math.MaxInt32) {
		cf.MaxConn = f.MaxConn
	}
	c.duration("clientTimeout", f.ClientTimeout, &cf.ClientTimeout)
	c.duration("clientFinTimeout", f.ClientFinTimeout, &cf.ClientFinTimeout)
	c.duration("proxyHeaderTimeout", f.ProxyHeaderTimeout, &cf.ProxyHeaderTimeout)
	for i, s := range f.TrustedProxies {
		if pf, err := config.ParseTrustedProxy(s); c.value(fmt.Sprintf("trustedProxies[%d]", i), err) {
			cf.TrustedProxies = append(cf.TrustedProxies, pf)
		}
	}
	if f.LenientNetnsTLV {
		cf.LenientNetnsTLV = true
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return &cf, nil
}

// backendModel converts an API backend and its servers; they start from
// the defaults as a backend section written after the files would.
func backendModel(b api.Backend, o origin, defs config.Defaults) (*config.Backend, error) {
	c := converter{o: o}
	cb := defs.Backend
	cb.Name, cb.Pos, cb.Tenant, cb.Listen = b.Name, o.pos(""), o.tenant, false
	cb.DefaultServer, cb.Servers = defs.Server, nil
	c.name("name", "backend", b.Name)
	if b.Balance != "" {
		if bal, err := config.ParseBalance(b.Balance); c.value("balance", err) {
			cb.Balance = bal
		}
	}
	c.duration("connectTimeout", b.ConnectTimeout, &cb.ConnectTimeout)
	c.duration("serverTimeout", b.ServerTimeout, &cb.ServerTimeout)
	c.duration("serverFinTimeout", b.ServerFinTimeout, &cb.ServerFinTimeout)
	c.duration("checkTimeout", b.CheckTimeout, &cb.CheckTimeout)
	if b.SourceAddr != "" || b.UseSrc != "" {
		clientIP, addr := false, b.SourceAddr
		switch b.UseSrc {
		case "":
		case "clientip":
			clientIP = true
			if addr == "" {
				addr = "0.0.0.0"
			}
		default:
			c.fail("usesrc", config.ErrUnsupported, "unsupported usesrc %q; only clientip is (with sourceAddr 0.0.0.0)", b.UseSrc)
		}
		if a, err := config.ParseSource(addr, clientIP); c.value("sourceAddr", err) {
			cb.Source, cb.UseSrcClientIP = a, clientIP
		}
	}
	for i, s := range b.Servers {
		c.prefix = "servers[" + strconv.Itoa(i) + "]."
		if s.Backend != "" && s.Backend != b.Name {
			c.fail("backend", config.ErrInvalid, "names backend %q inside backend %q; leave it out", s.Backend, b.Name)
		}
		if cs := c.server(s, cb.DefaultServer); cs != nil {
			cb.Servers = append(cb.Servers, cs)
		}
	}
	c.prefix = ""
	if err := c.err(); err != nil {
		return nil, err
	}
	return &cb, nil
}

// serverModel converts a server added to a backend on its own; it starts
// from that backend's default-server options (tmpl).
func serverModel(s api.Server, o origin, tmpl config.Server) (*config.Server, error) {
	c := converter{o: o}
	cs := c.server(s, tmpl)
	if err := c.err(); err != nil {
		return nil, err
	}
	return cs, nil
}

// server converts s, whose fields are at c.prefix in the object. It
// returns nil when s has a problem.
func (c *converter) server(s api.Server, tmpl config.Server) *config.Server {
	before := len(c.errs)
	if tmpl.Inter == 0 { // a backend built in code: no default-server
		tmpl = config.BuiltinDefaults().Server
	}
	cs := tmpl
	cs.Name, cs.Pos = s.Name, c.o.pos(strings.TrimSuffix(c.prefix, "."))
	c.name("name", "server", s.Name)
	if s.Addr == "" {
		c.fail("addr", config.ErrIncomplete, "required; write IP[:PORT], e.g. \"10.0.0.1:80\", or \"*\" for the client's destination")
	} else if sa, err := config.ParseServerAddr(s.Addr); c.value("addr", err) {
		cs.Addr, cs.PortMode, cs.Port, cs.PortOffset = sa.Addr, sa.Mode, sa.Port, sa.Offset
	}
	if s.Namespace != "" {
		if ns, client, err := config.ParseServerNamespace(s.Namespace); c.value("namespace", err) {
			cs.Namespace, cs.ClientNamespace = ns, client
		}
	}
	if s.Check {
		cs.Check = true
	}
	c.duration("inter", s.Inter, &cs.Inter)
	if c.count("rise", s.Rise, math.MaxInt32) {
		cs.Rise = s.Rise
	}
	if c.count("fall", s.Fall, math.MaxInt32) {
		cs.Fall = s.Fall
	}
	if s.Weight != nil {
		if *s.Weight < 0 || *s.Weight > 256 {
			c.fail("weight", config.ErrInvalid, "%d out of range; write 0 to 256", *s.Weight)
		} else {
			cs.Weight = *s.Weight
		}
	}
	if s.Backup {
		cs.Backup = true
	}
	if s.Disabled {
		cs.Disabled = true
	}
	switch s.SendProxy {
	case 0:
	case 1, 2:
		cs.SendProxy = s.SendProxy
	default:
		c.fail("sendProxy", config.ErrInvalid, "%d: write 1 (PROXY v1), 2 (PROXY v2), or leave it out (0) to inherit", s.SendProxy)
	}
	if len(c.errs) > before {
		return nil
	}
	return &cs
}

// The reverse: model to API, what GET prints. Every value is written in
// the form the converter reads, so a GET answer is valid POST input and
// converts back to the same model.

func apiFrontend(f *config.Frontend) api.Frontend {
	af := api.Frontend{Name: f.Name, Source: sourceOf(f.Pos), Tenant: f.Tenant, Backend: f.DefaultBackend, MaxConn: f.MaxConn,
		ClientTimeout: config.FormatDuration(f.ClientTimeout), ClientFinTimeout: config.FormatDuration(f.ClientFinTimeout),
		ProxyHeaderTimeout: config.FormatDuration(f.ProxyHeaderTimeout), LenientNetnsTLV: f.LenientNetnsTLV}
	for _, b := range f.Binds {
		af.Binds = append(af.Binds, api.Bind{Addr: b.Addr.String(), Namespace: b.Namespace, AcceptProxy: b.AcceptProxy, V4V6: b.V4V6, V6Only: b.V6Only})
	}
	for _, p := range f.TrustedProxies {
		af.TrustedProxies = append(af.TrustedProxies, p.String())
	}
	return af
}

func apiBackend(b *config.Backend) api.Backend {
	ab := api.Backend{Name: b.Name, Source: sourceOf(b.Pos), Tenant: b.Tenant, Balance: string(b.Balance),
		ConnectTimeout: config.FormatDuration(b.ConnectTimeout), ServerTimeout: config.FormatDuration(b.ServerTimeout),
		ServerFinTimeout: config.FormatDuration(b.ServerFinTimeout), CheckTimeout: config.FormatDuration(b.CheckTimeout)}
	if b.Source.IsValid() {
		ab.SourceAddr = b.Source.String()
	}
	if b.UseSrcClientIP {
		ab.UseSrc = "clientip"
	}
	for _, s := range b.Servers {
		ab.Servers = append(ab.Servers, apiServer(b.Name, s))
	}
	return ab
}

func apiServer(backend string, s *config.Server) api.Server {
	ns := s.Namespace
	if s.ClientNamespace {
		ns = "*"
	}
	w := s.Weight
	return api.Server{Backend: backend, Name: s.Name, Source: sourceOf(s.Pos), Addr: config.FormatServerAddr(s), Namespace: ns,
		Check: s.Check, Inter: config.FormatDuration(s.Inter), Rise: s.Rise, Fall: s.Fall, Weight: &w,
		Backup: s.Backup, Disabled: s.Disabled, SendProxy: s.SendProxy}
}

// sourceOf is the API's Source of an object at pos.
func sourceOf(pos config.Pos) string {
	switch {
	case pos.Origin == config.OriginAPI:
		return api.SourceAPI
	case pos.Origin == config.OriginManifest:
		return api.SourceManifest
	case strings.HasPrefix(pos.File, "attachment "):
		return api.SourceCNI
	}
	return api.SourceConfig
}

// merge builds the desired configuration: the files' model plus every
// run-time object. Objects that do not fit are reported, with names.
func merge(file *config.Config, st State, exposures []exposure) (*config.Config, error) {
	m := &config.Config{Global: file.Global, Namespaces: slices.Clone(file.Namespaces), Defaults: file.Defaults}
	defs := file.RuntimeDefaults()
	m.Frontends = slices.Clone(file.Frontends)
	backends := map[string]*config.Backend{}
	addBackend := func(b *config.Backend) {
		m.Backends = append(m.Backends, b)
		backends[b.Name] = b
	}
	for _, b := range file.Backends {
		cp := *b
		cp.Servers = slices.Clone(b.Servers)
		addBackend(&cp)
	}
	var errs []error
	set := &st.Manifests
	for _, t := range set.Tenants {
		doc := manifest.KindTenant + "/" + t.Meta.Name + ".spec"
		for i, b := range t.Spec.Backends {
			cb, err := backendModel(b, manifestOrigin(set, t.Meta.Name, fmt.Sprintf("%s.backends[%d]", doc, i)), defs)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			addBackend(cb)
		}
	}
	for _, b := range st.Backends {
		cb, err := backendModel(b, apiOrigin(backendKey(b.Name)), defs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		addBackend(cb)
	}
	for _, s := range st.Servers {
		o := apiOrigin(serverKey(s.Backend, s.Name))
		cb := backends[s.Backend]
		if cb == nil {
			errs = append(errs, config.Errorf(o.pos("backend"), config.ErrUnknownBackend,
				"backend %q does not exist; create it first or name an existing one", s.Backend))
			continue
		}
		cs, err := serverModel(s, o, cb.DefaultServer)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cb.Servers = append(cb.Servers, cs)
	}
	for _, t := range set.Tenants {
		doc := manifest.KindTenant + "/" + t.Meta.Name + ".spec"
		var tenantTrusted []netip.Prefix // checked by the decoder
		for _, tp := range t.Spec.Proxy.TrustedProxies {
			if pf, err := config.ParseTrustedProxy(tp); err == nil {
				tenantTrusted = append(tenantTrusted, pf)
			}
		}
		for i, f := range t.Spec.Frontends {
			o := manifestOrigin(set, t.Meta.Name, fmt.Sprintf("%s.frontends[%d]", doc, i))
			cf, err := frontendModel(f, o, defs)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			both, ok := trustedByBoth(cf.TrustedProxies, tenantTrusted)
			if !ok {
				errs = append(errs, config.Errorf(o.pos("trustedProxies"), config.ErrInvalid,
					"no address is in both these trustedProxies and the tenant's spec.proxy.trustedProxies %v, so no peer "+
						"could send a PROXY header; name peers the tenant trusts", t.Spec.Proxy.TrustedProxies))
				continue
			}
			cf.TrustedProxies = both
			m.Frontends = append(m.Frontends, cf)
		}
	}
	for _, f := range st.Frontends {
		cf, err := frontendModel(f, apiOrigin(frontendKey(f.Name)), defs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.Frontends = append(m.Frontends, cf)
	}
	for _, x := range exposures {
		m.Frontends = append(m.Frontends, x.frontend)
		m.Backends = append(m.Backends, x.backend)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// trustedByBoth is the peers a tenant's frontend admits on its acceptProxy
// binds: those of its own trustedProxies that the tenant's
// spec.proxy.trustedProxies also admit (an empty list admits any peer). Two
// prefixes meet in the longer one, if they overlap at all. ok is false
// when both lists are set and share no address (an empty result would
// admit everyone).
func trustedByBoth(frontend, tenant []netip.Prefix) ([]netip.Prefix, bool) {
	switch {
	case len(tenant) == 0:
		return frontend, true
	case len(frontend) == 0:
		return slices.Clone(tenant), true
	}
	var out []netip.Prefix
	for _, f := range frontend {
		for _, t := range tenant {
			if !f.Overlaps(t) {
				continue
			}
			p := f
			if t.Bits() > f.Bits() {
				p = t
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, len(out) > 0
}

// blameKey is the run-time object a problem at pos is about: an API
// object's key, or "Tenant/NAME" for a manifest's object (a tenant is
// applied and dropped whole); "" for the files' problems.
func blameKey(pos config.Pos) string {
	switch pos.Origin {
	case config.OriginAPI:
		return pos.Object
	case config.OriginManifest:
		if i := strings.IndexByte(pos.Object, '.'); i >= 0 {
			return pos.Object[:i]
		}
		return pos.Object
	}
	return ""
}

// blame files every problem of a plan's error under the key of the
// run-time object it is about (blameKey); problems of the files have none.
func blame(err error, out map[string][]string) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			blame(e, out)
		}
		return
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		if k := blameKey(ce.Pos); k != "" {
			out[k] = append(out[k], err.Error())
		}
	}
}

// objectError carries a message and details for the API's error body.
type objectError struct {
	msg     string
	details []string
}

func (e *objectError) Error() string {
	if len(e.details) == 0 {
		return e.msg
	}
	return e.msg + ": " + strings.Join(e.details, "; ")
}

func (e *objectError) Unwrap() error { return ErrInvalidObject }

func detailsError(what string, details []string) error {
	return &objectError{msg: what + " is invalid", details: details}
}

// validateNamespace validates an API namespace.
func validateNamespace(n api.Namespace) error {
	var bad []string
	if !hooks.ValidName(n.Name) {
		bad = append(bad, fmt.Sprintf("name %q: use [A-Za-z0-9._:-], at most 255 characters", n.Name))
	}
	if n.Path != "" && n.Pid != 0 {
		bad = append(bad, "give path or pid, not both")
	}
	if n.Path != "" && (!path.IsAbs(n.Path) || path.Clean(n.Path) != n.Path) {
		bad = append(bad, fmt.Sprintf("path %q: must be absolute and clean", n.Path))
	}
	if n.Pid < 0 {
		bad = append(bad, fmt.Sprintf("pid %d: must be positive", n.Pid))
	}
	if len(bad) > 0 {
		return detailsError("namespace "+n.Name, bad)
	}
	return nil
}
