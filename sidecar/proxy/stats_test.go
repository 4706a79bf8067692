package proxy

import (
	"sync"
	"testing"
)

// TestNamespaceCountersFold: a namespace's counters leave the map once
// its namespace is gone and its last connection has ended, and their
// totals move to the removed totals; a live connection keeps them.
func TestNamespaceCountersFold(t *testing.T) {
	var n nsCounters
	gone := map[string]bool{}
	live := func(l string) bool { return !gone[l] }

	a := n.acquire("a")
	a.BytesIn.Add(10)
	b := n.acquire("b")
	b.BytesOut.Add(5)
	b.Current.Add(-1)
	gone["a"], gone["b"] = true, true

	stats, removed := n.snapshot(live)
	if len(stats) != 1 || stats[0].Name != "a" || stats[0].Current != 1 {
		t.Fatalf("a has a live connection and must stay: %+v", stats)
	}
	if removed != (RemovedNamespaces{Namespaces: 1, Total: 1, BytesOut: 5}) {
		t.Fatalf("b not folded: %+v", removed)
	}
	a.BytesOut.Add(7) // the connection's last bytes, then it ends
	a.Current.Add(-1)
	stats, removed = n.snapshot(live)
	if len(stats) != 0 || removed != (RemovedNamespaces{Namespaces: 2, Total: 2, BytesIn: 10, BytesOut: 12}) {
		t.Fatalf("after a's last connection: %+v %+v", stats, removed)
	}
	// A namespace of the same name coming back starts from zero.
	gone["a"] = false
	n.acquire("a").Current.Add(-1)
	stats, _ = n.snapshot(live)
	if len(stats) != 1 || stats[0].Total != 1 {
		t.Fatalf("a again: %+v", stats)
	}
}

// TestNamespaceCountersFoldLosesNothing: connections that start and end
// while prune runs are all counted, in the map or in the removed totals.
func TestNamespaceCountersFoldLosesNothing(t *testing.T) {
	var n nsCounters
	never := func(string) bool { return false }
	var wg sync.WaitGroup
	const workers, conns = 4, 2000
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < conns; i++ {
				c := n.acquire("x")
				c.BytesIn.Add(1)
				c.Current.Add(-1)
			}
		}()
	}
	stop := make(chan struct{})
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		for {
			select {
			case <-stop:
				return
			default:
				n.prune(never)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-pruned
	stats, removed := n.snapshot(never)
	if len(stats) != 0 || removed.Total != workers*conns || removed.BytesIn != workers*conns {
		t.Fatalf("left %+v, removed %+v, want %d connections and bytes", stats, removed, workers*conns)
	}
}
