package sidecar

import (
	"reflect"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
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
	xs       []exposure
	problems []string
	err      error // the exposures' own validation
}

func (ec *exposureCache) start() {
	ec.next = make(map[api.AttachmentKey]*cachedExposures, len(ec.prev))
}

func (ec *exposureCache) done() { ec.prev, ec.next = ec.next, nil }

// exposuresFor is exposuresFor(a) with the exposures validated on their
// own (names, addresses, values): what Validate checks across objects
// (unique names and binds) is the plan's to check. The returned slices
// are shared: do not modify them.
func (ec *exposureCache) exposuresFor(a api.Attachment) ([]exposure, []string, error) {
	if c := ec.prev[a.AttachmentKey]; c != nil && sameAttachment(c.from, a) {
		ec.next[a.AttachmentKey] = c
		return c.xs, c.problems, c.err
	}
	xs, problems := exposuresFor(a)
	c := &cachedExposures{from: a, xs: xs, problems: problems}
	if len(xs) > 0 {
		own := &config.Config{}
		for _, x := range xs {
			own.Frontends = append(own.Frontends, x.frontend)
			own.Backends = append(own.Backends, x.backend)
		}
		c.err = own.Validate()
	}
	ec.next[a.AttachmentKey] = c
	return c.xs, c.problems, c.err
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
		sameSlice(a.Problems, b.Problems)
}

func sameSlice[T any](a, b []T) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

// sameMap: a and b are the same map (or both empty).
func sameMap(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer())
}
