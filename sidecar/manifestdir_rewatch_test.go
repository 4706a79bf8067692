package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
)

// TestManifestDirMadeAgainLater: the --manifests directory moved away and
// made anew only a while later (an operator's mv, then mkdir; a volume
// mounted again). The watch of the name fails while nothing is there; it
// must be tried again until the directory is back, not only at the next
// resync (an hour here), so that the new directory's files apply at once.
func TestManifestDirMadeAgainLater(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manifests")
	os.Mkdir(mdir, 0o755)
	mustWrite(t, filepath.Join(mdir, "a.yaml"), tenantDoc("a", 2000))
	d, _ := manifestDirDaemon(t, dir, mdir)
	root := access{all: true, who: "root"}
	if err := os.Rename(mdir, mdir+".old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the watcher tried the name while nothing was there
	os.Mkdir(mdir, 0o755)
	mustWrite(t, filepath.Join(mdir, "a.yaml"), tenantDoc("a", 2000))
	mustWrite(t, filepath.Join(mdir, "d.yaml"), tenantDoc("d", 2003))
	testwait.For(t, 5*time.Second, "d.yaml of the directory made again applied", func() error {
		if ts := tenantNames(d.tenantViews(root)); !slices.Contains(ts, "d") {
			return fmt.Errorf("tenants %v", ts)
		}
		return nil
	})
	// And its later edits come by inotify.
	mustWrite(t, filepath.Join(mdir, "e.yaml"), tenantDoc("e", 2004))
	testwait.For(t, 5*time.Second, "e.yaml applied", func() error {
		if ts := tenantNames(d.tenantViews(root)); !slices.Contains(ts, "e") {
			return fmt.Errorf("tenants %v", ts)
		}
		return nil
	})
}
