package sidecar

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// exposureCache keeps each attachment's exposures, validated, from one
// plan to the next: making and validating every live container's
// frontend and backend again made each ADD cost grow with the live
// containers. An entry is reused while its attachment is unchanged;
// entries the last plan did not use are dropped. It is used with the
// daemon's lock held.
type exposureCache struct {
	prev, next map[api.AttachmentKey]*cachedExposures
}

type cachedExposures struct {
	from     api.Attachment
	ix       *tenantIndex // the manifests it was made with
	tenant   string       // the tenant a belongs to
	overlap  string       // tenants' claims that overlap on a, if they do
	claims   []string     // the tenants of that overlap
	xs       []exposure
	problems []string
	err      error // the exposures' own validation
	// id is the kernel namespace at from.Netns when it was made (zero if
	// it could not be read): one stat per attachment change, for the
	// plan's identity index (sharedNamespace).
	id netns.Identity
}

func (ec *exposureCache) start() {
	ec.next = make(map[api.AttachmentKey]*cachedExposures, len(ec.prev))
}

func (ec *exposureCache) done() { ec.prev, ec.next = ec.next, nil }

// exposuresFor is exposuresFor(a) with the exposures validated on their
// own (names, addresses, values): what Validate checks across objects
// (unique names and binds) is the plan's to check. The returned slices
// are shared: do not modify them.
//
// With tenant manifests (ix), it also decides which tenant a belongs to and
// adds what the tenant's Exposure and Service rules make for a; a range
// rule starts from the port allocs gives a, else its preferred port (the
// plan moves it when that port is taken). Matching costs a pass over the
// selectors once per attachment and manifest change, not per write.
func (ec *exposureCache) exposuresFor(a api.Attachment, ix *tenantIndex, allocs map[allocKey]int) *cachedExposures {
	if c := ec.prev[a.AttachmentKey]; c != nil && c.ix == ix && sameAttachment(c.from, a) {
		ec.next[a.AttachmentKey] = c
		return c
	}
	c := buildExposures(a, ix, allocs)
	ec.next[a.AttachmentKey] = c
	return c
}

// buildExposures makes and validates a's exposures (see exposuresFor).
func buildExposures(a api.Attachment, ix *tenantIndex, allocs map[allocKey]int) *cachedExposures {
	tenant, overlap := netns.DefaultTenant, ""
	var claims []string
	if ix != nil {
		tenant, claims, overlap = ix.ownerOf(a)
	} else if tenant = tenantOr(a.Tenant); a.Source == api.SourceOCI && tenant != netns.DefaultTenant {
		tenant, overlap = netns.DefaultTenant, hookClaimRefused(tenant)
	}
	xs, problems := exposuresFor(a, tenant)
	if overlap != "" {
		problems = append(problems, overlap)
	}
	if ix != nil {
		for _, r := range ix.rules[tenant] {
			if !r.sel.Matches(a) {
				continue
			}
			switch {
			case r.kind == manifest.KindService:
				xs = append(xs, serviceExposure(a, tenant, r))
			case r.lo > 0:
				port, ok := allocs[allocKey{a.AttachmentKey, r.name}]
				if !ok || port < r.lo || port > r.hi {
					port = preferredPort(a.AttachmentKey, r.name, r.lo, r.hi)
				}
				xs = append(xs, ruleExposure(a, tenant, r, port))
			default:
				xs = append(xs, ruleExposure(a, tenant, r, r.hostPort))
			}
		}
	}
	c := &cachedExposures{from: a, ix: ix, tenant: tenant, overlap: overlap, claims: claims, xs: xs, problems: problems}
	if a.Netns != "" {
		c.id, _ = netns.StatIdentity(a.Netns)
	}
	// Each exposure alone: two of one attachment that want one port (a
	// port mapping on its tenant's rule's port) are the plan's conflict,
	// a problem of the attachment, never a refused ADD. Two with one name
	// (one host port on two host addresses) are refused, as before.
	names := make(map[string]bool, len(xs))
	for _, x := range xs {
		if names[x.frontend.Name] {
			c.err = &config.Error{Pos: x.frontend.Pos, Err: config.ErrDuplicate, Msg: fmt.Sprintf(
				"two exposures of the attachment are named %s (one host port on two host addresses); map the port on one address", x.frontend.Name)}
			break
		}
		names[x.frontend.Name] = true
		own := &config.Config{Frontends: []*config.Frontend{x.frontend}, Backends: []*config.Backend{x.backend}}
		if c.err = own.Validate(); c.err != nil {
			break
		}
	}
	return c
}

// moved records that the plan gave c's i-th exposure (a range rule's)
// another port: the next plan starts from it.
func (ec *exposureCache) moved(c *cachedExposures, i int, x exposure) *cachedExposures {
	cp := *c
	cp.xs = slices.Clone(c.xs)
	cp.xs[i] = x
	ec.next[c.from.AttachmentKey] = &cp
	return &cp
}

// allocKey is a range rule's port of one attachment.
type allocKey struct {
	key  api.AttachmentKey
	rule string
}

// sameAttachment reports whether b is a unchanged: equal fields, and the
// same slices and maps. A change replaces an attachment's slices and maps,
// never modifies them in place (State.clone), so identity is enough and
// costs nothing per live container, where reflect.DeepEqual cost a few
// microseconds each. An equal copy counts as changed: it is rebuilt, which
// is slower, never wrong. TestSameAttachmentFields keeps this in step with
// api.Attachment's fields.
func sameAttachment(a, b api.Attachment) bool {
	return a.AttachmentKey == b.AttachmentKey && a.Netns == b.Netns && a.Name == b.Name && a.Source == b.Source &&
		a.Tenant == b.Tenant && a.State == b.State && sameSlice(a.IPs, b.IPs) && sameSlice(a.PortMappings, b.PortMappings) &&
		sameMap(a.Metadata, b.Metadata) && sameSlice(a.Exposed, b.Exposed) && sameSlice(a.Exposures, b.Exposures) &&
		sameSlice(a.Problems, b.Problems) && a.Owner == b.Owner && sameSlice(a.Services, b.Services)
}

func sameSlice[T any](a, b []T) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

// sameMap: a and b are the same map (or both empty).
func sameMap(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer())
}
