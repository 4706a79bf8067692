package dirwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/testwait"
)

// waitEvent receives one wake-up from w or fails t.
func waitEvent(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case _, ok := <-w.Events():
		if !ok {
			t.Fatal("channel closed, want an event")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

// TestWatch: the entries created, written and deleted in the directory
// are reported by name, each once however many events named it; Take
// forgets them; stop closes the channel and ends the goroutine; a missing
// directory is an error.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	before := runtime.NumGoroutine()
	w, err := Watch(dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_CLOSE_WRITE)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			w.Stop()
		}
	})
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dir, "a"))
	var got Changes
	testwait.For(t, 5*time.Second, "a and b reported", func() error {
		ch := w.Take()
		got.All = got.All || ch.All
		got.Names = append(got.Names, ch.Names...)
		slices.Sort(got.Names)
		if want := []string{"a", "b"}; !slices.Equal(slices.Compact(got.Names), want) {
			return fmt.Errorf("names %q, want %q", got.Names, want)
		}
		return nil
	})
	if got.All {
		t.Error("All set for named events")
	}
	if ch := w.Take(); ch.All || len(ch.Names) > 0 {
		t.Errorf("a second Take without events: %+v", ch)
	}
	w.Stop()
	stopped = true
	for range w.Events() { // drain the wake-ups of the events above
	}
	// The count may include the runtime's finalizer goroutine for a moment
	// (os.File finalizers run there): wait for it to settle.
	testwait.For(t, 2*time.Second, "goroutines back to the count before Watch", func() error {
		if after := runtime.NumGoroutine(); after > before {
			return fmt.Errorf("goroutines %d after stop, %d before", after, before)
		}
		return nil
	})
	if _, err := Watch(filepath.Join(dir, "missing"), unix.IN_CREATE); err == nil {
		t.Error("watching a missing directory: no error")
	}
}

// TestWatchDirectoryGone: the directory deleted is Changes.All and the
// end of the watch.
func TestWatchDirectoryGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := Watch(dir, unix.IN_CREATE|unix.IN_DELETE_SELF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end when its directory went")
	case <-drained(w.Events()):
	}
	if ch := w.Take(); !ch.All {
		t.Errorf("directory deleted: %+v, want All", ch)
	}
}

// drained is closed once c is closed.
func drained(c <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		for range c {
		}
		close(out)
	}()
	return out
}

// TestNotePending: past maxPending names the watcher reports All and
// keeps no names; an event of the directory itself is All.
func TestNotePending(t *testing.T) {
	w := &Watcher{names: map[string]struct{}{}}
	for i := 0; i < maxPending; i++ {
		w.note(Event{Mask: unix.IN_CREATE, Name: fmt.Sprint(i)})
	}
	if ch := w.Take(); ch.All || len(ch.Names) != maxPending {
		t.Fatalf("%d names: All=%v, %d names", maxPending, ch.All, len(ch.Names))
	}
	for i := 0; i <= maxPending; i++ {
		w.note(Event{Mask: unix.IN_CREATE, Name: fmt.Sprint(i)})
	}
	if ch := w.Take(); !ch.All || len(ch.Names) != 0 {
		t.Fatalf("%d names: All=%v, %d names; want All and none", maxPending+1, ch.All, len(ch.Names))
	}
	for _, ev := range []Event{{Mask: unix.IN_Q_OVERFLOW}, {Mask: unix.IN_DELETE_SELF}, {Mask: unix.IN_CREATE}} {
		w.note(ev)
		if ch := w.Take(); !ch.All {
			t.Errorf("%+v: not All", ev)
		}
	}
}
