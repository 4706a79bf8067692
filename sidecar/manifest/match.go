package manifest

import (
	"path"

	"github.com/nsproxy/nsproxy/hooks"
)

// MetaContainerName is the attachment metadata key that containerName
// selectors match. No hook sets it on its own today; a container or pod
// annotation of this name reaches the daemon as metadata (both hooks pass
// every annotation under hooks.MetaPrefix).
const MetaContainerName = hooks.MetaPrefix + "container-name"

// Matches reports whether attachment a is selected by s: every field that
// s sets must match (an empty selector matches every attachment).
//   - source: a.Source, exactly (cni or oci);
//   - network, podNamespace, podName, containerName: path.Match globs
//     against a.Metadata's hooks.MetaNetwork, hooks.MetaPodNamespace,
//     hooks.MetaPodName and MetaContainerName; an attachment without
//     the key does not match (podName: "*" selects pods only);
//   - annotations: each key must be in a.Metadata with a value matching
//     the glob (only keys under hooks.MetaPrefix reach the daemon);
//   - labels: no hook delivers pod labels (CNI gives plugins none), so a
//     selector with labels matches no attachment today.
func (s Selector) Matches(a hooks.Attachment) bool {
	if s.Source != "" && s.Source != a.Source {
		return false
	}
	for _, g := range [...]struct{ glob, key string }{
		{s.Network, hooks.MetaNetwork}, {s.PodNamespace, hooks.MetaPodNamespace},
		{s.PodName, hooks.MetaPodName}, {s.ContainerName, MetaContainerName},
	} {
		if v, ok := a.Metadata[g.key]; g.glob != "" && (!ok || !glob(g.glob, v)) {
			return false
		}
	}
	if len(s.Labels) > 0 {
		return false
	}
	for k, g := range s.Annotations {
		v, ok := a.Metadata[k]
		if !ok || !glob(g, v) {
			return false
		}
	}
	return true
}

// glob is path.Match; a malformed pattern (the decoder refuses them)
// matches nothing.
func glob(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return ok && err == nil
}
