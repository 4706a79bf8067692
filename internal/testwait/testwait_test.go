package testwait

import (
	"errors"
	"testing"
	"time"
)

func TestForReturnsOnceTrue(t *testing.T) {
	n := 0
	For(t, time.Second, "third call", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("f called %d times, want 3", n)
	}
}

// fake records a Fatalf instead of ending the test.
type fake struct {
	testing.TB
	failed string
}

func (f *fake) Helper()                           {}
func (f *fake) Fatalf(format string, args ...any) { f.failed = format }

func TestForFailsAfterTheLimit(t *testing.T) {
	f := &fake{TB: t}
	start := time.Now()
	For(f, 100*time.Millisecond, "never", func() error { return errors.New("no") })
	if f.failed == "" {
		t.Fatal("no failure reported")
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("gave up after %v, before the limit", d)
	}
}
