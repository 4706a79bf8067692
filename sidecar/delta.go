package sidecar

import (
	"maps"
	"runtime/debug"
	"slices"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

// The attachment fast path (issue 13). A CNI ADD or DEL changes one
// attachment; planning the whole desired state for it made each write cost
// grow with the live containers (5,000 live: 20–25 ms per ADD+DEL). When
// the last full plan leaves nothing an attachment could change for anyone
// else, an attachment write is applied at the cost of that attachment:
// the indexes a full plan builds (given names, bound ports, object names,
// kernel namespaces) are kept between writes and updated per attachment,
// its exposures are checked against them, its namespace alone is
// registered or unregistered, and the engine gets a delta.
//
// The fast path is taken only where its answer is the full plan's
// (TestFastPathAgreesWithPlan, with and without tenant manifests): no
// attachment refused for its namespace, a CNI attachment (its record is
// its durable copy: no state write), a new key (an update plans fully), a
// name no object of the files, the API or a manifest uses, a kernel
// namespace no other tenant holds, a range rule's port that is the
// attachment's preferred one (another port is an allocation in the state
// file), and for a DEL no attachment whose exposure a conflict or a limit
// left out (the DEL may free its port, name or limit) and no allocation
// to drop. While some attachment is left out, an ADD into a tenant with
// limits or a port range plans fully too (the plan's order decides who
// gets the limit or the range). Tenants' selectors, limits, fixed-port
// exposures and service listeners are the fast path's: the tenant index
// is built once per manifest change, and each tenant's use is counted.
// Any other write plans fully and rebuilds the indexes at its commit.

// attachmentIndex is what the fast path keeps from the last full plan.
type attachmentIndex struct {
	ok       bool                      // the last full plan allows the fast path
	pos      map[api.AttachmentKey]int // each attachment's index in d.state.Attachments
	names    map[string]bool           // the names given to attachments
	owners   map[string]string         // names no attachment may take (nameOwners)
	objNames map[string]bool           // frontend names of the running model (plan's names)
	baseNS   map[string]bool           // namespace names the model's own objects use
	ids      identityIndex             // kernel namespaces given out
	idCount  map[kernelNS]int          // attachments in each kernel namespace
	blocked  int                       // attachments with an exposure a conflict or a limit left out
	use      tenantUse                 // what each tenant holds, for its limits
	held     map[int]allocKey          // range rules' ports allocated in the state file
	alloc    map[api.AttachmentKey]int // allocations per attachment (State.Ports)
	base     *config.Config            // the running model without the exposures
	stale    bool                      // d.merged is nil: mergedLocked rebuilds it
	peak     int                       // most live attachments since the maps were made
}

// indexAttachments builds the fast path's indexes from a committed full
// plan of st. With d.mu held.
func (d *Daemon) indexAttachments(st State, p *plan) {
	x := attachmentIndex{ok: p.shared == 0,
		pos: make(map[api.AttachmentKey]int, len(st.Attachments)), names: make(map[string]bool, len(st.Attachments)),
		owners: nameOwners(p.file, &st), objNames: p.objNames, baseNS: map[string]bool{}, ids: p.ids,
		idCount: map[kernelNS]int{}, blocked: p.blocked, base: p.base, peak: max(d.fast.peak, len(st.Attachments)),
		use: p.use, alloc: map[api.AttachmentKey]int{}}
	_, x.held = portAllocations(st.Ports)
	for _, pa := range st.Ports {
		x.alloc[pa.AttachmentKey]++
	}
	for _, n := range p.base.NamespaceNames() {
		x.baseNS[n] = true
	}
	for i, a := range st.Attachments {
		x.pos[a.AttachmentKey] = i
		x.names[attachmentNamespace(a)] = true
		if c := d.exposed.prev[a.AttachmentKey]; c != nil && c.id.Ino != 0 {
			x.idCount[kernelNS{c.id.Dev, c.id.Ino}]++
		}
	}
	d.fast = x
}

// engineDelta gathers the engine changes of fast writes for one
// proxy.Engine.ApplyDelta. A name added then removed cancels out; removed
// then added is a replacement (ApplyDelta removes first).
type engineDelta struct {
	frontends map[string]proxy.FrontendSpec
	backends  map[string]proxy.BackendSpec
	rmFront   []string
	rmBack    []string
	gone      []string // namespaces unregistered: the engine folds their counters
	changed   bool
}

func (ed *engineDelta) add(x exposure) {
	if ed.frontends == nil {
		ed.frontends, ed.backends = map[string]proxy.FrontendSpec{}, map[string]proxy.BackendSpec{}
	}
	ed.frontends[x.frontend.Name] = frontendSpec(x.frontend)
	ed.backends[x.backend.Name] = backendSpec(x.backend)
	ed.changed = true
}

func (ed *engineDelta) remove(x exposure) {
	ed.changed = true
	if _, ok := ed.frontends[x.frontend.Name]; ok {
		delete(ed.frontends, x.frontend.Name)
	} else {
		ed.rmFront = append(ed.rmFront, x.frontend.Name)
	}
	if _, ok := ed.backends[x.backend.Name]; ok {
		delete(ed.backends, x.backend.Name)
	} else {
		ed.rmBack = append(ed.rmBack, x.backend.Name)
	}
}

func (ed *engineDelta) delta(tenantMax map[string]int) proxy.Delta {
	out := proxy.Delta{RemoveFrontends: ed.rmFront, RemoveBackends: ed.rmBack, TenantMaxConn: tenantMax,
		GoneNamespaces: ed.gone}
	for _, fs := range ed.frontends {
		out.Frontends = append(out.Frontends, fs)
	}
	for _, bs := range ed.backends {
		out.Backends = append(out.Backends, bs)
	}
	return out
}

// fastWritable: attachments of a's source may take the fast path now.
func (d *Daemon) fastWritable(a api.Attachment) bool {
	return d.fast.ok && d.fast.pos != nil && d.opt.AttachmentDir != "" && recordedSource(a.Source)
}

// fastPut adds the new attachment a as a full plan would, at the cost of
// a. It reports false, having changed nothing, when a needs a full plan.
func (d *Daemon) fastPut(a api.Attachment, ed *engineDelta) ([]movedName, bool) {
	x := &d.fast
	if !d.fastWritable(a) {
		return nil, false
	}
	if _, ok := x.pos[a.AttachmentKey]; ok {
		return nil, false // an update: its name, exposures and entry may all move
	}
	// assignNames for a key that is new: the first free candidate.
	name := ""
	for j := 0; name == ""; j++ {
		if c := nameCandidate(a, j); x.owners[c] == "" && !x.names[c] {
			name = c
		}
	}
	if x.baseNS[name] {
		return nil, false // an object uses the name: tenant references and name resolution change
	}
	a.Name = name
	c := buildExposures(a, d.tenants, nil)
	if c.err != nil {
		return nil, false // refused: the full plan says why, to this write only
	}
	tenant := tenantOr(c.tenant)
	var lim manifest.Limits
	if d.tenants != nil {
		lim = d.tenants.limits(c.tenant)
	}
	if x.alloc[a.AttachmentKey] > 0 {
		return nil, false // a port allocated to this key: the plan starts from it
	}
	if x.blocked > 0 && (lim.MaxExposedPorts > 0 || lim.MaxListeners > 0 || slices.ContainsFunc(c.xs, func(e exposure) bool { return e.lo > 0 })) {
		return nil, false // an attachment left out ahead of a in the plan's order may take the limit or the range
	}
	k := kernelNS{c.id.Dev, c.id.Ino}
	if h, held := x.ids[k]; c.id.Ino != 0 && held && h.tenant != tenant {
		return nil, false // another tenant's namespace: refused, and the plan orders claims
	}
	// The plan's pass over a new attachment (daemon.go): the port, the
	// name, then the limits; decided before anything changes, since a
	// range rule whose preferred port is not free needs the plan.
	problem := make([]string, len(c.xs))
	var mine config.BindSet
	mineNames := map[string]bool{}
	u := *x.use.of(c.tenant)
	for i, e := range c.xs {
		_, _, taken := d.live.Conflict(e.bind)
		if !taken {
			_, _, taken = mine.Conflict(e.bind)
		}
		if e.lo > 0 {
			if _, allocated := x.held[int(e.bind.Addr.Port())]; allocated || taken {
				return nil, false // the plan looks for another port of the range and allocates it
			}
		}
		switch {
		case taken:
			problem[i] = portTaken(e)
		case x.objNames[e.frontend.Name] || mineNames[e.frontend.Name]:
			problem[i] = nameTaken(e)
		default:
			problem[i] = limitProblem(e, c.tenant, lim, u)
		}
		if problem[i] != "" {
			continue
		}
		mine.Add(e.bind, e.frontend)
		mineNames[e.frontend.Name] = true
		u.take(e, 1)
	}
	// Nothing refuses a from here on.
	if c.id.Ino != 0 {
		x.ids.claim(c.id, tenant, name)
		x.idCount[k]++
	}
	problems := slices.Clone(c.problems)
	var exposed []api.Exposure
	var services []api.ServiceListener
	left := false
	for i, e := range c.xs {
		if problem[i] != "" {
			problems = append(problems, problem[i])
			left = true
			continue
		}
		d.live.Add(e.bind, e.frontend)
		x.objNames[e.frontend.Name] = true
		x.use.uses(c.tenant, e, 1)
		if e.service != nil {
			services = append(services, *e.service)
		} else {
			exposed = append(exposed, api.Exposure{PortMapping: e.mapping, Frontend: e.frontend.Name, Rule: e.rule})
		}
		ed.add(e)
	}
	if left {
		x.blocked++
	}
	d.attStatus[a.AttachmentKey] = attachmentStatus{exposures: exposed, problems: problems, tenant: c.tenant,
		services: services, overlap: c.overlap, claims: c.claims}
	d.exposed.prev[a.AttachmentKey] = c
	if e := attachmentEntry(a, tenant); d.reg.Register(e) != nil {
		d.log.Warn("namespace not registered", "netns", name, "path", a.Netns)
	} else {
		d.registered[name], d.builtFrom[name] = e, a
	}
	x.pos[a.AttachmentKey] = len(d.state.Attachments)
	d.state.Attachments = append(d.state.Attachments, a)
	x.names[name] = true
	x.peak = max(x.peak, len(d.state.Attachments))
	x.stale = true
	d.merged = nil // mergedLocked rebuilds it; kept, it held every exposure of the last full plan
	if r := requestedName(a); r != name {
		return []movedName{{a.AttachmentKey, r, name, x.owners[r]}}, true
	}
	return nil, true
}

// fastDelete removes the attachment k as a full plan would, at the cost
// of k. It reports false, having changed nothing, when that needs a full
// plan. A missing k is removed already.
func (d *Daemon) fastDelete(k api.AttachmentKey, ed *engineDelta) bool {
	x := &d.fast
	if x.pos == nil {
		return false
	}
	i, ok := x.pos[k]
	if !ok {
		return true
	}
	a := d.state.Attachments[i]
	name := attachmentNamespace(a)
	c := d.exposed.prev[k]
	status := d.attStatus[k]
	if !d.fastWritable(a) || x.blocked > 0 || x.baseNS[name] || x.owners[name] != "" || c == nil || status.shared || x.alloc[k] > 0 {
		return false
	}
	id := kernelNS{c.id.Dev, c.id.Ino}
	if c.id.Ino != 0 && x.idCount[id] > 1 && x.ids[id].name == name {
		return false // its namespace's next holder is the plan's to choose
	}
	if !d.registeredFrom(name, a) {
		return false
	}
	placed := placedExposures(c, status)
	if len(placed) != len(status.exposures)+len(status.services) {
		return false // the cache is not what the status was built from: plan
	}
	// Nothing refuses the removal from here on.
	if c.id.Ino != 0 {
		if x.idCount[id]--; x.idCount[id] <= 0 {
			delete(x.idCount, id)
			if x.ids[id].name == name {
				delete(x.ids, id)
			}
		}
	}
	for _, xe := range placed {
		x.use.uses(status.tenant, xe, -1)
		d.live.Remove(xe.bind, xe.frontend)
		delete(x.objNames, xe.frontend.Name)
		ed.remove(xe)
	}
	delete(d.attStatus, k)
	delete(d.exposed.prev, k)
	d.reg.Unregister(name)
	ed.gone = append(ed.gone, name)
	ed.changed = true
	delete(d.registered, name)
	delete(d.builtFrom, name)
	delete(x.names, name)
	delete(x.pos, k)
	// The last attachment takes k's place: a DEL costs no move of the
	// others. State order decides only between attachments in one kernel
	// namespace (claims), so one that shares its namespace keeps its order.
	atts := d.state.Attachments
	last := len(atts) - 1
	if lc := d.exposed.prev[atts[last].AttachmentKey]; i != last && (lc == nil || lc.id.Ino == 0 || x.idCount[kernelNS{lc.id.Dev, lc.id.Ino}] <= 1) {
		atts[i] = atts[last]
		x.pos[atts[i].AttachmentKey] = i
	} else if i != last {
		copy(atts[i:], atts[i+1:])
		for j := i; j < last; j++ {
			x.pos[atts[j].AttachmentKey] = j
		}
	}
	atts[last] = api.Attachment{} // let go of its strings and maps
	d.state.Attachments = atts[:last]
	x.stale = true
	d.merged = nil // mergedLocked rebuilds it; kept, it held every exposure of the last full plan
	return true
}

// registeredFrom: the registry holds name as built from a (the fast path
// unregisters only what it would have registered).
func (d *Daemon) registeredFrom(name string, a api.Attachment) bool {
	_, ok := d.registered[name]
	return ok && sameAttachment(d.builtFrom[name], a)
}

// applyEngineDelta gives the engine what fast writes changed, then lets go
// of memory when the live attachments shrank well below their peak.
func (d *Daemon) applyEngineDelta(ed *engineDelta) error {
	var err error
	if ed.changed {
		err = d.engine.ApplyDelta(ed.delta(d.tenants.maxConnections()))
	}
	d.shrink()
	return err
}

// shrink rebuilds the daemon's per-attachment maps once the live
// attachments fell below a quarter of their peak (a Go map keeps its
// largest bucket array), and has the freed heap returned to the OS
// (freeOSMemory): after a node's containers leave, the daemon's RSS goes
// back near where it started instead of staying at the peak's.
func (d *Daemon) shrink() {
	x := &d.fast
	n := len(d.state.Attachments)
	m := &d.memory
	removed := n < m.last
	m.last, m.peak = n, max(m.peak, n)
	if removed && m.peak >= shrinkFloor && n <= m.peak/4 {
		d.freeOSMemory()
	}
	if x.peak < shrinkFloor || n > x.peak/4 {
		return
	}
	x.pos = maps2(x.pos)
	x.names = maps2(x.names)
	x.objNames = maps2(x.objNames)
	x.idCount = maps2(x.idCount)
	d.attStatus = maps2(d.attStatus)
	d.exposed.prev = maps2(d.exposed.prev)
	d.registered = maps2(d.registered)
	d.builtFrom = maps2(d.builtFrom)
	d.live.Compact(x.peak)
	d.state.Attachments = slices.Clip(slices.Clone(d.state.Attachments))
	x.peak = n
}

// memoryReturn is when the daemon last gave freed heap back to the OS.
type memoryReturn struct {
	last  int         // live attachments after the last batch
	peak  int         // most live attachments since the last return
	freed time.Time   // the last return
	armed bool        // a return is due (timer set)
	timer *time.Timer // the due return; stopped when the daemon stops
}

// freeOSMemory returns the freed heap to the OS once the DELs of a burst
// are done (1 s after the last that asked, so the burst's garbage goes
// too) and at most every 10 s: debug.FreeOSMemory is a forced GC. With
// d.mu held.
func (d *Daemon) freeOSMemory() {
	m := &d.memory
	if m.armed {
		return
	}
	m.armed = true
	wait := max(time.Second, 10*time.Second-time.Since(m.freed))
	m.timer = time.AfterFunc(wait, func() {
		d.mu.Lock()
		m.armed, m.freed = false, time.Now()
		// Below the floor, DELs that leave a quarter of this ask again:
		// the heap goes back down to what the last containers need (a
		// forced GC of a small heap, at most every 10 s while DELs come).
		m.peak = max(len(d.state.Attachments), shrinkFloor)
		d.mu.Unlock()
		debug.FreeOSMemory()
	})
}

// stopMemoryReturn cancels a due return of memory (the daemon stops).
func (d *Daemon) stopMemoryReturn() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.memory.timer != nil {
		d.memory.timer.Stop()
	}
}

// shrinkFloor: below this many attachments at the peak, the maps are left
// as they are.
const shrinkFloor = 256

// maps2 is m copied into a map sized for what it holds now (maps.Clone
// keeps the source's capacity).
func maps2[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	maps.Copy(out, m)
	return out
}

// mergedLocked is the running model; after fast writes it is rebuilt from
// the last full plan's base and the exposures placed since, in state
// order, as a full plan builds it. With d.mu held.
func (d *Daemon) mergedLocked() *config.Config {
	if !d.fast.stale {
		return d.merged
	}
	base := d.fast.base
	m := &config.Config{Global: base.Global, Namespaces: base.Namespaces,
		Frontends: slices.Clone(base.Frontends), Backends: slices.Clone(base.Backends)}
	for _, a := range d.state.Attachments {
		c := d.exposed.prev[a.AttachmentKey]
		if c == nil {
			continue
		}
		for _, xe := range placedExposures(c, d.attStatus[a.AttachmentKey]) {
			m.Frontends = append(m.Frontends, xe.frontend)
			m.Backends = append(m.Backends, xe.backend)
		}
	}
	d.merged, d.fast.stale = m, false
	return m
}

// placedExposures are the exposures and service listeners of c that the
// status says were placed, in c's order (the plan's).
func placedExposures(c *cachedExposures, s attachmentStatus) []exposure {
	n := len(s.exposures) + len(s.services)
	if n == 0 {
		return nil
	}
	out := make([]exposure, 0, n)
	for _, xe := range c.xs {
		name := xe.frontend.Name
		// A name is placed once: an exposure whose name an earlier one
		// of c took was left out ("name is taken").
		if slices.ContainsFunc(out, func(o exposure) bool { return o.frontend.Name == name }) {
			continue
		}
		if slices.ContainsFunc(s.exposures, func(e api.Exposure) bool { return e.Frontend == name }) ||
			slices.ContainsFunc(s.services, func(sv api.ServiceListener) bool { return sv.Frontend == name }) {
			out = append(out, xe)
		}
	}
	return out
}
