package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testlog"
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
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, manifestCfg)
	logBuf := &testlog.Buffer{}
	d, err := New(Options{ConfigFiles: []string{cfg}, StateFile: filepath.Join(dir, "state.json"), ManifestDir: mdir,
		ManifestResync: time.Hour, Logger: slog.New(slog.NewTextHandler(logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	testwait.For(t, 5*time.Second, "the daemon is ready", func() error {
		if !d.Ready() {
			return fmt.Errorf("not ready:\n%s", logBuf)
		}
		return nil
	})
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
