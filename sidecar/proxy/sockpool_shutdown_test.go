package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"golang.org/x/sys/unix"
)

// TestSockPoolShutdownGivesBackQueuedRefills: after Shutdown no socket is
// pooled and none is counted (nsproxy_pooled_sockets, Snapshot). On 0078660
// Shutdown closes the pools and then cancels the connectors without
// draining the refill queue: a connector that sees ctx.Done before a
// queued refill exits, and that refill's reservation stays counted for
// good (a few engines in a hundred; Shutdown does not wait for the
// connectors either, so a refill in flight still holds its sockets when
// Shutdown returns). The loop only gives each engine's connectors ample
// time to finish; the assertion is on the count they leave.
func TestSockPoolShutdownGivesBackQueuedRefills(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	h := v.handle(b)
	for i := range 300 {
		e := New(v.reg, v.e.log)
		if err := e.startLoops(1); err != nil {
			t.Fatal(err)
		}
		e.pools.take(h, unix.AF_INET) // a first batch asked for each family
		e.pools.take(h, unix.AF_INET6)
		e.Shutdown(context.Background())
		for wait := time.Now().Add(2 * time.Second); e.pools.pooled.Load() != 0 && time.Now().Before(wait); {
			time.Sleep(time.Millisecond) // a fill in flight gives its reserve back
		}
		if n := e.Snapshot().PooledSockets; n != 0 {
			t.Fatalf("engine %d: %d sockets counted as pooled after Shutdown, want 0 (%d refills left in the queue)", i, n, len(e.pools.refill))
		}
	}
}
