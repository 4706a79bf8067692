package sidecar

import (
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
)

// TestDryRunKeepsPlannerCaches: a diff (API) or a dry-run apply plans a
// state that is never committed; the next real write must find the
// planner's caches as the last commit left them: no live container's
// exposures validated again, no overlap logged again.
func TestDryRunKeepsPlannerCaches(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	ns := testns.New(t, "D")
	both := manifest.Selector{}
	if err := td.d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{tenant("ta", nil, both), tenant("tb", nil, both)}}, false); err != nil {
		t.Fatal(err)
	}
	a := attachmentIn("dry", ns, nil)
	a.PortMappings = nil
	if code, e := td.call("POST", "/v1/attachments", a, nil); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	overlaps := func() int { return strings.Count(td.log.String(), "tenant selectors overlap") }
	td.d.mu.Lock()
	cached := td.d.exposed.prev[a.AttachmentKey]
	td.d.mu.Unlock()
	if cached == nil {
		t.Fatal("the attachment has no cache entry")
	}
	before := overlaps()

	root := access{all: true, who: "root"}
	if _, err := td.d.applyManifests(root, manifestReq("c.yaml", tenantDoc("tc", 1)), opDiff); err != nil {
		t.Fatal(err)
	}
	dry := manifest.Set{Tenants: []manifest.Tenant{tenant("ta", nil, both), tenant("tb", nil, both), tenant("tc", nil, both)}}
	if err := td.d.ApplyManifests(dry, true); err != nil {
		t.Fatal(err)
	}
	if err := td.d.mutate(func(*State) error { return nil }); err != nil { // a real write, manifests unchanged
		t.Fatal(err)
	}
	td.d.mu.Lock()
	after := td.d.exposed.prev[a.AttachmentKey]
	td.d.mu.Unlock()
	if after != cached {
		t.Error("the live container's exposures were made and validated again after dry runs")
	}
	if n := overlaps(); n != before {
		t.Errorf("overlaps logged %d times after dry runs and a write that changed no manifest, want %d:\n%s", n-before, 0, td.log)
	}
}
