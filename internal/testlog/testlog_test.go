package testlog

import (
	"strings"
	"sync"
	"testing"
)

// Concurrent writers and a reader: run with -race.
func TestBufferConcurrent(t *testing.T) {
	var b, echo Buffer
	b.Echo = &echo
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				b.Write([]byte("x\n"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(b.String(), "x\n"); got != 800 {
		t.Fatalf("%d lines, want 800", got)
	}
	if echo.String() != b.String() {
		t.Fatal("echo differs from the buffer")
	}
}
