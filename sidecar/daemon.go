package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
	"github.com/nsproxy/nsproxy/sidecar/sdnotify"
)

// Options configure a Daemon. Zero values are documented defaults.
type Options struct {
	// ConfigFiles are loaded in order (nsproxy run -f A -f B).
	ConfigFiles []string
	// NetnsDir holds named namespaces; "": /var/run/netns.
	NetnsDir string
	// StateFile persists run-time objects; "": nothing persists.
	StateFile string
	// AttachmentDir holds the CNI plugin's attachment records; "": none.
	// They are the truth for CNI attachments at start: the plugin writes a
	// record before it tells the daemon, so nothing done while the daemon
	// was down is lost.
	AttachmentDir string
	// DrainTimeout is how long Shutdown lets connections finish; 0: 10s.
	DrainTimeout time.Duration
	// HandoverWait is how long a hand-over waits, once the sockets are
	// sent, for the successor's commit; then the hand-over aborts and this
	// daemon serves on. 0: 5 minutes.
	HandoverWait time.Duration
	// ResyncEvery is the period of the namespace resync; 0: 1s.
	ResyncEvery time.Duration
	// OnReconcile, when set, is told how long each reconcile took.
	OnReconcile func(time.Duration, error)
	Logger      *slog.Logger
	// Inherited are listening sockets taken over from the daemon this one
	// replaces (BeginTakeover): served instead of bound.
	Inherited []proxy.InheritedListener
	// TakingOver: this daemon is a successor (run --takeover); the state
	// file stays the old daemon's, unwritten, until TakeoverCommitted.
	TakingOver bool
	// Notifier tells systemd about readiness, reloads and stopping; nil: nobody.
	Notifier *sdnotify.Notifier
	// Successor, when set, lets `nsproxy upgrade` start a successor.
	Successor *SuccessorOptions
	// ManifestDir holds tenant manifests (*.yaml, *.yml) that the daemon
	// applies and keeps applied (manifestdir.go); "": none.
	ManifestDir string
	// ManifestResync is the period of the directory's resync; 0: 30s.
	ManifestResync time.Duration
}

// Daemon wires the registry, the engine, the configuration files and the
// run-time state. Desired state = files + run-time objects + attachments;
// every change recomputes it and reconciles the engine.
type Daemon struct {
	opt     Options
	log     *slog.Logger
	reg     *netns.Registry
	engine  *proxy.Engine
	store   *store
	started time.Time
	ready   atomic.Bool

	mu               sync.Mutex // serialises every change of desired state
	file             *config.Config
	state            State
	merged           *config.Config
	attStatus        map[api.AttachmentKey]attachmentStatus
	registered       map[string]netns.Entry    // run-time entries given to the registry
	plans            int                       // plan calls, with mu held: restore must plan once, not per object
	exposed          exposureCache             // attachments' exposures as the last plan made them
	batch            attachmentBatch           // attachment writes waiting for mu
	builtFrom        map[string]api.Attachment // the attachment each registered entry was made from
	tenants          *tenantIndex              // the manifests as the last plan indexed them
	apiIDs           map[string]netns.Identity // API namespaces' identities by path, as the last plan read them
	committedTenants *tenantIndex              // the manifests as the last commit applied them
	dirSet           manifest.Set              // the --manifests directory as New read it, for Start
	live             config.BindSet            // every bind of the running model (d.merged), with its frontend
	fast             attachmentIndex           // the fast path's indexes (delta.go)
	memory           memoryReturn              // when freed heap went back to the OS (delta.go)
	restoring        bool                      // restore is planning: saved tenants' names wait (waitingNames)

	ho handover // zero-downtime upgrade to a successor process
}

type attachmentStatus struct {
	exposures []api.Exposure
	problems  []string
	tenant    string   // the tenant the attachment belongs to
	overlap   string   // tenants' claims overlapping on it (also in problems)
	claims    []string // the tenants of that overlap (get tenants shows it to each)
	services  []api.ServiceListener
	// shared: its kernel namespace is another tenant's already (a static
	// namespace or an earlier attachment); not registered, not exposed.
	shared bool
}

// New loads and validates the configuration files and the saved state and
// prepares the daemon; it starts nothing. A config error is returned with
// every problem listed; a corrupt state file is quarantined and logged.
func New(opt Options) (*Daemon, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.HandoverWait <= 0 {
		opt.HandoverWait = 5 * time.Minute
	}
	if opt.DrainTimeout <= 0 {
		opt.DrainTimeout = 10 * time.Second
	}
	cfg, err := loadFiles(opt.ConfigFiles)
	if err != nil {
		return nil, err
	}
	var dirSet manifest.Set
	if opt.ManifestDir != "" {
		if dirSet, err = loadManifestDir(opt.ManifestDir); err != nil {
			return nil, err
		}
	}
	reg, err := netns.NewRegistry(opt.NetnsDir, opt.Logger)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opt: opt, log: opt.Logger, reg: reg, file: cfg, store: &store{path: opt.StateFile},
		engine: proxy.New(reg, opt.Logger), started: time.Now(), registered: map[string]netns.Entry{},
		attStatus: map[api.AttachmentKey]attachmentStatus{}, builtFrom: map[string]api.Attachment{}, dirSet: dirSet}
	if opt.TakingOver {
		d.store.hold()
	}
	d.engine.Inherit(opt.Inherited)
	d.live = inheritedBinds(opt.Inherited)
	st, err := d.store.load()
	if err != nil {
		d.log.Error("run-time state not restored", "err", err.Error())
	}
	d.state = st
	return d, nil
}

// Engine exposes the engine for status queries.
func (d *Daemon) Engine() *proxy.Engine { return d.engine }

// Registry exposes the namespace registry.
func (d *Daemon) Registry() *netns.Registry { return d.reg }

// Start restores the run-time state and applies everything. It returns an
// error only when the files themselves cannot be applied.
func (d *Daemon) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.replay(d.state)
	if d.opt.ManifestDir != "" {
		var moved []string
		st, moved = withDirectory(st, d.dirSet)
		d.logMoved(moved)
	}
	st, p, err := d.restore(st)
	if err != nil {
		return err
	}
	if err := dirDocsKept(st); err != nil {
		return err
	}
	if err := d.commit(st, p); err != nil {
		return err
	}
	if err := d.store.save(d.saved(d.state)); err != nil {
		d.log.Error("cannot write state", "path", d.opt.StateFile, "err", err.Error())
	}
	d.ready.Store(true)
	return nil
}

// Run starts the daemon and serves until ctx ends; reload receives a value
// for every reload request (SIGHUP). Then it drains and returns.
func (d *Daemon) Run(ctx context.Context, reload <-chan struct{}) error {
	if !d.ready.Load() {
		if err := d.Start(); err != nil {
			return err
		}
		d.notify(sdnotify.Ready)
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		d.reg.Watch(wctx, d.opt.ResyncEvery)
	}()
	// The manifest directory's watch stops before the drain: a reload
	// must not apply anything to an engine that is shutting down.
	mctx, stopManifests := context.WithCancel(context.Background())
	manifestsDone := make(chan struct{})
	go func() {
		defer close(manifestsDone)
		if d.opt.ManifestDir != "" {
			d.watchManifests(mctx)
		}
	}()
	merged := d.mergedNow() // the control socket may already be changing it
	d.log.Info("nsproxy running", "config", d.opt.ConfigFiles, "netns_dir", d.reg.Dir(),
		"frontends", len(merged.Frontends), "backends", len(merged.Backends))
	for {
		select {
		case <-ctx.Done():
			d.notify(sdnotify.Stopping)
		case <-d.HandedOver():
			// The successor is systemd's main process now: no STOPPING=1.
		case <-reload:
			d.reloadOnSignal()
			continue
		}
		d.ready.Store(false)
		stopManifests()
		<-manifestsDone
		forced := d.drain("shutting down: draining connections")
		stopWatch()
		<-watchDone
		d.stopMemoryReturn()
		d.reg.Close()
		d.log.Info("stopped", "forced_closed", forced)
		return nil
	}
}

// drain stops accepting and lets established connections finish for up to
// DrainTimeout (logged as msg); it returns how many it then closed.
func (d *Daemon) drain(msg string) int {
	d.log.Info(msg, "timeout", d.opt.DrainTimeout.String(), "connections", d.engine.Sessions())
	ctx, cancel := context.WithTimeout(context.Background(), d.opt.DrainTimeout)
	defer cancel()
	return d.engine.Shutdown(ctx)
}

// Ready reports whether the desired state has been applied.
func (d *Daemon) Ready() bool { return d.ready.Load() }

// reloadOnSignal is a SIGHUP: the files and the manifest directory read
// again. During a hand-over it is refused, with no RELOADING=1/READY=1
// (the hand-over's RELOADING=1 stands until its end).
func (d *Daemon) reloadOnSignal() {
	if d.ho.refuse(missedFiles | missedManifests) {
		d.logReloadRefused()
		return
	}
	d.notify(sdnotify.ReloadingNow()...)
	if err := d.Reload(); errors.Is(err, errUpgrading) {
		d.logReloadRefused()
	} else if err != nil {
		d.log.Error("reload refused: the running configuration stays", "err", err.Error())
	}
	d.reloadManifestsLogged()
	d.notify(sdnotify.Ready)
}

func (d *Daemon) logReloadRefused() {
	d.log.Warn("reload refused: an upgrade is in progress and the successor has read the files; " +
		"send SIGHUP again once it ends (this daemon reloads by itself if the hand-over aborts)")
}

// Reload loads the configuration files again and, only if they are valid
// and fit with the run-time objects, reconciles the engine with them.
// During a hand-over it changes nothing and returns errUpgrading: the
// successor loaded the files already, so a reload applied here would be
// gone at its commit; the daemon reloads once the hand-over aborts.
func (d *Daemon) Reload() error {
	cfg, err := loadFiles(d.opt.ConfigFiles)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Under d.mu: serveHandover waits for d.mu after it sets the flag.
	if d.ho.refuse(missedFiles) {
		return errUpgrading
	}
	st := d.state.clone() // the files may now name what an attachment holds
	moved := assignNames(cfg, &st, givenNames(d.state))
	p, err := d.plan(cfg, st)
	if err != nil {
		return fmt.Errorf("the new files conflict with run-time objects: %w", err)
	}
	d.file = cfg
	d.logNames(moved)
	if err := d.commit(st, p); err != nil {
		return err
	}
	d.log.Info("configuration reloaded", "frontends", len(p.merged.Frontends), "backends", len(p.merged.Backends))
	return nil
}

// plan is a validated desired state, ready to commit.
type plan struct {
	file      *config.Config
	merged    *config.Config
	attStatus map[api.AttachmentKey]attachmentStatus
	tenants   *tenantIndex
	ports     []PortAllocation // State.Ports as this plan allocated them
	binds     config.BindSet   // every bind of merged, with its frontend
	// What the attachment fast path (delta.go) keeps between writes:
	base     *config.Config  // merged without the exposures
	objNames map[string]bool // names of merged's frontends and backends
	ids      identityIndex   // kernel namespaces given out, attachments' included
	blocked  int             // attachments with an exposure a port or name conflict left out
	shared   int             // attachments refused: their namespace is another tenant's
	use      tenantUse       // what each tenant holds, for its limits
	// waiting are the names a tenant's objects use while no container
	// holds them, with the tenant (waitingNames).
	waiting map[string]string
}

// plan merges files and state and validates the result. Attachments'
// exposures that conflict with a port already in use are left out and
// reported on the attachment, never overwrite anything. Tenant manifests
// (st.Manifests) decide which tenant each attachment belongs to and add
// their rules' exposures and service listeners in the same pass, under
// the same conflict rule (config.BindSet).
func (d *Daemon) plan(file *config.Config, st State) (_ *plan, err error) {
	d.plans++
	// A plan that fails leaves the planner's caches as the last plan left
	// them: the attachment fast path reads them as the running state.
	kept := d.planCaches()
	defer func() {
		if err != nil {
			d.restorePlanCaches(kept)
		}
	}()
	ix := tenantIndexFor(d.tenants, st.Manifests)
	d.tenants = ix // a cache keyed by the set's identity, valid or not
	if ix.err != nil {
		return nil, ix.err
	}
	if err := ix.checkOwners(file, st); err != nil {
		return nil, err
	}
	base, err := merge(file, st, nil)
	if err != nil {
		return nil, err
	}
	var used config.BindSet
	use := tenantUse{}
	var overLimit []error
	for _, f := range base.Frontends {
		t := tenantOr(f.Tenant)
		lim := ix.limits(t).MaxListeners
		for _, b := range f.Binds {
			used.Add(b, f)
			if lim > 0 && use.of(t).listeners == lim {
				overLimit = append(overLimit, &config.Error{Pos: b.Pos, Err: config.ErrInvalid, Msg: fmt.Sprintf(
					"frontend %s: bind %s is over limits.maxListeners (%d) of tenant %q: remove binds or ask root to raise the limit",
					f.Name, b.Addr, lim, t)})
			}
			use.add(t, 0, 1)
		}
	}
	if len(overLimit) > 0 {
		return nil, errors.Join(overLimit...)
	}
	names := map[string]bool{}
	for _, f := range base.Frontends {
		names[f.Name] = true
	}
	for _, b := range base.Backends {
		names[b.Name] = true
	}
	refs := ix.unresolvedRefs(st, base)
	allocs, reserved := portAllocations(liveAllocations(st))
	var ports []PortAllocation
	full := fullRanges{}
	status := map[api.AttachmentKey]attachmentStatus{}
	var exps []exposure
	d.exposed.start()
	defer d.exposed.done()
	ids := ix.staticIdentities(d.reg.Dir())
	d.apiIDs = ids.addAPI(st.Namespaces, d.apiIDs, d.reg.Dir())
	cs := make([]*cachedExposures, len(st.Attachments))
	shared, blocked := 0, 0
	var refused []error
	held := map[string]bool{} // names of refs an attachment holds
	for j, a := range st.Attachments {
		c := d.exposed.exposuresFor(a, ix, allocs)
		if c.err != nil {
			refused = append(refused, &attachmentRefused{key: a.AttachmentKey, err: c.err})
			continue
		}
		if msg := ids.claim(c.id, c.tenant, attachmentNamespace(a)); msg != "" {
			shared++
			status[a.AttachmentKey] = attachmentStatus{problems: append(slices.Clone(c.problems), msg), tenant: c.tenant,
				overlap: c.overlap, claims: c.claims, shared: true}
			continue
		}
		if _, ok := refs[attachmentNamespace(a)]; ok {
			refs[attachmentNamespace(a)] = c.tenant
			held[attachmentNamespace(a)] = true
		}
		cs[j] = c
	}
	if len(refused) > 0 {
		return nil, errors.Join(refused...)
	}
	// Binds and names live in the running model keep them: the
	// exposures serving now are placed first (pass 0), new ones after
	// (pass 1), so a new container, rule or frontend never takes a port
	// from under another tenant's clients. A change that would is
	// refused at its position (d.takesLive); a new container only gets a
	// problem (an ADD is never refused).
	outcomes := make([][]placement, len(st.Attachments))
	var errs []error
	for pass := 0; pass < 2; pass++ {
		for j, a := range st.Attachments {
			c := cs[j]
			if c == nil || len(c.xs) == 0 {
				continue // nil: refused, another tenant's namespace
			}
			if outcomes[j] == nil {
				outcomes[j] = make([]placement, len(c.xs))
			}
			lim := ix.limits(c.tenant)
			for i := range c.xs {
				x := c.xs[i]
				o := &outcomes[j][i]
				if pass == 0 {
					o.later = !d.liveBind(x.bind, x.frontend.Name)
				}
				if o.later != (pass == 1) {
					continue
				}
				// The port and the name first, then the limits: a left-out
				// exposure reads the same in every plan (its siblings that
				// were placed count towards the limit only once they are
				// live), and one over the limits takes no port, so it
				// never moves another container's.
				moved := false
				if x.lo > 0 {
					// A range found full stays full for the rest of the plan,
					// except for a port this container holds (State.Ports).
					msg, isFull := full.of(x)
					if isFull && reserved[int(x.bind.Addr.Port())] != (allocKey{x.key, x.rule}) {
						o.problem = msg
						continue
					}
					port, ok := freePort(x, &used, reserved)
					if !ok {
						o.problem = full.add(x)
						continue
					}
					if port != int(x.bind.Addr.Port()) {
						x, moved = ruleExposure(a, c.tenant, *x.src, port), true
					}
				}
				if ub, uf, taken := used.Conflict(x.bind); taken {
					if err := d.takesLive(ix, x, c.tenant, ub, uf, pass == 0); err != nil {
						errs = append(errs, err)
					}
					o.problem = portTaken(x)
					continue
				}
				if names[x.frontend.Name] {
					if pass == 0 {
						if err := nameTakesLive(base, x, c.tenant); err != nil {
							errs = append(errs, err)
						}
					}
					o.problem = nameTaken(x)
					continue
				}
				if o.problem = limitProblem(x, c.tenant, lim, *use.of(c.tenant)); o.problem != "" {
					continue
				}
				if moved {
					c = d.exposed.moved(c, i, x)
					cs[j] = c
				}
				used.Add(x.bind, x.frontend)
				names[x.frontend.Name] = true
				o.x, o.ok = x, true
				use.uses(c.tenant, x, 1)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for j, a := range st.Attachments {
		c := cs[j]
		if c == nil {
			continue // its status says why (identityIndex.claim)
		}
		problems := slices.Clone(c.problems)
		var exposed []api.Exposure
		var services []api.ServiceListener
		left := false
		for _, o := range outcomes[j] {
			if !o.ok {
				if o.problem != "" {
					problems = append(problems, o.problem)
					left = true
				}
				continue
			}
			x := o.x
			if x.lo > 0 && int(x.bind.Addr.Port()) != preferredPort(a.AttachmentKey, x.rule, x.lo, x.hi) {
				ports = append(ports, PortAllocation{AttachmentKey: a.AttachmentKey, Rule: x.rule, Port: int(x.bind.Addr.Port())})
			}
			exps = append(exps, x)
			if x.service != nil {
				services = append(services, *x.service)
			} else {
				exposed = append(exposed, api.Exposure{PortMapping: x.mapping, Frontend: x.frontend.Name, Rule: x.rule})
			}
		}
		if left {
			blocked++
		}
		status[a.AttachmentKey] = attachmentStatus{exposures: exposed, problems: problems, tenant: c.tenant, services: services,
			overlap: c.overlap, claims: c.claims}
	}
	waiting := waitingNames(file, base, refs, held, func(name, tenant string) bool {
		e, ok := d.registered[name]
		return d.restoring || ok && e.Tenant == tenant
	})
	if err := checkTenantRefs(base, ix, st, refs); err != nil {
		return nil, err
	}
	merged := base
	if len(exps) > 0 {
		// base is valid and new: add the exposures to it instead of
		// merging everything a second time.
		merged = &config.Config{Global: base.Global, Namespaces: base.Namespaces,
			Frontends: slices.Clone(base.Frontends), Backends: slices.Clone(base.Backends)}
		for _, x := range exps {
			merged.Frontends = append(merged.Frontends, x.frontend)
			merged.Backends = append(merged.Backends, x.backend)
		}
		// No Validate of the whole: each exposure was validated on its
		// own when it was made (exposureCache), and what Validate checks
		// across objects (unique names, binds) is checked above. A whole
		// Validate made every ADD cost grow with the live containers.
	}
	return &plan{file: file, merged: merged, attStatus: status, tenants: ix, ports: ports, binds: used,
		base: base, objNames: names, ids: ids, blocked: blocked, shared: shared, use: use, waiting: waiting}, nil
}

// dryPlan is plan for a state that will not be committed (diff, a
// dry-run apply): the planner's caches stay as the last real plan left
// them, else the next write would validate every live container's
// exposures again and commit would log every overlap again.
func (d *Daemon) dryPlan(file *config.Config, st State) (*plan, error) {
	defer d.restorePlanCaches(d.planCaches())
	return d.plan(file, st)
}

// planCaches are what plan keeps for the next plan and for the attachment
// fast path (delta.go): valid only as a committed plan left them.
type planCaches struct {
	tenants *tenantIndex
	prev    map[api.AttachmentKey]*cachedExposures
	apiIDs  map[string]netns.Identity
}

func (d *Daemon) planCaches() planCaches {
	return planCaches{tenants: d.tenants, prev: d.exposed.prev, apiIDs: d.apiIDs}
}

// restorePlanCaches puts back what planCaches returned, after a plan that
// is not committed (a dry run, a refused write, a failed save).
func (d *Daemon) restorePlanCaches(c planCaches) {
	d.tenants, d.exposed.prev, d.apiIDs = c.tenants, c.prev, c.apiIDs
}

// runtimeEntries are the registry entries the state asks for, and the
// attachments of the entries it had to build (not reused).
func (d *Daemon) runtimeEntries(st State, p *plan) (map[string]netns.Entry, map[string]api.Attachment) {
	out := make(map[string]netns.Entry, len(st.Namespaces)+len(st.Attachments))
	built := map[string]api.Attachment{}
	if p.tenants != nil {
		for name, tenant := range p.tenants.nsOwner {
			path := p.tenants.nsPath[name]
			if path == "" {
				path = filepath.Join(d.reg.Dir(), name)
			}
			tlv := p.tenants.tenants[tenant].Spec.Proxy.NetnsTLV
			out[name] = netns.Entry{Name: name, Path: path, Source: SourceManifest, Tenant: tenant,
				Allowed: tlv == nil || *tlv}
		}
	}
	for _, n := range st.Namespaces {
		path := n.Path
		if path == "" {
			path = filepath.Join(d.reg.Dir(), n.Name)
		}
		out[n.Name] = netns.Entry{Name: n.Name, Path: path, Source: api.SourceAPI, Tenant: tenantOr(n.Tenant),
			Allowed: true, Metadata: n.Metadata}
	}
	for _, a := range st.Attachments {
		name := attachmentNamespace(a)
		as := p.attStatus[a.AttachmentKey]
		if as.shared {
			continue // another tenant's namespace: not registered
		}
		tenant := tenantOr(as.tenant)
		if e, ok := d.registered[name]; ok && d.builtFrom[name].Netns != "" && sameAttachment(d.builtFrom[name], a) && e.Tenant == tenant {
			out[name] = e // unchanged: building and comparing it again cost O(live) per write
			continue
		}
		out[name] = attachmentEntry(a, tenant)
		built[name] = a
	}
	for name, tenant := range p.waiting {
		if _, ok := out[name]; !ok {
			out[name] = netns.Entry{Name: name, Source: SourceManifest, Tenant: tenant, Waiting: true}
		}
	}
	return out, built
}

// attachmentEntry is the registry entry of attachment a of tenant.
func attachmentEntry(a api.Attachment, tenant string) netns.Entry {
	meta := maps.Clone(a.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta["containerID"], meta["ifname"] = a.ContainerID, a.IfName
	for i, ip := range a.IPs {
		meta[fmt.Sprintf("ip%d", i)] = ip
	}
	src := a.Source
	if src == "" {
		src = api.SourceCNI
	}
	return netns.Entry{Name: attachmentNamespace(a), Path: a.Netns, Source: src, Tenant: tenant, Allowed: true, Metadata: meta}
}

func sameEntry(a, b netns.Entry) bool {
	return a.Name == b.Name && a.Path == b.Path && a.Source == b.Source && a.Tenant == b.Tenant &&
		a.Allowed == b.Allowed && a.Waiting == b.Waiting && (sameMap(a.Metadata, b.Metadata) || maps.Equal(a.Metadata, b.Metadata))
}

func tenantOr(t string) string {
	if t == "" {
		return netns.DefaultTenant
	}
	return t
}

// commit makes a plan the running state.
func (d *Daemon) commit(st State, p *plan) error {
	start := time.Now()
	st.Ports = p.ports
	entries, built := d.runtimeEntries(st, p)
	for name := range d.registered {
		if _, ok := entries[name]; !ok {
			d.reg.Unregister(name)
			delete(d.registered, name)
			delete(d.builtFrom, name)
		}
	}
	for name, e := range entries {
		if old, ok := d.registered[name]; ok && sameEntry(old, e) {
			continue // a change costs what it changes, not what is registered
		}
		if err := d.reg.Register(e); err != nil {
			d.log.Warn("namespace not registered", "netns", name, "err", err.Error())
			continue
		}
		d.registered[name] = e
	}
	for name, a := range built {
		if e, ok := d.registered[name]; ok && sameEntry(e, entries[name]) {
			d.builtFrom[name] = a
		} else {
			delete(d.builtFrom, name)
		}
	}
	err := d.reg.SetNames(configNames(p, entries))
	var allowed []string
	for _, n := range p.file.Namespaces {
		allowed = append(allowed, n.Name)
	}
	d.reg.SetAllowed(allowed)
	spec := engineSpec(p.merged)
	spec.TenantMaxConn = p.tenants.maxConnections()
	if aerr := d.engine.Apply(spec); aerr != nil {
		err = errors.Join(err, aerr)
	}
	if p.tenants != nil && p.tenants != d.committedTenants {
		// New manifests: say which running containers their selectors
		// fight over (a new container's are in its registration's log).
		for _, a := range st.Attachments {
			if o := p.attStatus[a.AttachmentKey].overlap; o != "" {
				d.log.Warn("tenant selectors overlap", "container", a.ContainerID, "ifname", a.IfName,
					"name", attachmentNamespace(a), "problem", o)
			}
		}
		d.committedTenants = p.tenants
	}
	d.file, d.merged, d.attStatus = p.file, p.merged, p.attStatus
	d.live = p.binds
	d.state = st
	d.indexAttachments(st, p)
	if d.opt.OnReconcile != nil {
		d.opt.OnReconcile(time.Since(start), err)
	}
	return err
}

// restore drops saved objects that cannot come back: namespaces and
// attachments whose namespace file is gone, and objects that no longer fit
// the files. Each drop is logged. It plans the whole state at once and
// returns that plan: checking object by object re-planned everything per
// object, and start time grew with the square of the objects. When the
// whole does not validate, every object an error names is dropped and the
// rest planned again; each pass drops at least one object, and a pass
// rarely uncovers more than one more (a frontend whose backend was
// dropped), so a few passes suffice.
func (d *Daemon) restore(st State) (State, *plan, error) {
	// The saved state was accepted: its tenants' objects wait for their
	// containers' names (waitingNames) as they did before the restart.
	d.restoring = true
	defer func() { d.restoring = false }()
	out := State{Ports: st.Ports, dirOwned: st.dirOwned}
	for _, n := range st.Namespaces {
		path := n.Path
		if path == "" {
			path = filepath.Join(d.reg.Dir(), n.Name)
		}
		if err := netns.CheckPath(path); err != nil {
			d.log.Warn("restore: namespace dropped", "netns", n.Name, "path", path, "err", err.Error())
			continue
		}
		out.Namespaces = append(out.Namespaces, n)
	}
	for _, a := range st.Attachments {
		if err := netns.CheckPath(a.Netns); err != nil {
			d.log.Warn("restore: attachment dropped", "container", a.ContainerID,
				"ifname", a.IfName, "netns", a.Netns, "err", err.Error())
			continue
		}
		out.Attachments = append(out.Attachments, a)
	}
	// A hand-edited state may hold an object twice: the first one wins,
	// as it did when objects were added one by one.
	seen := map[string]bool{}
	first := func(key string) bool {
		if seen[key] {
			d.log.Warn("restore: dropped, defined twice in the state file", "object", key)
			return false
		}
		seen[key] = true
		return true
	}
	for _, b := range st.Backends {
		if first(backendKey(b.Name)) {
			out.Backends = append(out.Backends, b)
		}
	}
	for _, sv := range st.Servers {
		if first(serverKey(sv.Backend, sv.Name)) {
			out.Servers = append(out.Servers, sv)
		}
	}
	for _, f := range st.Frontends {
		if first(frontendKey(f.Name)) {
			out.Frontends = append(out.Frontends, f)
		}
	}
	out.Manifests = st.Manifests
	out.Manifests.Tenants = slices.Clone(st.Manifests.Tenants)
	out.Manifests.Exposures = slices.Clone(st.Manifests.Exposures) // dropped from below, never in st's
	out.Manifests.Services = slices.Clone(st.Manifests.Services)
	// Names are given before the one plan, to the attachments that stay,
	// knowing the objects (a name another tenant's objects use is not
	// given).
	d.logNames(assignNames(d.file, &out, givenNames(d.state)))
	for {
		p, err := d.plan(d.file, out)
		if err == nil {
			if len(st.Namespaces)+len(st.Backends)+len(st.Servers)+len(st.Frontends)+len(st.Attachments)+len(st.Manifests.Tenants) > 0 {
				d.log.Info("restored run-time state", "namespaces", len(out.Namespaces), "backends", len(out.Backends),
					"servers", len(out.Servers), "frontends", len(out.Frontends), "attachments", len(out.Attachments),
					"tenants", len(out.Manifests.Tenants))
			}
			return out, p, nil
		}
		blamed := map[string][]string{}
		blame(err, blamed)
		dropped := 0
		keep := func(key string) bool {
			problems, bad := blamed[key]
			if bad {
				d.log.Warn("restore: dropped, no longer valid", "object", key, "err", strings.Join(problems, "; "))
				dropped++
			}
			return !bad
		}
		out.Backends = slices.DeleteFunc(out.Backends, func(b api.Backend) bool { return !keep(backendKey(b.Name)) })
		out.Servers = slices.DeleteFunc(out.Servers, func(sv api.Server) bool { return !keep(serverKey(sv.Backend, sv.Name)) })
		out.Frontends = slices.DeleteFunc(out.Frontends, func(f api.Frontend) bool { return !keep(frontendKey(f.Name)) })
		out.Manifests.Tenants = slices.DeleteFunc(out.Manifests.Tenants, func(t manifest.Tenant) bool {
			return !keep(manifest.KindTenant + "/" + t.Meta.Name)
		})
		out.Manifests.Exposures = slices.DeleteFunc(out.Manifests.Exposures, func(x manifest.Exposure) bool {
			return !keep(manifest.KindExposure + "/" + x.Meta.Name)
		})
		out.Manifests.Services = slices.DeleteFunc(out.Manifests.Services, func(x manifest.Service) bool {
			return !keep(manifest.KindService + "/" + x.Meta.Name)
		})
		dropped += d.dropRefused(&out, err, "restore")
		if dropped == 0 {
			return out, nil, err // not the saved objects' fault
		}
	}
}

// replay replaces the state's CNI attachments with the hooks' records.
func (d *Daemon) replay(st State) State {
	if d.opt.AttachmentDir == "" {
		return st
	}
	recs, errs := hooks.ListRecords(d.opt.AttachmentDir)
	for _, err := range errs {
		if path, ok, rerr := hooks.RemoveEarlierBoot(err); ok {
			if rerr != nil {
				d.log.Warn("attachment record of an earlier boot not removed", "err", rerr.Error())
			} else {
				d.log.Info("attachment record of an earlier boot removed", "record", path)
			}
			continue
		}
		d.log.Warn("attachment record skipped", "dir", d.opt.AttachmentDir, "err", err.Error())
	}
	// The records are the truth for the CNI plugin's attachments and for
	// every key they hold (the OCI hook writes them too); an OCI
	// attachment saved without a record (an older hook) stays.
	recorded := map[api.AttachmentKey]bool{}
	for _, r := range recs {
		recorded[api.AttachmentKey{ContainerID: r.ContainerID, IfName: r.IfName}] = true
	}
	kept := st.Attachments[:0:0]
	for _, a := range st.Attachments {
		if a.Source != api.SourceCNI && a.Source != "" && !recorded[a.AttachmentKey] {
			// Without a record, its namespace file is the only sign it
			// still runs (a hook's DELETE refused during a hand-over).
			if err := netns.CheckPath(a.Netns); err != nil {
				d.log.Warn("attachment dropped: no record and its namespace is gone", "container", a.ContainerID,
					"ifname", a.IfName, "netns", a.Netns, "err", err.Error())
				continue
			}
			kept = append(kept, a)
		}
	}
	for _, a := range recs { // api.Attachment is hooks.Attachment: no conversion
		if a.Source == "" {
			a.Source = api.SourceCNI
		}
		kept = append(kept, a)
	}
	d.log.Info("attachment records replayed", "dir", d.opt.AttachmentDir, "records", len(recs))
	// A state that holds recorded attachments was written for a successor
	// (saveForSuccessor) in the running daemon's order: that order wins.
	// Otherwise the state holds only the others (saved), and putting them
	// first gave an OCI container a port a CNI one had first: the records'
	// order (when each was first recorded) decides, as ListRecords gives it.
	if slices.ContainsFunc(st.Attachments, func(a api.Attachment) bool { return recordedSource(a.Source) }) {
		kept = inStateOrder(kept, st.Attachments)
	}
	st.Attachments = kept
	return st
}

// inStateOrder sorts atts as the same keys are in order (the running
// state, or the one a predecessor saved at a hand-over), the others after
// in their order. Who gets a contended port or name among containers that
// are not serving yet follows the state's order (plan), and the records'
// file names are not the order in which containers came.
func inStateOrder(atts, order []api.Attachment) []api.Attachment {
	if len(order) == 0 {
		return atts
	}
	pos := make(map[api.AttachmentKey]int, len(order))
	for i, a := range order {
		if _, ok := pos[a.AttachmentKey]; !ok {
			pos[a.AttachmentKey] = i
		}
	}
	slices.SortStableFunc(atts, func(a, b api.Attachment) int {
		pa, oka := pos[a.AttachmentKey]
		pb, okb := pos[b.AttachmentKey]
		switch {
		case oka && okb:
			return pa - pb
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
	return atts
}

// dropRecord removes the plugin's record of an attachment removed through
// the API, so that a restart does not bring it back.
func (d *Daemon) dropRecord(k api.AttachmentKey) {
	if d.opt.AttachmentDir == "" {
		return
	}
	if err := hooks.RemoveRecord(d.opt.AttachmentDir, k); err != nil {
		d.log.Warn("attachment record not removed", "container", k.ContainerID, "ifname", k.IfName, "err", err.Error())
	}
}

// mutate applies fn to a copy of the state, validates the result,
// persists it, then applies it: all of it or none. The returned error is
// an *objectError (invalid), a config error (invalid) or a store error.
func (d *Daemon) mutate(fn func(*State) error) error {
	return d.change(fn, true)
}

// change is mutate; objects false: a change of attachments only, which
// writes the state file only when an attachment it holds changed (see
// saved). A CNI ADD or DEL then costs no state write.
func (d *Daemon) change(fn func(*State) error, objects bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changeLocked(objects, fn)
}

// changeLocked applies fns in order to one copy of the state, then plans,
// persists and commits once. Call it with d.mu held.
func (d *Daemon) changeLocked(objects bool, fns ...func(*State) error) error {
	if d.ho.inProgress() {
		return errUpgrading
	}
	next := d.state.clone()
	for _, fn := range fns {
		if err := fn(&next); err != nil {
			return err
		}
	}
	kept := d.planCaches()
	p, err := d.plan(d.file, next)
	if err != nil {
		return &validationError{err}
	}
	next.Ports = p.ports
	if objects || !slices.Equal(d.state.Ports, next.Ports) ||
		!slices.EqualFunc(d.saved(d.state).Attachments, d.saved(next).Attachments, sameAttachment) {
		if err := d.store.save(d.saved(next)); err != nil {
			d.restorePlanCaches(kept)
			return fmt.Errorf("not applied: %w", err)
		}
	}
	return d.commit(next, p)
}

// attachmentRefused is an attachment the plan refuses on its own (its
// exposures do not validate: one host port on two host addresses, a zoned
// address). A write of it is refused; restore and replay drop it
// (dropRefused) instead of failing the start.
type attachmentRefused struct {
	key api.AttachmentKey
	err error
}

func (e *attachmentRefused) Error() string { return e.err.Error() }
func (e *attachmentRefused) Unwrap() error { return e.err }

// refusedAttachments are the attachments err refuses on their own.
func refusedAttachments(err error) map[api.AttachmentKey]string {
	out := map[api.AttachmentKey]string{}
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var r *attachmentRefused
		if errors.As(err, &r) {
			out[r.key] = r.err.Error()
		}
	}
	walk(err)
	return out
}

// dropRefused removes from st the attachments err refuses on their own,
// logging each with what to do (a record stays: the operator fixes or
// removes it), and reports how many it dropped.
func (d *Daemon) dropRefused(st *State, err error, during string) int {
	bad := refusedAttachments(err)
	if len(bad) == 0 {
		return 0
	}
	n := len(st.Attachments)
	st.Attachments = slices.DeleteFunc(slices.Clone(st.Attachments), func(a api.Attachment) bool {
		msg, refused := bad[a.AttachmentKey]
		if !refused {
			return false
		}
		args := []any{"container", a.ContainerID, "ifname", a.IfName, "netns", a.Netns, "err", msg}
		if d.opt.AttachmentDir != "" && recordedSource(a.Source) {
			args = append(args, "record", hooks.RecordPath(d.opt.AttachmentDir, a.AttachmentKey),
				"todo", "the record is kept: fix or remove it, then restart the daemon (or re-create the container)")
		}
		d.log.Error(during+": attachment refused, not served", args...)
		return true
	})
	return n - len(st.Attachments)
}

// validationError marks a desired state that failed validation.
type validationError struct{ err error }

func (e *validationError) Error() string { return e.err.Error() }
func (e *validationError) Unwrap() error { return e.err }

// snapshotState returns the current state, merged config and attachment
// status, for callers that read them without the lock: commit replaces the
// merged config whole, the attachments and their status are copied.
func (d *Daemon) snapshotState() (State, *config.Config, map[api.AttachmentKey]attachmentStatus) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state
	// The fast path (delta.go) changes the attachments and their status
	// in place: the caller gets copies.
	st.Attachments = slices.Clone(st.Attachments)
	return st, d.mergedLocked(), maps.Clone(d.attStatus)
}

// mergedNow is the running model, for callers that need only it.
func (d *Daemon) mergedNow() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mergedLocked()
}
