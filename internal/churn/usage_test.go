package churn

import (
	"os"
	"testing"
)

// The RSS split is read from the same /proc file as RSS: its parts are
// there and add up to at most the whole (RssShmem is the rest).
func TestUsageSplitsRSS(t *testing.T) {
	u, err := usageOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS <= 0 || u.Anon <= 0 || u.File <= 0 {
		t.Fatalf("usage %+v: want RSS, Anon and File all above 0", u)
	}
	if u.Anon+u.File > u.RSS {
		t.Errorf("Anon %d + File %d > RSS %d", u.Anon, u.File, u.RSS)
	}
	if u.Threads < 1 {
		t.Errorf("threads %d, want at least 1", u.Threads)
	}
	if u.FDs < 3 {
		t.Errorf("fds %d, want at least stdin, stdout, stderr", u.FDs)
	}
}
