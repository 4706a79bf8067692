// Package testwait polls a condition in tests until it holds or a time
// limit passes: the one retry loop of the unit and end-to-end tests.
package testwait

import (
	"testing"
	"time"
)

// For calls f until it returns nil, and fails the test with what and f's
// last error once d has passed. It polls every d/100, between 20 and 200 ms.
func For(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	every := min(max(d/100, 20*time.Millisecond), 200*time.Millisecond)
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
			return // for a testing.TB whose Fatalf returns
		}
		time.Sleep(every)
	}
}
