package sidecar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// Tenant manifests through the control API and the --manifests directory.
//
// The CLI sends each file's name and bytes; the daemon decodes them
// (manifest.Decode), so that every problem names the user's file, line
// and column, and no second decoder exists in the CLI.
//
// Ownership: a document (KIND/NAME) belongs to the API (nsproxy apply) or
// to the --manifests directory. The directory is the source of its
// documents, as the -f files are of theirs: they are not written to the
// state file, a reload replaces all of them (a document whose file was
// removed is deleted), and the API may neither apply nor delete them (409
// naming the directory). A directory document with the name of an API
// document takes it over (logged): the operator's directory wins.

// manifestOp is what a manifest request does.
type manifestOp int

const (
	opApply  manifestOp = iota // create or replace the documents
	opDelete                   // remove the documents named
	opDiff                     // what opApply would change; changes nothing
)

// docRef is one document of a Set: KIND/NAME, its tenant, where it is.
type docRef struct {
	key, tenant string
	pos         manifest.Pos
}

func docKey(kind, name string) string { return kind + "/" + name }

// docRefs lists the documents of s in order (Tenants, Exposures, Services).
func docRefs(s manifest.Set) []docRef {
	var out []docRef
	for _, t := range s.Tenants {
		out = append(out, docRef{docKey(manifest.KindTenant, t.Meta.Name), t.Meta.Name, t.Meta.Pos})
	}
	for _, x := range s.Exposures {
		out = append(out, docRef{docKey(manifest.KindExposure, x.Meta.Name), x.Meta.Tenant, x.Meta.Pos})
	}
	for _, x := range s.Services {
		out = append(out, docRef{docKey(manifest.KindService, x.Meta.Name), x.Meta.Tenant, x.Meta.Pos})
	}
	return out
}

func refKeys(refs []docRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.key
	}
	return out
}

// ManifestFiles reads what -f PATH (nsproxy apply/delete/diff) means:
// manifest.Files(path), the rule --manifests DIR also follows. The CLI
// sends them as they are, so that the daemon's errors name them.
func ManifestFiles(path string) ([]api.ManifestFile, error) {
	names, err := manifest.Files(path)
	if err != nil {
		return nil, err
	}
	var out []api.ManifestFile
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, api.ManifestFile{Name: n, Data: string(b)})
	}
	return out, nil
}

// decodeManifests decodes every file and puts their documents together; a
// KIND/NAME defined twice is an error naming both places. Every problem of
// every file is reported.
func decodeManifests(files []api.ManifestFile) (manifest.Set, error) {
	var errs []error
	var out manifest.Set
	out.Positions = map[string]manifest.Pos{}
	seen := map[string]manifest.Pos{}
	for _, f := range files {
		if f.Name == "" {
			errs = append(errs, errors.New("a manifest file has no name: send the name the user gave"))
			continue
		}
		s, err := manifest.Decode(f.Name, []byte(f.Data))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range docRefs(s) {
			if p, dup := seen[r.key]; dup {
				errs = append(errs, fmt.Errorf("%s: %s is also defined at %s: a name is one document; rename or remove one", r.pos, r.key, p))
			}
			seen[r.key] = r.pos
		}
		out.Tenants = append(out.Tenants, s.Tenants...)
		out.Exposures = append(out.Exposures, s.Exposures...)
		out.Services = append(out.Services, s.Services...)
		maps.Copy(out.Positions, s.Positions)
	}
	if len(errs) > 0 {
		return manifest.Set{}, errors.Join(errs...)
	}
	return out, nil
}

// ofDoc reports whether a position path belongs to the document key:
// the key itself or a field under one of a document's top-level fields
// (names may hold dots: "Tenant/a.spec" is Tenant/a's, "Tenant/a.b" is not).
func ofDoc(path, key string) bool {
	rest, ok := strings.CutPrefix(path, key)
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	for _, top := range []string{".spec", ".metadata", ".apiVersion", ".kind"} {
		if r, ok := strings.CutPrefix(rest, top); ok && (r == "" || r[0] == '.' || r[0] == '[') {
			return true
		}
	}
	return false
}

// withoutDocs is cur without the documents keys names.
func withoutDocs(cur manifest.Set, keys []string) manifest.Set {
	drop := map[string]bool{}
	for _, k := range keys {
		drop[k] = true
	}
	out := manifest.Set{Positions: map[string]manifest.Pos{}}
	for _, t := range cur.Tenants {
		if !drop[docKey(manifest.KindTenant, t.Meta.Name)] {
			out.Tenants = append(out.Tenants, t)
		}
	}
	for _, x := range cur.Exposures {
		if !drop[docKey(manifest.KindExposure, x.Meta.Name)] {
			out.Exposures = append(out.Exposures, x)
		}
	}
	for _, x := range cur.Services {
		if !drop[docKey(manifest.KindService, x.Meta.Name)] {
			out.Services = append(out.Services, x)
		}
	}
	for p, pos := range cur.Positions {
		if !slices.ContainsFunc(keys, func(k string) bool { return ofDoc(p, k) }) {
			out.Positions[p] = pos
		}
	}
	return out
}

// onlyDocs is the part of s that keys names.
func onlyDocs(s manifest.Set, keys []string) manifest.Set {
	var others []string
	for _, r := range docRefs(s) {
		if !slices.Contains(keys, r.key) {
			others = append(others, r.key)
		}
	}
	return withoutDocs(s, others)
}

// withDocs is cur with every document of docs created or replaced; a
// replaced document keeps its place.
func withDocs(cur, docs manifest.Set) manifest.Set {
	out := manifest.Set{Positions: map[string]manifest.Pos{}}
	keys := refKeys(docRefs(docs))
	for p, pos := range cur.Positions {
		if !slices.ContainsFunc(keys, func(k string) bool { return ofDoc(p, k) }) {
			out.Positions[p] = pos
		}
	}
	maps.Copy(out.Positions, docs.Positions)
	out.Tenants = replaceDocs(cur.Tenants, docs.Tenants, func(t manifest.Tenant) string { return t.Meta.Name })
	out.Exposures = replaceDocs(cur.Exposures, docs.Exposures, func(x manifest.Exposure) string { return x.Meta.Name })
	out.Services = replaceDocs(cur.Services, docs.Services, func(x manifest.Service) string { return x.Meta.Name })
	return out
}

func replaceDocs[T any](cur, docs []T, name func(T) string) []T {
	out := slices.Clone(cur)
	for _, x := range docs {
		if i := slices.IndexFunc(out, func(y T) bool { return name(y) == name(x) }); i >= 0 {
			out[i] = x
		} else {
			out = append(out, x)
		}
	}
	return out
}

// applyManifests applies, deletes or diffs the documents of req, all or
// nothing, for the API (the directory's documents are the directory's).
func (d *Daemon) applyManifests(acc access, req api.ManifestRequest, op manifestOp) (api.ManifestResult, error) {
	if len(req.Files) == 0 {
		return api.ManifestResult{}, &objectError{msg: "no manifest files: send at least one file"}
	}
	set, err := decodeManifests(req.Files)
	if err != nil {
		return api.ManifestResult{}, &objectError{msg: "the manifests do not decode; nothing was changed", details: flatten(err)}
	}
	refs := docRefs(set)
	if len(refs) == 0 {
		var names []string
		for _, f := range req.Files {
			names = append(names, f.Name)
		}
		return api.ManifestResult{}, &objectError{msg: "no documents in " + strings.Join(names, ", ") + ": nothing to do"}
	}
	for _, r := range refs {
		if !acc.may(r.tenant) {
			return api.ManifestResult{}, acc.forbidden(r.key+" ("+r.pos.String()+")", r.tenant)
		}
	}
	keys := refKeys(refs)
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.state.Manifests
	// The documents being replaced or deleted must be the peer's too: an
	// Exposure of tenant b must not become tenant a's (or go) because a
	// member of a sent one of the same name.
	for _, c := range docRefs(cur) {
		if slices.Contains(keys, c.key) && !acc.may(c.tenant) {
			return api.ManifestResult{}, acc.forbidden(c.key+" (applied now)", c.tenant)
		}
	}
	if !acc.all && op != opDelete {
		if err := boundaryKept(cur, set); err != nil {
			return api.ManifestResult{}, err
		}
	}
	for _, r := range refs {
		if d.state.dirOwned[r.key] {
			return api.ManifestResult{}, fmt.Errorf("%s: %s is owned by the manifest directory %s (nsproxy run --manifests); edit its file there: %w",
				r.pos, r.key, d.opt.ManifestDir, errConflict)
		}
	}
	var next manifest.Set
	switch op {
	case opApply, opDiff:
		next = withDocs(cur, set)
	case opDelete:
		have := map[string]bool{}
		for _, r := range docRefs(cur) {
			have[r.key] = true
		}
		var missing []string
		for _, r := range refs {
			if !have[r.key] {
				missing = append(missing, r.key)
			}
		}
		if len(missing) > 0 {
			return api.ManifestResult{}, fmt.Errorf("%s: not applied, so not deleted (nothing was deleted): %w", strings.Join(missing, ", "), errNotFound)
		}
		next = withoutDocs(cur, keys)
	}
	text, changed := manifest.Diff(onlyDocs(cur, keys), onlyDocs(next, keys))
	res := api.ManifestResult{Changed: changed, Diff: text, Documents: keys}
	if op == opDiff {
		st := d.state.clone()
		st.Manifests = next
		assignNames(d.file, &st, givenNames(d.state))
		if _, err := d.dryPlan(d.file, st); err != nil {
			return api.ManifestResult{}, &validationError{err}
		}
		return res, nil
	}
	if !changed {
		return res, nil
	}
	var moved []movedName
	err = d.changeLocked(true, func(s *State) error {
		prev := givenNames(*s)
		s.Manifests = next
		// A tenant's static namespace may be a name an attachment holds:
		// the attachment moves to another of its names (as ApplyManifests).
		moved = assignNames(d.file, s, prev)
		return nil
	})
	if err != nil {
		return api.ManifestResult{}, err
	}
	d.logNames(moved)
	verb := map[manifestOp]string{opApply: "applied", opDelete: "deleted"}[op]
	d.log.Info("manifests "+verb, "documents", keys, "by", acc.who)
	return res, nil
}

// tenantViews are the tenants acc may see: every tenant of the manifests
// and the default tenant (the files' objects) for root, the peer's own
// tenants otherwise.
func (d *Daemon) tenantViews(acc access) []api.Tenant {
	st, merged, attStatus := d.snapshotState()
	snap := d.engine.Snapshot()
	views := map[string]*api.Tenant{}
	view := func(name string) *api.Tenant {
		if t, ok := views[name]; ok {
			return t
		}
		if !acc.may(name) {
			return nil
		}
		t := &api.Tenant{Name: name, Namespaces: []api.TenantNamespace{}, Frontends: []string{}, Exposures: []string{}, Services: []string{}}
		views[name] = t
		return t
	}
	if acc.all {
		view(netns.DefaultTenant)
	}
	status := map[string]api.TenantNamespace{}
	for _, e := range d.reg.States() {
		n := api.TenantNamespace{Name: e.Name, Source: e.Source, State: api.StateMissing}
		if e.Available {
			n.State = api.StateAvailable
		}
		status[e.Name] = n
		if t := view(tenantOr(e.Tenant)); t != nil {
			t.Namespaces = append(t.Namespaces, n)
		}
	}
	for _, mt := range st.Manifests.Tenants {
		t := view(mt.Meta.Name)
		if t == nil {
			continue
		}
		t.Source = api.SourceAPI
		if st.dirOwned[docKey(manifest.KindTenant, mt.Meta.Name)] {
			t.Source, t.Owner = api.SourceManifestDir, d.opt.ManifestDir
		}
		for _, n := range mt.Spec.Namespaces {
			if slices.ContainsFunc(t.Namespaces, func(x api.TenantNamespace) bool { return x.Name == n.Name }) {
				continue
			}
			tn, ok := status[n.Name]
			if !ok {
				tn = api.TenantNamespace{Name: n.Name, State: api.StateMissing}
			}
			tn.Source = SourceManifest
			t.Namespaces = append(t.Namespaces, tn)
		}
		for _, f := range mt.Spec.Frontends {
			t.Frontends = append(t.Frontends, f.Name)
		}
	}
	for _, f := range merged.Frontends {
		if t := view(tenantOr(f.Tenant)); t != nil {
			t.Frontends = append(t.Frontends, f.Name)
		}
	}
	for _, x := range st.Manifests.Exposures {
		if t := view(tenantOr(x.Meta.Tenant)); t != nil {
			t.Exposures = append(t.Exposures, x.Meta.Name)
		}
	}
	for _, x := range st.Manifests.Services {
		if t := view(tenantOr(x.Meta.Tenant)); t != nil {
			t.Services = append(t.Services, x.Meta.Name)
		}
	}
	for _, a := range st.Attachments {
		claims := attStatus[a.AttachmentKey].claims
		for _, c := range claims {
			if t := view(c); t != nil {
				t.Overlaps = append(t.Overlaps, api.TenantOverlap{AttachmentKey: a.AttachmentKey,
					Namespace: attachmentNamespace(a), Tenants: claims})
			}
		}
	}
	for _, f := range snap.Frontends {
		t := view(tenantOr(f.Tenant))
		if t == nil {
			continue
		}
		for reason, n := range f.Refusals {
			if n == 0 {
				continue
			}
			if t.Refusals == nil {
				t.Refusals = map[string]uint64{}
			}
			t.Refusals[reason] += n
		}
	}
	out := make([]api.Tenant, 0, len(views))
	for _, name := range slices.Sorted(maps.Keys(views)) {
		t := views[name]
		slices.SortFunc(t.Namespaces, func(a, b api.TenantNamespace) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(t.Overlaps, func(a, b api.TenantOverlap) int { return strings.Compare(a.Namespace, b.Namespace) })
		for _, l := range []*[]string{&t.Frontends, &t.Exposures, &t.Services} {
			slices.Sort(*l)
			*l = slices.Compact(*l)
		}
		out = append(out, *t)
	}
	return out
}

// boundaryKept refuses a member's change of what bounds its tenant: who
// may use it (access), which namespaces are its (namespaces, select), its
// limits, and the host addresses its frontends listen on (binds outside
// the tenant's namespaces: the daemon binds them as root, so a member
// could otherwise take any address and port of the host). Root sets
// those; a member changes its objects inside them.
func boundaryKept(cur, docs manifest.Set) error {
	for _, t := range docs.Tenants {
		i := slices.IndexFunc(cur.Tenants, func(c manifest.Tenant) bool { return c.Meta.Name == t.Meta.Name })
		if i < 0 {
			continue // a new tenant: refused by access before
		}
		c := cur.Tenants[i]
		for _, f := range []struct {
			name     string
			old, new any
		}{
			{"spec.access", c.Spec.Access, t.Spec.Access},
			{"spec.namespaces", c.Spec.Namespaces, t.Spec.Namespaces},
			{"spec.select", c.Spec.Select, t.Spec.Select},
			{"spec.limits", c.Spec.Limits, t.Spec.Limits},
			{"spec.frontends[].binds (on the host)", hostBinds(c), hostBinds(t)},
		} {
			a, _ := json.Marshal(f.old)
			b, _ := json.Marshal(f.new)
			if !bytes.Equal(a, b) && !(isEmptyJSON(a) && isEmptyJSON(b)) {
				field, _, _ := strings.Cut(f.name, "[")
				where := docs.Where(docKey(manifest.KindTenant, t.Meta.Name) + "." + field)
				return fmt.Errorf("permission denied: %s: %s of Tenant %q is for root to change (it bounds the tenant); keep it as applied: %w",
					where, f.name, t.Meta.Name, errForbidden)
			}
		}
	}
	return nil
}

func isEmptyJSON(b []byte) bool {
	switch string(b) {
	case "null", "{}", "[]":
		return true
	}
	return false
}

// hostBinds are the binds of t's frontends in the daemon's own namespace
// (no namespace), as a sorted list: what a member may not change. Which
// frontend holds them, and everything else of a frontend, is the member's.
func hostBinds(t manifest.Tenant) []string {
	var out []string
	for _, f := range t.Spec.Frontends {
		for _, b := range f.Binds {
			if b.Namespace == "" {
				out = append(out, fmt.Sprintf("%s v4v6=%t v6only=%t", b.Addr, b.V4V6, b.V6Only))
			}
		}
	}
	slices.Sort(out)
	return out
}
