// Package testlog is a log sink for tests: a buffer that the goroutines of
// the code under test write to while the test reads what was logged so far.
// It owns nothing else; tests build their own slog handler on it.
package testlog

import (
	"bytes"
	"io"
	"sync"
)

// Buffer collects writes under a lock. The zero value is ready to use.
type Buffer struct {
	// Echo, when set, gets a copy of every write, e.g. os.Stderr when the
	// test runs with -v.
	Echo io.Writer

	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Echo != nil {
		b.Echo.Write(p)
	}
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
