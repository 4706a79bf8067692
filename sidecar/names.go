package sidecar

import (
	"slices"
	"strconv"
	"strings"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// The registry name of an attachment's namespace is a label chosen by a
// hook (a template, a short container ID), so it can clash: two cnitool
// IDs share their first 12 characters, "team-b"+"web" and "team"+"b-web"
// both give "team-b-web", a pod is named like a namespace of the files.
// A clash must never fail a container's start nor move a name someone
// else owns, so the daemon gives each attachment the first free name of a
// fixed, per-key list: the requested name, then that name with a suffix
// derived from the attachment's key. Names already given are kept.

// maxGivenName bounds a name with a suffix: exposures are named
// "<namespace>-<hostPort>" and cut at 200, and the port must survive.
const maxGivenName = 180

// fallbackNames is how many suffixed forms nameCandidate builds before it
// counts (a 32-bit clash of two keys is already unlikely).
const fallbackNames = 3

// requestedName is the name an attachment asks for: its Name, or the
// default cni-<first 12 of the container ID>-<ifname>.
func requestedName(a api.Attachment) string {
	if a.Name != "" && hooks.ValidName(a.Name) {
		return a.Name
	}
	id := a.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	n := hooks.SanitizeName("cni-" + id + "-" + a.IfName)
	if len(n) > maxGivenName {
		n = n[:maxGivenName]
	}
	return n
}

// nameCandidate is the i-th name a may be given: 0 is the requested name,
// then it with 8, 16 and 64 hex digits of the key's hash, then with the
// 8 digits and a counter.
func nameCandidate(a api.Attachment, i int) string {
	base := requestedName(a)
	if i == 0 {
		return base // no hash: every write checks every live attachment's name
	}
	h := hooks.KeyHash(a.AttachmentKey)
	switch {
	case i == 1:
		return hooks.WithSuffix(base, h[:8], maxGivenName)
	case i == 2:
		return hooks.WithSuffix(base, h[:16], maxGivenName)
	case i == 3:
		return hooks.WithSuffix(base, h, maxGivenName)
	}
	return hooks.WithSuffix(base, h[:8]+"-"+strconv.Itoa(i), maxGivenName)
}

// isCandidate reports whether name is one a may be given.
func isCandidate(a api.Attachment, name string) bool {
	for i := 0; i <= fallbackNames; i++ {
		if nameCandidate(a, i) == name {
			return true
		}
	}
	return false
}

// nameOwners are the names no attachment may take, with who owns them:
// the files' namespaces and the API's.
func nameOwners(file *config.Config, st *State) map[string]string {
	owners := map[string]string{}
	if file != nil {
		for _, n := range file.NamespaceNames() {
			owners[n] = "the configuration files"
		}
	}
	for _, n := range st.Namespaces {
		owners[n.Name] = "the API (nsproxy ns add)"
	}
	for _, t := range st.Manifests.Tenants {
		for _, n := range t.Spec.Namespaces {
			owners[n.Name] = "tenant " + t.Meta.Name
		}
	}
	return owners
}

// objectUsers are the namespace names the run-time objects use (binds
// and servers of API objects and of tenants' manifests), each with the
// tenants of the objects that use it. A name the files use is
// nameOwners'.
func objectUsers(st *State) map[string][]string {
	out := map[string][]string{}
	add := func(name, tenant string) {
		if name != "" && name != "*" && !slices.Contains(out[name], tenant) {
			out[name] = append(out[name], tenant)
		}
	}
	backendTenant := map[string]string{}
	for _, t := range st.Manifests.Tenants {
		for _, f := range t.Spec.Frontends {
			for _, b := range f.Binds {
				add(b.Namespace, t.Meta.Name)
			}
		}
		for _, b := range t.Spec.Backends {
			backendTenant[b.Name] = t.Meta.Name
			for _, sv := range b.Servers {
				add(sv.Namespace, t.Meta.Name)
			}
		}
	}
	for _, f := range st.Frontends {
		for _, b := range f.Binds {
			add(b.Namespace, netns.DefaultTenant)
		}
	}
	for _, b := range st.Backends {
		for _, sv := range b.Servers {
			add(sv.Namespace, netns.DefaultTenant)
		}
	}
	for _, sv := range st.Servers {
		add(sv.Namespace, tenantOr(backendTenant[sv.Backend]))
	}
	return out
}

// otherTenants are the tenants in users other than tenant.
func otherTenants(users []string, tenant string) []string {
	return slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == tenant })
}

// givenNames maps each attachment's key to its current name.
func givenNames(st State) map[api.AttachmentKey]string {
	out := make(map[api.AttachmentKey]string, len(st.Attachments))
	for _, a := range st.Attachments {
		out[a.AttachmentKey] = attachmentNamespace(a)
	}
	return out
}

// assignNames gives every attachment of st a name no one else owns and
// stores it in its Name. An attachment keeps the name it had in prev
// while that is still one of its candidates and free; the others get the
// first free candidate, in state order. A name that objects of another
// tenant use is not free for a new name: given, the plan would refuse
// those objects (checkTenantRefs), and with them the ADD or the start.
// It returns the attachments newly given another name than the one they
// asked for, for the log.
func assignNames(file *config.Config, st *State, prev map[api.AttachmentKey]string) []movedName {
	owners := nameOwners(file, st)
	users := objectUsers(st)
	var ix *tenantIndex // built only when a candidate is an object's name
	tenantOf := func(a api.Attachment) string {
		if ix == nil {
			ix = buildTenantIndex(st.Manifests)
		}
		t, _, _ := ix.ownerOf(a)
		return tenantOr(t)
	}
	used := map[string]bool{}
	given := make([]string, len(st.Attachments))
	for i, a := range st.Attachments {
		p, ok := prev[a.AttachmentKey]
		if ok && owners[p] == "" && !used[p] && isCandidate(a, p) {
			given[i], used[p] = p, true
		}
	}
	var moved []movedName
	for i, a := range st.Attachments {
		if given[i] != "" {
			continue
		}
		tenant := ""
		for j := 0; ; j++ {
			c := nameCandidate(a, j)
			if owners[c] != "" || used[c] {
				continue
			}
			if len(users[c]) > 0 {
				if tenant == "" {
					tenant = tenantOf(a)
				}
				if len(otherTenants(users[c], tenant)) > 0 {
					continue
				}
			}
			given[i], used[c] = c, true
			break
		}
		if r := requestedName(a); given[i] != r {
			owner := owners[r]
			if o := otherTenants(users[r], tenant); owner == "" && !used[r] && len(o) > 0 {
				owner = "objects of tenant " + strings.Join(o, ", ")
			}
			moved = append(moved, movedName{a.AttachmentKey, r, given[i], owner})
		}
	}
	for i := range st.Attachments {
		st.Attachments[i].Name = given[i]
	}
	return moved
}

// movedName is an attachment that did not get the name it asked for.
type movedName struct {
	key                     api.AttachmentKey
	requested, given, owner string
}

// nameOwner says who owns name in st, or "" when no one does.
func nameOwner(file *config.Config, st *State, name string) string {
	if o := nameOwners(file, st)[name]; o != "" {
		return o
	}
	i := slices.IndexFunc(st.Attachments, func(a api.Attachment) bool { return attachmentNamespace(a) == name })
	if i >= 0 {
		return "attachment " + st.Attachments[i].ContainerID + "/" + st.Attachments[i].IfName
	}
	return ""
}

// configNames are the names the registry resolves in the netns directory:
// every name the merged config uses that is not a run-time entry, and
// every name of the files, which no run-time entry may repoint.
func configNames(p *plan, entries map[string]netns.Entry) []string {
	files := p.file.NamespaceNames()
	return slices.DeleteFunc(p.merged.NamespaceNames(), func(n string) bool {
		_, runtime := entries[n]
		return runtime && !slices.Contains(files, n)
	})
}

// logNames reports attachments that did not get the name they asked for.
func (d *Daemon) logNames(moved []movedName) {
	for _, m := range moved {
		owner := m.owner
		if owner == "" {
			owner = "another attachment"
		}
		d.log.Warn("attachment namespace name taken; registered under another", "container", m.key.ContainerID,
			"ifname", m.key.IfName, "requested", m.requested, "owner", owner, "name", m.given)
	}
}
