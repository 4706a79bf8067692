package sidecar

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// rvcCfg listens in the control review's port range only.
const rvcCfg = `
frontend web
    bind 127.0.0.1:22100
    default_backend web
backend web
    server s1 127.0.0.1:22101
`

// TestReviewReplayKeepsDirectoryOutOfState: ReplayAttachments (run by
// every takeover after its commit, and by an aborted hand-over) writes the
// whole state, not saved(state): the --manifests directory's documents land
// in the state file as if applied through the API. A file removed from the
// directory afterwards comes back at the next start.
func TestReviewReplayKeepsDirectoryOutOfState(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manifests")
	os.Mkdir(mdir, 0o755)
	mustWrite(t, filepath.Join(mdir, "gone.yaml"), tenantDoc("rvcgone", 2000))
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, rvcCfg)
	state := filepath.Join(dir, "state.json")
	opt := Options{ConfigFiles: []string{cfg}, StateFile: state, ManifestDir: mdir,
		AttachmentDir: filepath.Join(dir, "attachments")}
	d := startedDaemon(t, opt)
	err := d.ReplayAttachments()
	stopDaemon(d)
	if err != nil {
		t.Fatal(err)
	}
	var saved State
	if err := json.Unmarshal([]byte(readFile(t, state)), &saved); err != nil {
		t.Fatal(err)
	}
	if refs := docRefs(saved.Manifests); len(refs) > 0 {
		t.Errorf("after ReplayAttachments the state file holds the directory's documents: %v", refs)
	}

	// The operator removes the tenant's file and restarts the daemon.
	os.Remove(filepath.Join(mdir, "gone.yaml"))
	d2 := startedDaemon(t, opt)
	defer stopDaemon(d2)
	names := tenantNames(d2.tenantViews(access{all: true, who: "root"}))
	if slices.Contains(names, "rvcgone") {
		t.Fatalf("tenant rvcgone, whose file was removed from %s, is back after a restart: tenants %v", mdir, names)
	}
}
