package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"golang.org/x/sys/unix"
)

// Review finding: the pools' total (the fd reserve of fitMaxConn) is checked
// against the sockets already pooled only; refills queued or running are
// not counted, so a burst of first connections to many namespaces pools
// more than 64 sockets.
func TestSockPoolStaysUnderItsTotal(t *testing.T) {
	var names []string
	for i := range 16 {
		names = append(names, testns.New(t, fmt.Sprintf("P%d", i)))
	}
	v := newEnv(t, names...)
	if err := v.e.Apply(Spec{NbThread: 2}); err != nil { // loops and connectors
		t.Fatal(err)
	}
	for _, n := range names { // the first attempt to each namespace: what a loop does
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			if fd := v.e.pools.take(v.handle(n), fam); fd >= 0 {
				unix.Close(fd)
			}
		}
		time.Sleep(300 * time.Microsecond)
	}
	time.Sleep(500 * time.Millisecond) // the connectors fill
	t.Logf("pooled %d", v.e.pools.pooled.Load())
	if got, limit := v.e.pools.pooled.Load(), v.e.pools.limit(); got > limit {
		t.Fatalf("%d sockets pooled, more than the total (%d) that fitMaxConn reserves", got, limit)
	}
}
