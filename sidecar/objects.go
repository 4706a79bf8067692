package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

// metaAttached marks a namespace the daemon bind-mounted itself (added by
// pid), so that deleting it also undoes the mount.
const metaAttached = "nsproxy.io/attached-pid"

// AddNamespace registers a namespace by name, path or pid. A pid's
// namespace is named in the netns directory, as `ip netns attach` does.
func (d *Daemon) AddNamespace(n api.Namespace) error {
	if err := validateNamespace(n); err != nil {
		return err
	}
	// Checked again in mutate, where the answer cannot change: this early
	// check avoids a netns attach that would only be undone.
	d.mu.Lock()
	st := d.state.clone()
	err := d.namespaceNameFree(&st, n.Name)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	attached := false
	switch {
	case n.Pid > 0:
		path, err := netns.Attach(d.reg.Dir(), n.Name, n.Pid)
		if err != nil {
			return &objectError{msg: "namespace " + n.Name, details: []string{err.Error()}}
		}
		n.Path, attached = path, true
		if n.Metadata == nil {
			n.Metadata = map[string]string{}
		}
		n.Metadata[metaAttached] = fmt.Sprint(n.Pid)
		n.Pid = 0
	case n.Path != "":
		if err := netns.CheckPath(n.Path); err != nil {
			return &objectError{msg: "namespace " + n.Name, details: []string{err.Error()}}
		}
	}
	n.Source, n.Tenant = api.SourceAPI, tenantOr(n.Tenant)
	n.Allowed, n.State, n.Identity, n.UsedBy = true, "", nil, nil
	err = d.mutate(func(s *State) error {
		if err := d.namespaceNameFree(s, n.Name); err != nil {
			return err
		}
		s.Namespaces = append(s.Namespaces, n)
		return nil
	})
	if err != nil && attached {
		netns.Detach(d.reg.Dir(), n.Name)
	}
	return err
}

// namespaceNameFree refuses a name the files, the API or an attachment
// owns, saying which: the API's user chose the name, so picking another
// is theirs to do. It reads d.file: call it with d.mu held.
func (d *Daemon) namespaceNameFree(st *State, name string) error {
	if slices.ContainsFunc(st.Namespaces, func(x api.Namespace) bool { return x.Name == name }) {
		return fmt.Errorf("namespace %q is already registered: %w", name, errConflict)
	}
	if owner := nameOwner(d.file, st, name); owner != "" {
		return fmt.Errorf("namespace name %q is owned by %s; pick another name: %w", name, owner, errConflict)
	}
	return nil
}

// DeleteNamespace unregisters a run-time namespace: everything that ran
// inside it closes, unless the configuration also names it.
func (d *Daemon) DeleteNamespace(name string) error {
	var view api.Namespace
	for _, n := range d.namespaces() {
		if n.Name == name {
			view = n
		}
		if n.Name == name && len(n.UsedBy) > 0 && n.Source == api.SourceAPI {
			return fmt.Errorf("namespace %q is in use by %s; delete or move those first: %w",
				name, strings.Join(n.UsedBy, ", "), errConflict)
		}
	}
	var removed api.Namespace
	err := d.mutate(func(s *State) error {
		i := slices.IndexFunc(s.Namespaces, func(x api.Namespace) bool { return x.Name == name })
		if i < 0 {
			if d.reg.Known(name) {
				if view.Source == api.SourceConfig || len(view.UsedBy) == 0 {
					return fmt.Errorf("namespace %q comes from the configuration files or an attachment, not the API: %w", name, errConflict)
				}
				return fmt.Errorf("namespace %q was not added with ns add: %s name it; delete or move those first: %w",
					name, strings.Join(view.UsedBy, ", "), errConflict)
			}
			return fmt.Errorf("namespace %q: %w", name, errNotFound)
		}
		removed = s.Namespaces[i]
		s.Namespaces = slices.Delete(s.Namespaces, i, i+1)
		return nil
	})
	if err == nil && removed.Metadata[metaAttached] != "" {
		if derr := netns.Detach(d.reg.Dir(), name); derr != nil {
			d.log.Warn("cannot detach namespace", "netns", name, "err", derr.Error())
		}
	}
	return err
}

// definedBy reports where a frontend or backend name is defined.
func (d *Daemon) definedBy(kind, name string) (config.Pos, bool) {
	merged := d.mergedNow()
	return definedIn(merged, kind, name)
}

func definedIn(merged *config.Config, kind, name string) (config.Pos, bool) {
	if kind == "frontend" {
		for _, f := range merged.Frontends {
			if f.Name == name {
				return f.Pos, true
			}
		}
		return config.Pos{}, false
	}
	for _, b := range merged.Backends {
		if b.Name == name {
			return b.Pos, true
		}
	}
	return config.Pos{}, false
}

func (d *Daemon) AddFrontend(f api.Frontend) error {
	if pos, ok := d.definedBy("frontend", f.Name); ok {
		return fmt.Errorf("frontend %q already exists (%s): %w", f.Name, pos, errConflict)
	}
	f.Source, f.Tenant, f.Listeners, f.Current, f.Total, f.BytesIn, f.BytesOut = api.SourceAPI, "", nil, 0, 0, 0, 0
	return d.mutate(func(s *State) error {
		s.Frontends = append(s.Frontends, f)
		return nil
	})
}

func (d *Daemon) DeleteFrontend(name string) error {
	return d.mutate(func(s *State) error {
		i := slices.IndexFunc(s.Frontends, func(x api.Frontend) bool { return x.Name == name })
		if i < 0 {
			return d.notRuntime("frontend", name)
		}
		s.Frontends = slices.Delete(s.Frontends, i, i+1)
		return nil
	})
}

func (d *Daemon) AddBackend(b api.Backend) error {
	if pos, ok := d.definedBy("backend", b.Name); ok {
		return fmt.Errorf("backend %q already exists (%s): %w", b.Name, pos, errConflict)
	}
	b.Source, b.Tenant = api.SourceAPI, ""
	for i := range b.Servers {
		b.Servers[i].Backend = b.Name
	}
	return d.mutate(func(s *State) error {
		s.Backends = append(s.Backends, b)
		return nil
	})
}

func (d *Daemon) DeleteBackend(name string) error {
	return d.mutate(func(s *State) error {
		i := slices.IndexFunc(s.Backends, func(x api.Backend) bool { return x.Name == name })
		if i < 0 {
			return d.notRuntime("backend", name)
		}
		s.Backends = slices.Delete(s.Backends, i, i+1)
		s.Servers = slices.DeleteFunc(s.Servers, func(x api.Server) bool { return x.Backend == name })
		return nil
	})
}

// AddServer adds a server to any backend, from the files or the API.
func (d *Daemon) AddServer(sv api.Server) error {
	merged := d.mergedNow()
	bi := slices.IndexFunc(merged.Backends, func(b *config.Backend) bool { return b.Name == sv.Backend })
	if bi < 0 {
		return fmt.Errorf("backend %q: %w", sv.Backend, errNotFound)
	}
	if pos := merged.Backends[bi].Pos; pos.Origin == config.OriginManifest {
		// Re-applying the manifest would leave the server without its backend.
		return fmt.Errorf("backend %q belongs to %s (%s); add the server to the manifest: %w", sv.Backend, blameKey(pos), pos, errConflict)
	}
	if slices.ContainsFunc(merged.Backends[bi].Servers, func(s *config.Server) bool { return s.Name == sv.Name }) {
		return fmt.Errorf("server %q already exists in backend %q: %w", sv.Name, sv.Backend, errConflict)
	}
	sv.Source = api.SourceAPI
	return d.mutate(func(s *State) error {
		if i := slices.IndexFunc(s.Backends, func(b api.Backend) bool { return b.Name == sv.Backend }); i >= 0 {
			s.Backends[i].Servers = append(s.Backends[i].Servers, sv)
			return nil
		}
		s.Servers = append(s.Servers, sv)
		return nil
	})
}

func (d *Daemon) DeleteServer(backend, name string) error {
	return d.mutate(func(s *State) error {
		match := func(x api.Server) bool { return x.Backend == backend && x.Name == name }
		if i := slices.IndexFunc(s.Servers, match); i >= 0 {
			s.Servers = slices.Delete(s.Servers, i, i+1)
			return nil
		}
		for bi := range s.Backends {
			if i := slices.IndexFunc(s.Backends[bi].Servers, func(x api.Server) bool { return x.Name == name }); i >= 0 && s.Backends[bi].Name == backend {
				s.Backends[bi].Servers = slices.Delete(s.Backends[bi].Servers, i, i+1)
				return nil
			}
		}
		return d.notRuntime("server", backend+"/"+name)
	})
}

// notRuntime explains why an object cannot be deleted through the API.
// It runs inside mutate, with d.mu held: it reads the model directly.
func (d *Daemon) notRuntime(kind, name string) error {
	merged := d.mergedLocked()
	switch kind {
	case "frontend", "backend":
		if pos, ok := definedIn(merged, kind, name); ok {
			if strings.HasPrefix(pos.File, "attachment ") {
				return fmt.Errorf("%s %q exposes an attachment's port; delete the attachment: %w", kind, name, errConflict)
			}
			if pos.Origin == config.OriginManifest {
				return fmt.Errorf("%s %q belongs to %s (%s); change or delete the manifest: %w", kind, name, blameKey(pos), pos, errConflict)
			}
			return fmt.Errorf("%s %q is defined in %s; edit the file and reload (SIGHUP): %w", kind, name, pos, errConflict)
		}
	case "server":
		b, s, _ := strings.Cut(name, "/")
		for _, cb := range merged.Backends {
			for _, cs := range cb.Servers {
				if cb.Name == b && cs.Name == s && cs.Pos.Origin == config.OriginManifest {
					return fmt.Errorf("server %q belongs to %s (%s); change or delete the manifest: %w", name, blameKey(cs.Pos), cs.Pos, errConflict)
				}
				if cb.Name == b && cs.Name == s {
					return fmt.Errorf("server %q is defined in %s; edit the file and reload (SIGHUP): %w", name, cs.Pos, errConflict)
				}
			}
		}
	}
	return fmt.Errorf("%s %q: %w", kind, name, errNotFound)
}

// PutAttachment adds or updates (same container id and ifname) an
// attachment; it reports whether it was an update.
func (d *Daemon) PutAttachment(a api.Attachment) (bool, error) {
	return d.putAttachment(context.Background(), a)
}

// putAttachment is PutAttachment for a request whose context ends when
// its client goes away. The CNI plugin writes its record before it sends
// the request and a DEL removes it before its DELETE: a CNI write whose
// client gave up before its turn and whose record is gone was superseded
// by a later DEL of the same key, and is not applied (it would bring a
// removed container back).
func (d *Daemon) putAttachment(ctx context.Context, a api.Attachment) (bool, error) {
	var bad []string
	if a.ContainerID == "" || a.IfName == "" {
		bad = append(bad, "containerID and ifname are required")
	}
	if a.Netns == "" || !strings.HasPrefix(a.Netns, "/") {
		bad = append(bad, fmt.Sprintf("netns %q: an absolute path is required", a.Netns))
	} else if err := netns.CheckPath(a.Netns); err != nil {
		bad = append(bad, "netns "+err.Error())
	}
	if a.Name != "" && !hooks.ValidName(a.Name) {
		bad = append(bad, fmt.Sprintf("name %q: use [A-Za-z0-9._:-]", a.Name))
	}
	if len(bad) > 0 {
		return false, detailsError("attachment "+a.ContainerID+"/"+a.IfName, bad)
	}
	if a.Source == "" {
		a.Source = api.SourceCNI
	}
	a.Tenant = tenantOr(a.Tenant)
	a = a.WithoutStatus()
	updated := false
	op := &attachmentOp{put: &a}
	err := d.mutateAttachments(func(s *State) error {
		prev := givenNames(*s)
		if i := slices.IndexFunc(s.Attachments, func(x api.Attachment) bool { return x.AttachmentKey == a.AttachmentKey }); i >= 0 {
			s.Attachments[i], updated = a, true
		} else {
			s.Attachments = append(s.Attachments, a)
		}
		op.moved = assignNames(d.file, s, prev)
		return nil
	}, op, func() bool {
		return ctx.Err() != nil && a.Source == api.SourceCNI && d.opt.AttachmentDir != "" && !d.hasRecord(a.AttachmentKey)
	})
	if errors.Is(err, errSuperseded) {
		d.log.Warn("attachment write not applied: its client gave up, and a later DEL of the container removed its record",
			"container", a.ContainerID, "ifname", a.IfName)
		return false, nil
	}
	moved := op.moved
	if err == nil {
		v, _ := d.attachmentView(a.AttachmentKey)
		d.log.Info("attachment registered", "container", a.ContainerID, "ifname", a.IfName, "netns", a.Netns,
			"name", attachmentNamespace(v), "exposed", v.Exposed, "problems", v.Problems)
		d.logNames(moved)
	}
	return updated, err
}

// attachmentView is what GET /v1/attachments shows of the attachment k,
// built for that one only: the answer to every ADD used to build the view
// of every live attachment.
func (d *Daemon) attachmentView(k api.AttachmentKey) (api.Attachment, bool) {
	d.mu.Lock()
	a, ok := d.attachmentLocked(k)
	status := map[api.AttachmentKey]attachmentStatus{k: d.attStatus[k]}
	d.mu.Unlock()
	if !ok {
		return api.Attachment{}, false
	}
	conflicts := map[string]netip.AddrPort{}
	for _, name := range append(status[k].exposedNames(), status[k].serviceNames()...) {
		for _, l := range d.engine.ListenersOf(name) {
			if l.Conflict {
				conflicts[l.Frontend] = l.Bind.Addr
			}
		}
	}
	return d.view(a, status[k], conflicts), true
}

// attachmentLocked is the attachment k of the state. With d.mu held.
func (d *Daemon) attachmentLocked(k api.AttachmentKey) (api.Attachment, bool) {
	if i, ok := d.fast.pos[k]; ok && i < len(d.state.Attachments) && d.state.Attachments[i].AttachmentKey == k {
		return d.state.Attachments[i], true
	}
	i := slices.IndexFunc(d.state.Attachments, func(a api.Attachment) bool { return a.AttachmentKey == k })
	if i < 0 {
		return api.Attachment{}, false
	}
	return d.state.Attachments[i], true
}

// view is an attachment with its status, as the API shows it.
func (d *Daemon) view(a api.Attachment, status attachmentStatus, conflicts map[string]netip.AddrPort) api.Attachment {
	a.State = api.StateMissing
	if _, err := d.reg.Get(attachmentNamespace(a)); err == nil {
		a.State = api.StateAvailable
	}
	s := withConflicts(status, conflicts)
	a.Exposures, a.Exposed, a.Problems = s.exposures, s.exposedNames(), s.problems
	a.Owner, a.Services = s.tenant, s.services
	return a
}

// attachmentName is the name given to the attachment k ("" if none).
func (d *Daemon) attachmentName(k api.AttachmentKey) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.attachmentLocked(k); ok {
		return attachmentNamespace(a)
	}
	return ""
}

// DeleteAttachment removes an attachment; removing a missing one is fine
// (CNI DEL must be idempotent).
func (d *Daemon) DeleteAttachment(k api.AttachmentKey) error {
	return d.deleteAttachment(context.Background(), k)
}

// deleteAttachment is DeleteAttachment for a request whose context ends
// when its client goes away. Every hook removes its record before it
// sends DELETE, and writes it before it sends POST: a DELETE whose client
// gave up before its turn (the daemon's lock held past the hooks'
// timeout) while a record of the key exists was superseded by a later ADD
// of the same key (podman restart: DEL, then ADD), and is not applied; and
// a DELETE whose client went away removes no record, which can only be
// that later ADD's. A DELETE whose client still waits removes the record
// (an API DELETE of a CNI attachment: a restart must not bring it back).
func (d *Daemon) deleteAttachment(ctx context.Context, k api.AttachmentKey) error {
	d.mu.Lock()
	_, ok := d.attachmentLocked(k)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	err := d.mutateAttachments(func(s *State) error {
		s.Attachments = slices.DeleteFunc(s.Attachments, func(a api.Attachment) bool { return a.AttachmentKey == k })
		return nil
	}, &attachmentOp{del: &k}, func() bool { return ctx.Err() != nil && d.hasRecord(k) })
	if errors.Is(err, errSuperseded) {
		d.log.Warn("attachment DELETE not applied: its client gave up, and a later ADD of the container wrote a record",
			"container", k.ContainerID, "ifname", k.IfName,
			"record", hooks.RecordPath(d.opt.AttachmentDir, k))
		return nil
	}
	if err == nil {
		if ctx.Err() == nil {
			d.dropRecord(k)
		}
		d.log.Info("attachment removed", "container", k.ContainerID, "ifname", k.IfName)
	}
	return err
}

// hasRecord reports whether the hooks' record of k exists.
func (d *Daemon) hasRecord(k api.AttachmentKey) bool {
	if d.opt.AttachmentDir == "" {
		return false
	}
	_, err := os.Lstat(hooks.RecordPath(d.opt.AttachmentDir, k))
	return err == nil
}

// GCAttachments keeps only the valid attachments.
func (d *Daemon) GCAttachments(valid []api.AttachmentKey) ([]api.AttachmentKey, error) {
	keep := map[api.AttachmentKey]bool{}
	for _, k := range valid {
		keep[k] = true
	}
	var removed []api.AttachmentKey
	err := d.change(func(s *State) error { // not batched: it appends to removed
		s.Attachments = slices.DeleteFunc(s.Attachments, func(a api.Attachment) bool {
			if !keep[a.AttachmentKey] {
				removed = append(removed, a.AttachmentKey)
				return true
			}
			return false
		})
		return nil
	}, false)
	if err != nil {
		return nil, err
	}
	for _, k := range removed {
		d.dropRecord(k)
	}
	if len(removed) > 0 {
		d.log.Info("attachments garbage-collected", "removed", len(removed))
	}
	return removed, nil
}

// Views: API objects built from the merged config, the registry and the
// engine's snapshot.

func (d *Daemon) namespaces() []api.Namespace {
	st, merged, _ := d.snapshotState()
	used := map[string][]string{}
	// The registry knows every name the model uses as "config"; a name no
	// file gives (namespace_list, or a file's object) comes from its users'
	// source: an API server's namespace is the API's, not a -f file's.
	fromFile := map[string]bool{}
	userSource := map[string]string{}
	use := func(name, user string, pos config.Pos) {
		used[name] = append(used[name], user)
		if src := sourceOf(pos); src == api.SourceConfig {
			fromFile[name] = true
		} else if userSource[name] == "" {
			userSource[name] = src
		}
	}
	for _, n := range merged.Namespaces {
		if sourceOf(n.Pos) == api.SourceConfig {
			fromFile[n.Name] = true
		}
	}
	for _, f := range merged.Frontends {
		for _, b := range f.Binds {
			if b.Namespace != "" {
				use(b.Namespace, "frontend/"+f.Name, f.Pos)
			}
		}
	}
	for _, b := range merged.Backends {
		for _, s := range b.Servers {
			if s.Namespace != "" {
				use(s.Namespace, "backend/"+b.Name+"/server/"+s.Name, s.Pos)
			}
		}
	}
	for _, a := range st.Attachments {
		n := attachmentNamespace(a)
		used[n] = append(used[n], "attachment/"+a.ContainerID+"/"+a.IfName)
	}
	out := []api.Namespace{}
	for _, e := range d.reg.Status() {
		n := api.Namespace{Name: e.Name, Path: e.Path, Source: e.Source, Tenant: tenantOr(e.Tenant), Allowed: e.Allowed,
			State: api.StateMissing, Metadata: e.Metadata, UsedBy: slices.Compact(used[e.Name])}
		if src := userSource[e.Name]; n.Source == api.SourceConfig && !fromFile[e.Name] && src != "" {
			n.Source = src
		}
		if e.Available {
			n.State = api.StateAvailable
			n.Identity = &api.Identity{Dev: e.Identity.Dev, Ino: e.Identity.Ino, Cookie: e.Identity.Cookie}
		}
		out = append(out, n)
	}
	return out
}

func (d *Daemon) frontends() []api.Frontend {
	merged := d.mergedNow()
	snap := d.engine.Snapshot()
	stats := map[string]proxy.FrontendStats{}
	for _, f := range snap.Frontends {
		stats[f.Name] = f
	}
	out := []api.Frontend{}
	for _, f := range merged.Frontends {
		af := apiFrontend(f)
		fs := stats[f.Name]
		af.Current, af.Total, af.BytesIn, af.BytesOut = fs.Current, fs.Total, fs.BytesIn, fs.BytesOut
		for _, l := range fs.Listeners {
			af.Listeners = append(af.Listeners, api.Listener{Addr: l.Bind.Addr.String(), Namespace: l.Netns,
				Listening: l.Listening, Error: l.Err})
		}
		out = append(out, af)
	}
	return out
}

func (d *Daemon) backends() []api.Backend {
	merged := d.mergedNow()
	snap := d.engine.Snapshot()
	stats := map[string]map[string]proxy.ServerStats{}
	for _, b := range snap.Backends {
		stats[b.Name] = map[string]proxy.ServerStats{}
		for _, s := range b.Servers {
			stats[b.Name][s.Name] = s
		}
	}
	out := []api.Backend{}
	for _, b := range merged.Backends {
		ab := apiBackend(b)
		for i := range ab.Servers {
			as := &ab.Servers[i]
			ss := stats[b.Name][as.Name]
			as.Up, as.DownReason, as.Active, as.Total, as.ConnectErrors = ss.Up, ss.DownReason, ss.Active, ss.Total, ss.ConnectErrors
		}
		out = append(out, ab)
	}
	return out
}

func (d *Daemon) servers() []api.Server {
	var out []api.Server
	for _, b := range d.backends() {
		out = append(out, b.Servers...)
	}
	return out
}

func (d *Daemon) connections() []api.Connection {
	out := []api.Connection{}
	for _, c := range d.engine.Connections() {
		out = append(out, api.Connection{ID: c.ID, Frontend: c.Frontend, Backend: c.Backend, Server: c.Server,
			Client: c.Client, ClientNetns: c.ClientNetns, ServerNetns: c.ServerNetns, Start: c.Start,
			BytesIn: c.BytesIn, BytesOut: c.BytesOut})
	}
	return out
}

func (d *Daemon) attachments() []api.Attachment {
	st, _, status := d.snapshotState()
	conflicts := d.listenerConflicts()
	out := []api.Attachment{}
	for _, a := range st.Attachments {
		out = append(out, d.view(a, status[a.AttachmentKey], conflicts))
	}
	return out
}

// AttachmentCount is the number of attachments (for metrics).
func (d *Daemon) AttachmentCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.state.Attachments)
}

func (d *Daemon) stats() api.Stats {
	snap := d.engine.Snapshot()
	st := api.Stats{Uptime: time.Since(d.started).Round(time.Second).String(), Namespaces: d.reg.Count(),
		Frontends: len(snap.Frontends), Backends: len(snap.Backends), Connections: snap.Connections,
		Attachments: d.AttachmentCount()}
	for _, f := range snap.Frontends {
		st.Total += f.Total
		st.BytesIn += f.BytesIn
		st.BytesOut += f.BytesOut
	}
	for _, b := range snap.Backends {
		for _, s := range b.Servers {
			st.Servers++
			if s.Up {
				st.ServersUp++
				continue
			}
			if st.ServersDown == nil {
				st.ServersDown = map[string]int{}
			}
			st.ServersDown[s.DownReason]++
		}
	}
	return st
}
