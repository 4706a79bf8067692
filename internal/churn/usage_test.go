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

func TestGoMemory(t *testing.T) {
	page := "# HELP go_memstats_heap_alloc_bytes x\n# TYPE go_memstats_heap_alloc_bytes gauge\n" +
		"go_memstats_heap_alloc_bytes 488912\ngo_memstats_heap_idle_bytes 5.464064e+06\n" +
		"go_memstats_heap_inuse_bytes 2.236416e+06\ngo_memstats_heap_released_bytes 5.3e+06\n" +
		"go_memstats_stack_inuse_bytes 688128\ngo_memstats_next_gc_bytes 4.194304e+06\n" +
		"go_goroutines 12\nnsproxy_attachments 3\n"
	for _, tc := range []struct {
		name, page string
		want       GoMemory
		ok         bool
	}{
		{"daemon page", page, GoMemory{HeapLive: 488912, HeapSpare: 5464064 - 5.3e6 + 2236416 - 488912, Stacks: 688128, GCGoal: 4194304}, true},
		{"no go collector", "nsproxy_attachments 3\n", GoMemory{}, false},
		{"empty", "", GoMemory{}, false},
		{"garbage values", "go_memstats_heap_inuse_bytes 12\ngo_memstats_heap_alloc_bytes x\n", GoMemory{HeapSpare: 12}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := goMemory(tc.page)
			if ok != tc.ok || got != tc.want {
				t.Errorf("goMemory = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzGoMemory(f *testing.F) {
	f.Add("go_memstats_heap_inuse_bytes 1\ngo_memstats_heap_alloc_bytes 2\n")
	f.Add("go_memstats_ 1e309\n\n go_memstats_heap_inuse_bytes NaN")
	f.Fuzz(func(t *testing.T, page string) {
		got, ok := goMemory(page)
		if !ok && got != (GoMemory{}) {
			t.Errorf("not ok, but %+v", got)
		}
	})
}
