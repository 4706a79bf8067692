package cniplugin_test

import (
	"testing"
)

// TestReviewStatusMatchesNonStrictAdd: the spec's STATUS says whether the
// plugin can service ADD requests. Without "strict", ADD succeeds while
// the daemon is down (the record is replayed later), so STATUS must
// succeed too; a STATUS error makes CRI runtimes (CRI-O's ocicni,
// containerd's go-cni) report the node's network as not ready, which
// stops every pod start on the node although ADD would work.
func TestReviewStatusMatchesNonStrictAdd(t *testing.T) {
	e := newEnv(t)
	e.d.stop()
	a := e.args(e.conf("1.1.0", withPorts(portMappings)))
	if err := e.p.Add(a); err != nil {
		t.Fatalf("ADD with the daemon down (not strict): %v", err)
	}
	st := e.args(e.conf("1.1.0", map[string]any{"prevResult": nil}))
	if err := e.p.Status(st); err != nil {
		t.Errorf("STATUS fails (code %d: %v) while ADD under the same conditions succeeds", code(err), err)
	}
}
