package sidecar

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/internal/dirwatch"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"golang.org/x/sys/unix"
)

// The --manifests directory: loaded at start (an invalid directory stops
// the start, as an invalid -f file does), reloaded when it changes
// (inotify, debounced), every ManifestResync and on SIGHUP. A reload that
// does not decode or validate changes nothing and logs every problem.

// manifestDebounce lets an editor or `cp -r` finish writing several files
// before the directory is read.
const manifestDebounce = 200 * time.Millisecond

// defaultManifestResync is the period of the directory's resync: it
// catches what inotify missed (a watch that failed, an NFS directory).
const defaultManifestResync = 30 * time.Second

// manifestRewatchMin and manifestRewatchMax bound the wait between tries
// to watch a manifest directory that is not there (moved or deleted, to
// be made again).
const (
	manifestRewatchMin = 50 * time.Millisecond
	manifestRewatchMax = 5 * time.Second
)

// loadManifestDir decodes every manifest file of dir (manifest.Load). A
// directory without manifest files is an empty set: an operator may start
// with an empty directory and fill it later.
func loadManifestDir(dir string) (manifest.Set, error) {
	fi, err := os.Stat(dir)
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return manifest.Set{}, fmt.Errorf("--manifests %s: %w", dir, err)
	}
	s, err := manifest.Load(dir)
	if errors.Is(err, manifest.ErrNoDocuments) {
		return manifest.Set{Positions: map[string]manifest.Pos{}}, nil
	}
	return s, err
}

// withDirectory is st with the directory's documents replaced by set's. An
// API document of the same KIND/NAME is taken over by the directory; moved
// lists those.
func withDirectory(st State, set manifest.Set) (out State, moved []string) {
	var old []string
	for k := range st.dirOwned {
		old = append(old, k)
	}
	next := withoutDocs(st.Manifests, old)
	owned := map[string]bool{}
	for _, r := range docRefs(set) {
		owned[r.key] = true
	}
	for _, r := range docRefs(next) {
		if owned[r.key] {
			moved = append(moved, r.key)
		}
	}
	st.Manifests = withDocs(next, set)
	st.dirOwned = owned
	return st, moved
}

// ReloadManifests reads the --manifests directory again and applies it,
// all or nothing. Nothing happens when its documents did not change.
func (d *Daemon) ReloadManifests() error {
	if d.opt.ManifestDir == "" {
		return nil
	}
	set, err := loadManifestDir(d.opt.ManifestDir)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	keys := slices.Sorted(maps.Keys(d.state.dirOwned))
	before := onlyDocs(d.state.Manifests, keys)
	if _, changed := manifest.Diff(before, set); !changed {
		return nil
	}
	var moved []string
	var renamed []movedName
	err = d.changeLocked(true, func(s *State) error {
		prev := givenNames(*s)
		*s, moved = withDirectory(*s, set)
		// A tenant's static namespace may be a name an attachment holds:
		// the attachment moves to another of its names.
		renamed = assignNames(d.file, s, prev)
		return nil
	})
	if err != nil {
		return err
	}
	text, _ := manifest.Diff(before, set)
	d.logMoved(moved)
	d.logNames(renamed)
	d.log.Info("manifest directory applied", "dir", d.opt.ManifestDir, "documents", len(docRefs(set)), "diff", text)
	return nil
}

func (d *Daemon) logMoved(moved []string) {
	for _, k := range moved {
		d.log.Warn("manifest document taken over by the manifest directory; the API's copy is gone",
			"document", k, "dir", d.opt.ManifestDir)
	}
}

// watchManifests reloads the directory when it changes and every resync
// period until ctx ends.
func (d *Daemon) watchManifests(ctx context.Context) {
	every := d.opt.ManifestResync
	if every <= 0 {
		every = defaultManifestResync
	}
	// Entries and what is written to them; editors save by rename or in place.
	var w *dirwatch.Watcher
	var events <-chan struct{}
	// retry: the next try to watch a name nothing answers to (the
	// directory moved or deleted, and not made again yet), backing off
	// from manifestRewatchMin to manifestRewatchMax.
	var retry <-chan time.Time
	backoff := manifestRewatchMin
	warned := false
	watch := func() {
		var err error
		w, err = dirwatch.Watch(d.opt.ManifestDir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|
			unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_MODIFY|unix.IN_ATTRIB|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF)
		if err != nil {
			if !warned {
				d.log.Warn("cannot watch the manifest directory; trying again, meanwhile relying on the periodic resync and SIGHUP",
					"dir", d.opt.ManifestDir, "every", every.String(), "err", err)
			}
			warned, events, w = true, nil, nil
			retry = time.After(backoff)
			backoff = min(2*backoff, manifestRewatchMax)
			return
		}
		if warned {
			d.log.Info("watching the manifest directory again", "dir", d.opt.ManifestDir)
		}
		warned, events, retry, backoff = false, w.Events(), nil, manifestRewatchMin
	}
	watch()
	defer func() {
		if w != nil {
			w.Stop()
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			// Any change means reading the whole directory again (a
			// manifest may span files): the names do not matter.
			w.Take()
			if !ok {
				// The directory went or was moved (a ConfigMap volume's
				// swap, an operator's mv): watch its name again at once.
				w.Stop()
				watch()
			}
			debounce = time.After(manifestDebounce)
			continue
		case <-debounce:
			debounce = nil
		case <-retry:
			// Watched again, the directory is read: its files came while
			// nothing watched it.
			if watch(); events == nil {
				continue
			}
		case <-tick.C:
			if events == nil {
				if w != nil {
					w.Stop()
					w = nil
				}
				watch()
			}
		}
		d.reloadManifestsLogged()
	}
}

// reloadManifestsLogged reloads the directory and logs each problem of a
// refused reload on its own line.
func (d *Daemon) reloadManifestsLogged() {
	if err := d.ReloadManifests(); err != nil {
		for _, p := range flatten(err) {
			d.log.Error("manifest reload refused: the running manifests stay", "dir", d.opt.ManifestDir, "problem", p)
		}
	}
}

// dirDocsKept fails a start whose restore dropped a document of the
// --manifests directory: the directory is the operator's, and an invalid
// one stops the start as an invalid -f file does (restore drops only
// saved run-time objects silently, with a log line each).
func dirDocsKept(st State) error {
	have := map[string]bool{}
	for _, r := range docRefs(st.Manifests) {
		have[r.key] = true
	}
	var lost []string
	for k := range st.dirOwned {
		if !have[k] {
			lost = append(lost, k)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		return fmt.Errorf("--manifests: %s did not validate with the rest of the desired state (see the log); fix the directory", strings.Join(lost, ", "))
	}
	return nil
}
