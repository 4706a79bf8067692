package proxy

import (
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
	"golang.org/x/sys/unix"
)

// TestSockPoolRefillsBeforeItRunsDry (issue 14): a pool asks for its next
// batch while it still holds as many sockets as that batch will make, so
// that a burst of accepts finds sockets while a connector makes more (with
// batches of 8 asked at 4 left, a burst of 16 connections emptied the pool
// and half of it went to the connectors). The batch grows only when the
// pool ran dry after it had been filled, up to sockPoolBatch: a namespace
// used now and then keeps a first batch or two (the review found one used
// three times holding 54). Every socket made is closed with the pool, and
// the engine-wide count returns to zero.
func TestSockPoolRefillsBeforeItRunsDry(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	h := v.handle(b)
	fd0 := openFDs()
	ps := newTestPools()
	next := func(want int) *sockRefill {
		t.Helper()
		select {
		case r := <-ps.refill:
			if r.n != want {
				t.Fatalf("refill of %d sockets asked, want %d", r.n, want)
			}
			return r
		default:
			t.Fatalf("no refill asked, want one of %d", want)
			return nil
		}
	}
	fill := func(r *sockRefill) {
		t.Helper()
		if ps.fill(r) {
			t.Fatal("the test's thread is stuck in B")
		}
	}
	noneAsked := func() {
		t.Helper()
		select {
		case r := <-ps.refill:
			t.Fatalf("a refill of %d asked with %d sockets pooled", r.n, ps.pooled.Load())
		default:
		}
	}
	take := func() bool {
		t.Helper()
		fd := ps.take(h, unix.AF_INET)
		if fd >= 0 {
			unix.Close(fd)
		}
		return fd >= 0
	}
	if take() {
		t.Fatal("a new pool had a socket")
	}
	fill(next(sockPoolBatchMin)) // the first batch
	if !take() {                 // 7 left: the next batch is asked now, before the pool runs dry
		t.Fatal("the pool ran dry after its first batch came")
	}
	fill(next(sockPoolBatchMin)) // used now and then: the batch stays the first one
	for range 7 {                // 15 → 8: no refill
		take()
		noneAsked()
	}
	if got := ps.pooled.Load(); got != sockPoolBatchMin {
		t.Fatalf("%d pooled after 9 connections, want %d", got, sockPoolBatchMin)
	}
	// Busy: the pool runs dry while its refill is on the way, and only
	// then does the batch grow, to sockPoolBatch at most.
	want := sockPoolBatchMin
	for want < sockPoolBatch {
		take() // at 7 left: a refill of the current batch is asked
		pending := next(want)
		for take() { // runs dry before the refill comes
		}
		want *= 2
		fill(pending)
		for ps.pooled.Load() >= int64(want) {
			take()
			noneAsked()
		}
	}
	take()
	fill(next(sockPoolBatch))
	ps.close()
	if got := ps.pooled.Load(); got != 0 {
		t.Fatalf("%d sockets counted as pooled after close, want 0", got)
	}
	if fd1 := openFDs(); fd1 > fd0 {
		t.Fatalf("%d fds open after close, %d before: the pool's sockets leaked", fd1, fd0)
	}
}

// TestSockPoolTotalFollowsTheFDLimit: the pools' total (in fitMaxConn's
// reserve) is a sixteenth of the open-file limit, at least a first batch
// and at most sockPoolTotal, so a small limit keeps its fds for
// connections.
func TestSockPoolTotalFollowsTheFDLimit(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int64
	}{
		{0, sockPoolTotal}, // unknown
		{64, sockPoolBatchMin},
		{256, 16},
		{1024, 64},
		{4096, sockPoolTotal},
		{1 << 20, sockPoolTotal},
	} {
		if got := sockPoolTotalFor(tc.nofile); got != tc.want {
			t.Errorf("sockPoolTotalFor(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}

// TestSockPoolReserveNearTheTotal: near the pools' total a refill gets what
// is left if that is at least a first batch, and nothing otherwise, so the
// pools never pass the open-file reserve that fitMaxConn keeps for them.
func TestSockPoolReserveNearTheTotal(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pooled        int64
		want, granted int
		pooledAfter   int64
	}{
		{"empty", 0, sockPoolBatch, sockPoolBatch, sockPoolBatch},
		{"room for part", sockPoolTotal - 10, sockPoolBatch, 10, sockPoolTotal},
		{"room for less than a first batch", sockPoolTotal - sockPoolBatchMin + 1, sockPoolBatch, 0, sockPoolTotal - sockPoolBatchMin + 1},
		{"full", sockPoolTotal, sockPoolBatchMin, 0, sockPoolTotal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps sockPools
			ps.pooled.Store(tc.pooled)
			if got := ps.reserve(tc.want); got != tc.granted {
				t.Errorf("reserve(%d) with %d pooled = %d, want %d", tc.want, tc.pooled, got, tc.granted)
			}
			if got := ps.pooled.Load(); got != tc.pooledAfter || got > ps.limit() {
				t.Errorf("%d counted afterwards, want %d (total %d)", got, tc.pooledAfter, ps.limit())
			}
		})
	}
}

// TestSockPoolTrimsIdlePools: a pool nobody took from between two trims
// gives back all but a first batch, closes them, and starts over with
// small batches; a pool in use is left alone. Before, a burst's sockets
// stayed open until the namespace's handle ended (and counted in every
// idle connection's fds in the benchmark).
func TestSockPoolTrimsIdlePools(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	h := v.handle(b)
	fd0 := openFDs()
	ps := newTestPools()
	t.Cleanup(ps.close)
	// Busy: run the pool dry with its refills held back, so that it grows.
	var held []*sockRefill
	for range 200 {
		if fd := ps.take(h, unix.AF_INET); fd >= 0 {
			unix.Close(fd)
			continue
		}
		for {
			select {
			case r := <-ps.refill:
				held = append(held, r)
				continue
			default:
			}
			break
		}
		for _, r := range held {
			ps.fill(r)
		}
		held = held[:0]
	}
	for { // the refill the last take asked for
		select {
		case r := <-ps.refill:
			ps.fill(r)
			continue
		default:
		}
		break
	}
	grown := ps.pooled.Load()
	if grown <= sockPoolBatchMin {
		t.Fatalf("the busy pool holds %d, want more than a first batch to trim", grown)
	}
	if n := ps.trimIdle(); n != 0 {
		t.Fatalf("a pool used since the last trim lost %d sockets", n)
	}
	if n := ps.trimIdle(); int64(n) != grown-sockPoolBatchMin {
		t.Fatalf("an idle pool of %d gave back %d, want all but %d", grown, n, sockPoolBatchMin)
	}
	if got := ps.pooled.Load(); got != sockPoolBatchMin {
		t.Fatalf("%d counted as pooled after the trim, want %d", got, sockPoolBatchMin)
	}
	if fd1 := openFDs(); fd1 > fd0+sockPoolBatchMin {
		t.Fatalf("%d fds open after the trim, %d before: the trimmed sockets were not closed", fd1, fd0)
	}
	// It starts over with small batches: a first batch is asked at 7 left.
	fd := ps.take(h, unix.AF_INET)
	unix.Close(fd)
	select {
	case r := <-ps.refill:
		if r.n != sockPoolBatchMin {
			t.Fatalf("refill of %d after the trim, want %d", r.n, sockPoolBatchMin)
		}
		ps.fill(r)
	default:
		t.Fatal("no refill asked at 7 left after the trim")
	}
}

// newTestPools is an engine's pools without the engine: a test takes from
// them and runs the refills it wants (fill) itself.
func newTestPools() *sockPools {
	return &sockPools{refill: make(chan *sockRefill, sockPoolTotal/sockPoolBatchMin)}
}
