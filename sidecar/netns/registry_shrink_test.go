package netns

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
)

// TestRegistryReturnsMemoryAfterMassUnregister (issue 13): after 10,000
// run-time names came and went, the registry holds what it held before
// (within 64 KiB): the slots map, which a Go map keeps at its largest,
// is made anew. Measured as heap in use after a GC, not timed.
func TestRegistryReturnsMemoryAfterMassUnregister(t *testing.T) {
	const n = 10000
	r, err := NewRegistry(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("hyreg%05d", i)
	}
	before := heap()
	for _, name := range names {
		// The namespace does not exist: the slot waits for it.
		if err := r.Register(Entry{Name: name, Source: "cni"}); err != nil {
			t.Fatal(err)
		}
	}
	peak := heap()
	for _, name := range names {
		if !r.Unregister(name) {
			t.Fatalf("%s was not registered", name)
		}
	}
	after := heap()
	t.Logf("heap: %d KiB before, %d KiB with %d names, %d KiB after they left", before>>10, peak>>10, n, after>>10)
	if after > before+64<<10 {
		t.Errorf("registry kept %d KiB after every name left", (after-before)>>10)
	}
	runtime.KeepAlive(names)
}
