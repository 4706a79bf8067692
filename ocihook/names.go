package ocihook

import "github.com/nsproxy/nsproxy/hooks"

// namespaceName is the registry name the hook asks for: short and
// readable. Two IDs may share it; the daemon then gives one of them
// another name (and the hook's file names stay apart, see fileName).
func namespaceName(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	return hooks.SanitizeName("oci-" + id)
}

// maxFileName bounds the file name in the netns directory.
const maxFileName = 200

// fileName is the file in the netns directory that holds the
// container's namespace: one per container ID, so that containers whose
// IDs share a prefix never detach each other. IDs that are not a name as
// they are (other bytes, too long) get a hash of the whole ID.
func fileName(id string) string {
	n := "oci-" + hooks.SanitizeName(id)
	if n == "oci-"+id && len(n) <= maxFileName && id != "" {
		return n
	}
	if len(n) > 40 {
		n = n[:40]
	}
	return hooks.WithSuffix(n, hooks.KeyHash(hooks.AttachmentKey{ContainerID: id, IfName: IfName})[:32], maxFileName)
}
