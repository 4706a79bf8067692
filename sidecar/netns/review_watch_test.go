package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
)

// hxrName is a namespace name of this review's tests (prefix hxr).
func hxrName(tag string) string { return fmt.Sprintf("hxr%d%s", os.Getpid()%10000, tag) }

// bindNamespace bind-mounts the namespace of src (a file of /var/run/netns)
// on the plain file p, as `ip netns add` does after creating p, and
// unmounts it when the test ends.
func bindNamespace(t *testing.T, src, p string) {
	t.Helper()
	testns.Run(t, "mount", "--bind", filepath.Join("/var/run/netns", src), p)
	t.Cleanup(func() { exec.Command("umount", "-l", p).Run() })
}

// TestWatchNoticesMountOfNameRegisteredAfterItsEvent: `ip netns add`
// creates the file (an inotify event) and bind-mounts the namespace on it
// (no event). A name registered between the two (a run-time registration
// racing a namespace being made) finds a plain file and stays missing. The
// old watcher re-checked every name at 10, 50, 200 and 1,000 ms after the
// event, so the mount was noticed; the new one re-checks only the names
// the event's entry had when the event came, so the name stays missing
// until the periodic sweep reaches it (here never: the period is an hour,
// and with 5,000 names up to 50 s).
func TestWatchNoticesMountOfNameRegisteredAfterItsEvent(t *testing.T) {
	testns.RequireRoot(t)
	src := testns.Add(t, hxrName("src"))
	dir := t.TempDir()
	r, err := NewRegistry(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A sentinel name whose event tells the test that the watcher has
	// taken the events before it.
	r.SetNames([]string{"probe", "probe2"})
	c := countStatfs(t)
	watching(t, r)
	probe := filepath.Join(dir, "probe")
	probe2 := filepath.Join(dir, "probe2")
	late := filepath.Join(dir, "late")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mode := os.FileMode(0o600)
	testwait.For(t, 5*time.Second, "the watch is up", func() error {
		mode ^= 0o044
		if err := os.Chmod(probe, mode); err != nil {
			return err
		}
		if c.get(probe) < 2 { // Watch's first full resync, then an event
			return fmt.Errorf("probe looked at %d times", c.get(probe))
		}
		return nil
	})

	// `ip netns add late`, first half: the file.
	if err := os.WriteFile(late, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.reset()
	if err := os.WriteFile(probe2, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "the event of late taken", func() error {
		if c.get(probe2) == 0 {
			return errors.New("the event after late's not handled yet")
		}
		return nil
	})
	// The registration, well within the old re-checks' second.
	if err := r.Register(Entry{Name: "cni-late", Path: late, Source: "cni"}); err != nil {
		t.Fatal(err)
	}
	// Second half: the mount, which makes no event.
	bindNamespace(t, src, late)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.Wait(ctx, "cni-late"); err != nil {
		t.Fatalf("cni-late, mounted after its registration, still not available: %v", err)
	}
}

// TestWatchNoticesDeadOutsidePathsWithinAFewPeriods: namespaces whose
// paths inotify does not see (/proc/PID/ns/net, /var/run/docker/netns/…)
// are noticed only by the periodic sweep, 100 names a period. When many
// of them die together (a node's containers stopped, a runtime restarted,
// DELs missed), the last one is noticed after names/100 periods: with
// 3,000 names and a 200 ms period, 6 s; the old watcher's full resync
// every period noticed all of them within one. Meanwhile each dead
// namespace's handle, listeners and host ports stay open. (Here the 3,000
// names share one process's namespace: the cost and the delay are those
// of 3,000 containers.)
func TestWatchNoticesDeadOutsidePathsWithinAFewPeriods(t *testing.T) {
	testns.RequireRoot(t)
	cmd := exec.Command("unshare", "-n", "sleep", "120")
	if err := cmd.Start(); err != nil {
		t.Skipf("unshare: %v", err)
	}
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	path := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	self, err := StatIdentity("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "sleep in its own namespace", func() error {
		id, err := StatIdentity(path)
		if err != nil {
			return err
		}
		if id.Same(self) {
			return errors.New("not unshared yet")
		}
		return nil
	})

	r, err := NewRegistry(t.TempDir(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const n = 3000
	const period = 200 * time.Millisecond
	registerMany(t, r, n, path, "api")
	if got := availableOf(r, n); got != n {
		t.Fatalf("%d of %d names available", got, n)
	}
	c := countStatfs(t)
	watchingEvery(t, r, period)
	// Watch's first full resync (every name) is over before the process
	// dies: what follows is the watcher's steady state.
	testwait.For(t, 10*time.Second, "Watch's first resync", func() error {
		if got := c.get(path); got < n {
			return fmt.Errorf("%d of %d names looked at", got, n)
		}
		return nil
	})

	cmd.Process.Kill()
	cmd.Wait()
	reaped = true
	start := time.Now()
	// Ten periods: the old watcher needs one (and one full resync); the
	// sweep needs n/100 = 30.
	testwait.For(t, 10*period, "every dead namespace closed", func() error {
		if open := availableOf(r, n); open > 0 {
			return fmt.Errorf("%d of %d names still hold the dead namespace after %v", open, n, time.Since(start).Round(time.Millisecond))
		}
		return nil
	})
}

// TestWatchNetnsDirectoryMovedAndRecreated: the netns directory renamed
// away and made again (by hand, or by a tool that rebuilds /run/netns).
// The watch's mask lacks IN_MOVE_SELF and dirwatch does not end a watch
// whose directory moved, so the registry keeps watching the old inode and
// never sees a namespace made in the new directory; only the sweep finds
// it, at 100 names a period. Fails on a7a7d6c; passes on 9b46ebb, whose
// re-checks after any event and whose period were full resyncs (the watch
// left on the old inode is older, but nothing depended on it).
func TestWatchNetnsDirectoryMovedAndRecreated(t *testing.T) {
	testns.RequireRoot(t)
	src := testns.Add(t, hxrName("mv"))
	parent := t.TempDir()
	dir := filepath.Join(parent, "netns")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetNames([]string{"probe", "x"})
	c := countStatfs(t)
	watching(t, r)
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mode := os.FileMode(0o600)
	testwait.For(t, 5*time.Second, "the watch is up", func() error {
		mode ^= 0o044
		if err := os.Chmod(probe, mode); err != nil {
			return err
		}
		if c.get(probe) < 2 {
			return fmt.Errorf("probe looked at %d times", c.get(probe))
		}
		return nil
	})
	if err := os.Rename(dir, filepath.Join(parent, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	x := filepath.Join(dir, "x")
	if err := os.WriteFile(x, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bindNamespace(t, src, x)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.Wait(ctx, "x"); err != nil {
		t.Fatalf("x, made in the recreated netns directory, not noticed: %v", err)
	}
}

// TestWatchRetriesAFailedInotifyWatch: when the inotify watch cannot be
// made at start (EMFILE: no fd, or the per-user limit of inotify
// instances, fs.inotify.max_user_instances = 128 by default, a limit
// nodes with many watchers do reach), Watch logs it and never tries
// again. On 9b46ebb that cost nothing much: every period resynced every
// name. Now every change, `ip netns add` and `del` included, waits for
// the sweep, names/100 periods. Here 3,000 names are opened from one
// entry that appears after the failure: the old watcher opened them all
// within a period, the new one needs 30. Fails on a7a7d6c.
func TestWatchRetriesAFailedInotifyWatch(t *testing.T) {
	testns.RequireRoot(t)
	src := testns.Add(t, hxrName("fail"))
	dir := t.TempDir()
	r, err := NewRegistry(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	x := filepath.Join(dir, "x")
	const n = 3000
	const period = 200 * time.Millisecond
	registerMany(t, r, n, x, "cni")
	c := countStatfs(t)
	undo := testns.ExhaustFDs(t)
	watchingEvery(t, r, period)
	// Watch has tried its watch once its first full resync ran.
	for c.get(x) < n {
		time.Sleep(10 * time.Millisecond)
	}
	undo()

	if err := os.WriteFile(x, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bindNamespace(t, src, x)
	start := time.Now()
	testwait.For(t, 10*period, "every name of x available", func() error {
		if missing := n - availableOf(r, n); missing > 0 {
			return fmt.Errorf("%d of %d names still missing after %v", missing, n, time.Since(start).Round(time.Millisecond))
		}
		return nil
	})
}

// TestNamesOfFileThroughALinkToTheDirectory: the registry's directory is
// given as the real path (--netns-dir /run/netns) and a run-time path
// names the same entry through a symbolic link to it (containerd's CNI
// paths are /var/run/netns/cni-…, and /var/run is a link to /run). fileOf
// compares the path's directory with the two spellings it knows (dir and
// dir resolved) as strings, so such a path counts as outside the
// directory: its events resync nothing, and only the sweep (names/100
// periods) notices the namespace deleted or recreated. Resolving the
// path's directory would do. Fails on a7a7d6c (no aliases on 9b46ebb,
// where every event resynced every name).
func TestNamesOfFileThroughALinkToTheDirectory(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "run", "netns")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "run"), filepath.Join(base, "varrun")); err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry(real, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Register(Entry{Name: "cni-a", Path: filepath.Join(base, "varrun", "netns", "cni-x"), Source: "cni"}); err != nil {
		t.Fatal(err)
	}
	if got := r.namesOfFile("cni-x"); !slices.Equal(got, []string{"cni-a"}) {
		t.Fatalf("names of entry cni-x: %q, want [cni-a] (its path is that entry, through a link)", got)
	}
}
