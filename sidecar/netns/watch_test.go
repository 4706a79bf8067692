package netns

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/dirwatch"
	"github.com/nsproxy/nsproxy/internal/testwait"
)

// statfsCounter counts statfs calls per path while a test runs.
type statfsCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// countStatfs routes statfs through a counter until the test ends. Call
// it before starting anything that resyncs, and stop those (Watch) in a
// cleanup registered after it.
func countStatfs(t *testing.T) *statfsCounter {
	c := &statfsCounter{n: map[string]int{}}
	orig := statfs
	statfs = func(path string, buf *unix.Statfs_t) error {
		c.mu.Lock()
		c.n[path]++
		c.mu.Unlock()
		return orig(path, buf)
	}
	t.Cleanup(func() { statfs = orig })
	return c
}

func (c *statfsCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.n)
}

func (c *statfsCounter) get(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// others are the paths other than want that were looked at.
func (c *statfsCounter) others(want ...string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for p := range c.n {
		if !slices.Contains(want, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// watching runs r.Watch (with no periodic sweep in the test's time) until
// the test ends.
// It returns once the watch is set up: a change after it makes an event.
func watching(t *testing.T, r *Registry) { watchingEvery(t, r, time.Hour) }

// watchingEvery runs r.Watch with the given period until the test ends,
// once the watch is set up.
func watchingEvery(t *testing.T, r *Registry, period time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Watch(ctx, period); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitWatchStarted(t, r)
}

// registerMany registers names c0000... up to n, each on path.
func registerMany(t *testing.T, r *Registry, n int, path, source string) {
	t.Helper()
	for i := range n {
		if err := r.Register(Entry{Name: fmt.Sprintf("c%04d", i), Path: path, Source: source}); err != nil {
			t.Fatal(err)
		}
	}
}

// availableOf counts the names of registerMany that have their namespace.
func availableOf(r *Registry, n int) int {
	ok := 0
	for i := range n {
		if _, err := r.Get(fmt.Sprintf("c%04d", i)); err == nil {
			ok++
		}
	}
	return ok
}

// waitWatchStarted returns once r's Watch has set up its watch.
func waitWatchStarted(t *testing.T, r *Registry) {
	t.Helper()
	startedMu.Lock()
	ch, ok := started[r]
	if !ok {
		ch = make(chan struct{})
		started[r] = ch
	}
	startedMu.Unlock()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not start watching within 10 s")
	}
}

var (
	startedMu sync.Mutex
	started   = map[*Registry]chan struct{}{}
)

func init() {
	watchStartedHook = func(r *Registry) {
		startedMu.Lock()
		defer startedMu.Unlock()
		ch, ok := started[r]
		if !ok {
			ch = make(chan struct{})
			started[r] = ch
		}
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
}

// TestWatchResyncsNamedEntriesOnly: an inotify event of one entry of the
// netns directory looks at the names opened from that entry (its own name,
// or a run-time name whose path it is), again at each backoff re-check,
// and at no other name: before, every event resynced every name (a
// statfs and a stat each, five times), O(live) per container start.
func TestWatchResyncsNamedEntriesOnly(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRegistry(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("a%02d", i))
	}
	r.SetNames(append(names, "zz"))
	for i := range 20 {
		if err := r.Register(Entry{Name: fmt.Sprintf("cni-%d", i), Path: filepath.Join(dir, fmt.Sprintf("p%d", i)), Source: "cni"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Register(Entry{Name: "outside", Path: filepath.Join(t.TempDir(), "net"), Source: "oci"}); err != nil {
		t.Fatal(err)
	}
	c := countStatfs(t)
	watching(t, r)

	// Watch looks at every name once when it starts (what changed before
	// made no event); an event of zz, touched until the watch is up,
	// would too on the old code. Then the counts start again.
	zz := filepath.Join(dir, "zz")
	touch := func(p string) {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 5*time.Second, "every name looked at when Watch starts", func() error {
		touch(zz)
		if n := len(c.others()); n < 42 {
			return fmt.Errorf("%d of 42 paths looked at", n)
		}
		return nil
	})
	c.reset()

	// Not a namespace, so the name stays missing and is looked at again
	// by each re-check.
	touch(zz)
	testwait.For(t, 5*time.Second, "the event of zz resyncs zz", func() error {
		if c.get(zz) == 0 {
			return fmt.Errorf("zz not looked at")
		}
		return nil
	})
	testwait.For(t, 20*time.Second, "the re-checks of zz", func() error {
		if got, want := c.get(zz), 1+len(recheckAfter); got < want {
			return fmt.Errorf("zz looked at %d times, want at least %d (the event's and its re-checks)", got, want)
		}
		return nil
	})
	if o := c.others(zz); len(o) > 0 {
		t.Fatalf("an event of zz looked at %q too", o)
	}

	// A run-time name whose path is another entry of the directory.
	p7 := filepath.Join(dir, "p7")
	touch(p7)
	testwait.For(t, 5*time.Second, "the event of p7 resyncs cni-7", func() error {
		if c.get(p7) == 0 {
			return fmt.Errorf("p7 not looked at")
		}
		return nil
	})
	if o := c.others(zz, p7); len(o) > 0 {
		t.Fatalf("an event of p7 looked at %q too", o)
	}
}

// TestSweepStep: each periodic step resyncs the next batch of names, a
// round covers every name once, and a name registered during a round is
// in the next.
func TestSweepStep(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRegistry(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var names []string
	for i := range 250 {
		names = append(names, fmt.Sprintf("n%03d", i))
	}
	r.SetNames(names)
	c := countStatfs(t)
	var sw sweeper
	for i, want := range []int{100, 100, 50} {
		if got := sw.step(r, 100); got != want {
			t.Fatalf("step %d resynced %d names, want %d", i, got, want)
		}
		if i == 0 {
			r.SetNames(append(names, "late"))
		}
	}
	for _, n := range names {
		if got := c.get(filepath.Join(dir, n)); got != 1 {
			t.Errorf("%s looked at %d times in a round, want once", n, got)
		}
	}
	late := filepath.Join(dir, "late")
	before := c.get(late) // SetNames looks at a new name once
	if got := sw.step(r, 300); got != 251 {
		t.Fatalf("the next round resynced %d names, want 251", got)
	}
	if c.get(late) != before+1 {
		t.Errorf("a name registered during a round is not in the next")
	}
}

// TestNamesOfFile: the names an event of a directory entry concerns follow
// registrations (a run-time name whose path is the entry, through the
// directory or the path it resolves to), their changes and removals.
func TestNamesOfFile(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "link")
	if err := os.Symlink(real, dir); err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check := func(file string, want ...string) {
		t.Helper()
		got := r.namesOfFile(file)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("names of %s: %q, want %q", file, got, want)
		}
	}
	r.SetNames([]string{"f"})
	r.Register(Entry{Name: "cni-a", Path: filepath.Join(dir, "f"), Source: "cni"})
	r.Register(Entry{Name: "cni-b", Path: filepath.Join(real, "f"), Source: "cni"})
	r.Register(Entry{Name: "cni-c", Path: filepath.Join(base, "f"), Source: "cni"}) // not in the directory
	r.Register(Entry{Name: "g", Source: "api"})
	check("f", "cni-a", "cni-b", "f")
	check("g", "g")
	r.Register(Entry{Name: "cni-a", Path: filepath.Join(dir, "h"), Source: "cni"})
	check("f", "cni-b", "f")
	check("h", "cni-a")
	r.Unregister("cni-b")
	r.Unregister("g")
	r.SetNames(nil)
	check("f")
	check("g")
	r.Unregister("cni-a")
	check("h")
	if len(r.aliases) != 0 {
		t.Errorf("aliases left after every name went: %v", r.aliases)
	}
}

// BenchmarkWatchWork: what the watcher costs per inotify wake-up and per
// period with n names registered, run-time entries whose namespace files
// exist (one namespace bind-mounted under n names would need root; plain
// files cost the same statfs and stat). "event" is the resync of one
// named entry (Watch now, and again at each of its re-checks),
// "full" the full resync every event and every second cost before, and
// "sweep" a periodic step now.
//
//	go test -run '^$' -bench BenchmarkWatchWork ./sidecar/netns/
func BenchmarkWatchWork(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		dir := b.TempDir()
		r, err := NewRegistry(dir, quietLog())
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			p := filepath.Join(dir, fmt.Sprintf("p%d", i))
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			r.Register(Entry{Name: fmt.Sprintf("cni-%d", i), Path: p, Source: "cni"})
		}
		b.Run(fmt.Sprintf("event/names=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r.changed(dirwatch.Changes{Names: []string{fmt.Sprintf("p%d", i%n)}})()
			}
		})
		b.Run(fmt.Sprintf("full/names=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r.Resync()
			}
		})
		b.Run(fmt.Sprintf("sweep/names=%d", n), func(b *testing.B) {
			var sw sweeper
			for i := 0; i < b.N; i++ {
				sw.step(r, sweepBatch)
			}
		})
		r.Close()
	}
}
