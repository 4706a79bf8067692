package sidecar

import (
	"fmt"
	"reflect"

	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

// What the running model serves keeps its port and its name. The plan
// places the exposures live in the last commit (d.live) before new ones,
// and refuses a change that would take a live bind or name from another
// tenant: clients of a port must not find themselves talking to another
// tenant's server because a frontend was applied or a rule added. A new
// container whose port mapping collides gets a problem, as before (an ADD
// is never refused); within one tenant the newest frontend still wins over
// an exposure, as the files always have.

// placement is what the plan did with one exposure of an attachment.
type placement struct {
	x       exposure // as placed (a range rule's port may have moved)
	ok      bool
	problem string // why not, when not
	later   bool   // not live: placed in the second pass
}

// inheritedBinds are the binds a predecessor served, with their frontends:
// a successor's first plan keeps them as the running model's (d.live),
// so a hand-over moves no port, nor (with the names the predecessor saved,
// serveHandover) a name, to another container.
func inheritedBinds(ils []proxy.InheritedListener) config.BindSet {
	var live config.BindSet
	fronts := map[string]*config.Frontend{}
	for _, il := range ils {
		if il.Frontend == "" {
			continue
		}
		f := fronts[il.Frontend]
		if f == nil {
			f = &config.Frontend{Name: il.Frontend}
			fronts[il.Frontend] = f
		}
		b := il.Bind
		live.Add(config.Bind{Addr: b.Addr, Namespace: b.Namespace, AcceptProxy: b.AcceptProxy, V4V6: b.V4V6,
			V6Only: b.V6Only, NoTakeover: b.NoTakeover, AdoptFrom: b.AdoptFrom}, f)
	}
	return live
}

// liveBind reports whether frontend name serves b in the running model.
func (d *Daemon) liveBind(b config.Bind, name string) bool {
	lb, lf, ok := d.live.Conflict(b)
	return ok && lf.Name == name && lb.Addr == b.Addr && lb.Namespace == b.Namespace
}

// takesLive is the error when exposure x (of tenant) cannot be placed
// because bind ub of frontend uf holds its address, and that is a change
// taking a live bind from another tenant: x is live and uf is a new
// frontend bind (refused at the frontend's bind), or x is new, made by a
// rule this plan adds or changes, and uf is live (refused at the rule).
// nil when the collision is not another tenant's, or only a container's.
func (d *Daemon) takesLive(ix *tenantIndex, x exposure, tenant string, ub config.Bind, uf *config.Frontend, xLive bool) error {
	other := tenantOr(uf.Tenant)
	if other == tenant {
		return nil
	}
	if xLive {
		return &config.Error{Pos: ub.Pos, Err: config.ErrInvalid, Msg: fmt.Sprintf("frontend %s of tenant %q: bind %s "+
			"takes %s, which tenant %q serves now (%s): a port in use keeps its owner; choose another address or port",
			uf.Name, other, ub.Addr, x.bind.Addr, tenant, exposureLabel(x))}
	}
	if x.rule == "" || !d.liveBind(ub, uf.Name) || !d.ruleChanged(ix, tenant, x) {
		return nil
	}
	kind, field := manifest.KindExposure, ".spec.hostPort"
	if x.service != nil {
		kind, field = manifest.KindService, ".spec.listen"
	}
	return tenantError(&ix.from, kind+"/"+x.rule+field, fmt.Sprintf("%s is served now by frontend %s of tenant %q: "+
		"a port in use keeps its owner; choose another address or port", exposureLabel(x), uf.Name, other))
}

// nameTakesLive: the live exposure x lost its name to a frontend of
// another tenant's: refused at that frontend.
func nameTakesLive(base *config.Config, x exposure, tenant string) error {
	for _, f := range base.Frontends {
		if f.Name == x.frontend.Name && tenantOr(f.Tenant) != tenant {
			return &config.Error{Pos: f.Pos, Err: config.ErrInvalid, Msg: fmt.Sprintf("frontend %s of tenant %q: the name "+
				"is that of tenant %q's %s, serving now: choose another name", f.Name, tenantOr(f.Tenant), tenant, exposureLabel(x))}
		}
	}
	return nil
}

// ruleChanged reports whether the rule that made x is new in this plan or
// differs from the one the running model was made with.
func (d *Daemon) ruleChanged(ix *tenantIndex, tenant string, x exposure) bool {
	old := d.committedTenants
	if ix == old {
		return false
	}
	if old == nil {
		// Nothing committed yet: a start, whose live binds are a
		// predecessor's (inheritedBinds), which ran the same rules.
		return !d.restoring
	}
	kind := manifest.KindExposure
	if x.service != nil {
		kind = manifest.KindService
	}
	find := func(rs []rule) (rule, bool) {
		for _, r := range rs {
			if r.kind == kind && r.name == x.rule {
				return r, true
			}
		}
		return rule{}, false
	}
	was, ok := find(old.rules[tenant])
	if !ok {
		return true
	}
	now, _ := find(ix.rules[tenant])
	return !reflect.DeepEqual(was, now)
}
