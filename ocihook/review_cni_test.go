package ocihook

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
)

// TestReviewHookCopiesIdentityAnnotations: the metadata keys the CNI plugin
// sets from what it knows (the CNI network, the pod's namespace, name and
// UID from CNI_ARGS) are the ones tenant selectors match (network,
// podNamespace, podName). The plugin overrides pod annotations of those
// names; the hook copies them from the container's annotations, which
// whoever creates the container chooses. A container annotated
// nsproxy.io/pod-namespace=team-a then matches a tenant's
// "podNamespace: team-a" selector (no source) as if it were a pod of that
// namespace, and one annotated nsproxy.io/cni-network=N has its record
// removed by the CNI plugin's GC of network N.
func TestReviewHookCopiesIdentityAnnotations(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount a network namespace")
	}
	netnsDir, records := t.TempDir(), t.TempDir()
	h := Hook{Client: hooks.NewClient(filepath.Join(t.TempDir(), "down.sock"), hooks.WithTimeout(time.Second)),
		NetnsDir: netnsDir, RecordDir: records}
	st := State{ID: "rvk0123456789abcdef", Status: "creating", Pid: ownNetnsPid(t), Annotations: map[string]string{
		AnnExpose:              "22001:80",
		hooks.MetaPodNamespace: "team-a",
		hooks.MetaPodName:      "web-0",
		hooks.MetaPodUID:       "u-1",
		hooks.MetaNetwork:      "podman",
	}}
	t.Cleanup(func() { h.stop(context.Background(), st) })
	if err := h.Run(context.Background(), "createRuntime", st); err != nil {
		t.Fatal(err)
	}
	a, err := hooks.ReadRecord(records, hooks.AttachmentKey{ContainerID: st.ID, IfName: IfName})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{hooks.MetaPodNamespace, hooks.MetaPodName, hooks.MetaPodUID, hooks.MetaNetwork} {
		if v, ok := a.Metadata[k]; ok {
			t.Errorf("the OCI attachment claims %s=%q, taken from a container annotation", k, v)
		}
	}
	a.Source = hooks.SourceOCI
	if (manifest.Selector{PodNamespace: "team-a"}).Matches(a) {
		t.Error(`a tenant's selector {podNamespace: team-a} selects this OCI container as a pod of namespace team-a`)
	}
}
