package dirwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/testwait"
)

// TestWatch: a file created in the directory is reported; stop closes the
// channel and ends the goroutine; a missing directory is an error.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	before := runtime.NumGoroutine()
	events, stop, err := Watch(dir, unix.IN_CREATE|unix.IN_DELETE)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-events:
		if !ok {
			t.Fatal("channel closed, want an event")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event for a created file")
	}
	stop()
	if _, ok := <-events; ok {
		t.Error("an event after stop, want the channel closed")
	}
	// The count may include the runtime's finalizer goroutine for a moment
	// (os.File finalizers run there): wait for it to settle.
	testwait.For(t, 2*time.Second, "goroutines back to the count before Watch", func() error {
		if after := runtime.NumGoroutine(); after > before {
			return fmt.Errorf("goroutines %d after stop, %d before", after, before)
		}
		return nil
	})
	if _, _, err := Watch(filepath.Join(dir, "missing"), unix.IN_CREATE); err == nil {
		t.Error("watching a missing directory: no error")
	}
}
