package proxy

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// Sockets made ahead in other namespaces, so that a loop connects to a
// server in another namespace itself: a loop never enters a namespace, but
// bind and connect work on a socket from any thread, and only socket(2)
// must run inside. A connector makes them in batches (one round trip into
// the namespace per batch, netns.Handle.Sockets); the loop takes one per
// attempt and asks for the next batch while the pool still holds as many
// sockets as that batch will make, so that a burst of accepts finds
// sockets while the connector makes more. A pool's batch grows when the
// pool ran dry after it had been filled, from sockPoolBatchMin to
// sockPoolBatch (doubling each time): a busy namespace costs one trip and
// one connector wake-up per 32 connections, one used now and then holds a
// first batch or two only. No namespace holds more than a quarter of the
// total (sockPoolShare), so idle pools cannot starve a busy one of
// refills. A pool that went unused for sockPoolIdle gives back all but a
// first batch and starts over with small batches (trimIdle), and unused
// for one more, the first batch too, so that a burst's sockets do not stay
// open in a namespace that went quiet and idle first batches cannot hold
// the total. A pool
// that is empty
// costs nothing but the old way: the attempt goes to a connector
// (errOffLoop). Pooled sockets count against the open-file budget
// (sockPoolTotalFor the limit, in fitMaxConn's reserve) and keep their
// namespace alive, so a namespace's pool is closed when its handle ends
// (and all of them at Shutdown).
//
// Why: with batches of 8 asked at 4 left, a burst of wrk's 16 connections
// emptied the pool and attempts went to the connectors (perf: connectors
// 9.8 % of the proxy's CPU per short connection, most of it attempts, not
// refills, plus the scheduler's wake-ups). See ARCHITECTURE.md for the A/B.

const (
	sockPoolIdle     = 500 * time.Millisecond // unused this long: a pool is trimmed
	sockPoolBatchMin = 8                      // a pool's first batch
	sockPoolBatch    = 32                     // a busy pool's batch
	sockPoolTotal    = 256                    // pooled sockets of the whole engine, at most
)

// sockPoolTotalFor is the engine's total for an open-file limit (0:
// unknown): a sixteenth of it, between a first batch and sockPoolTotal,
// so that a small limit keeps its fds for connections.
func sockPoolTotalFor(nofile uint64) int64 {
	if nofile == 0 {
		return sockPoolTotal
	}
	return int64(min(max(nofile/16, sockPoolBatchMin), sockPoolTotal))
}

// sockPools are the engine's pools, by namespace handle.
type sockPools struct {
	m      sync.Map         // *netns.Handle → *sockPool
	pooled atomic.Int64     // sockets pooled, and the batches asked for
	total  atomic.Int64     // pooled at most (fitMaxConn sets it); 0: sockPoolTotal
	refill chan *sockRefill // for the connectors
	closed atomic.Bool
}

// share is the most sockets one namespace's pool may hold (and have asked
// for): a quarter of the total, but at least a first batch.
func (ps *sockPools) share() int {
	return int(max(ps.limit()/4, sockPoolBatchMin))
}

// limit is the most sockets the pools may hold together.
func (ps *sockPools) limit() int64 {
	if t := ps.total.Load(); t > 0 {
		return t
	}
	return sockPoolTotal
}

type sockPool struct {
	h      *netns.Handle
	mu     sync.Mutex
	fds    [2][]int // AF_INET, AF_INET6
	batch  [2]int   // the next refill's size, and the level it is asked at
	filled [2]bool  // a refill came: running dry now means the batch is too small
	asked  [2]int   // sockets of the refill queued or running (0: none)
	used   bool     // taken from since the last trimIdle
	idle   int      // trimIdle runs since the last take
	closed bool
}

type sockRefill struct {
	p   *sockPool
	fam int
	n   int // sockets reserved for it
}

func famIndex(fam int) int {
	if fam == unix.AF_INET6 {
		return 1
	}
	return 0
}

// take returns a socket of family fam made in h's namespace, or -1 (none
// pooled now). It asks for a refill when fewer sockets than the pool's
// next batch are left. On the loop.
func (ps *sockPools) take(h *netns.Handle, fam int) int {
	if ps.closed.Load() || h.Context().Err() != nil {
		return -1
	}
	v, ok := ps.m.Load(h)
	if !ok {
		var loaded bool
		v, loaded = ps.m.LoadOrStore(h, &sockPool{h: h, batch: [2]int{sockPoolBatchMin, sockPoolBatchMin}})
		if !loaded {
			p := v.(*sockPool)
			context.AfterFunc(h.Context(), func() { ps.drop(p) })
		}
	}
	p := v.(*sockPool)
	i := famIndex(fam)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used = true
	fd := -1
	if n := len(p.fds[i]); n > 0 {
		fd = p.fds[i][n-1]
		p.fds[i] = p.fds[i][:n-1]
		ps.pooled.Add(-1)
	} else if p.filled[i] {
		// Dry although it was filled: the connections come faster than
		// a batch lasts. Only then does the batch grow.
		p.batch[i] = min(2*p.batch[i], sockPoolBatch)
	}
	held := len(p.fds[i])
	// The share is the namespace's, both families and what they asked for.
	all := len(p.fds[0]) + len(p.fds[1]) + p.asked[0] + p.asked[1]
	if want := min(p.batch[i], ps.share()-all); held < p.batch[i] && want > 0 && p.asked[i] == 0 && !p.closed {
		if n := ps.reserve(want); n > 0 {
			select {
			case ps.refill <- &sockRefill{p, fam, n}:
				p.asked[i] = n
			default: // the connectors are busy: the next take asks again
				ps.pooled.Add(-int64(n))
			}
		}
	}
	return fd
}

// reserve counts up to want sockets against the pools' limit before they are
// asked for, so that refills queued or running never take the pools past
// it. Near the total it grants what is left, but not less than a first
// batch (or want, if smaller); 0: none.
func (ps *sockPools) reserve(want int) int {
	for {
		n := ps.pooled.Load()
		grant := min(int64(want), ps.limit()-n)
		if grant < int64(min(want, sockPoolBatchMin)) {
			return 0
		}
		if ps.pooled.CompareAndSwap(n, n+grant) {
			return int(grant)
		}
	}
}

// fill runs on a connector: it makes a batch of sockets for the pool. It
// reports a thread stuck in a foreign namespace.
func (ps *sockPools) fill(r *sockRefill) (stuck bool) {
	p, i := r.p, famIndex(r.fam)
	fds, err := p.h.Sockets(r.fam, r.n)
	p.mu.Lock()
	p.asked[i] = 0
	if p.closed || ps.closed.Load() {
		ps.pooled.Add(-int64(r.n)) // the batch reserve went unused
		p.mu.Unlock()
		for _, fd := range fds {
			unix.Close(fd)
		}
		return errors.Is(err, netns.ErrThreadStuck)
	}
	p.fds[i] = append(p.fds[i], fds...)
	p.filled[i] = p.filled[i] || len(fds) > 0
	ps.pooled.Add(int64(len(fds) - r.n)) // what was reserved and not made
	p.mu.Unlock()
	return errors.Is(err, netns.ErrThreadStuck)
}

// drop closes a pool: its namespace ended, or the engine stops.
func (ps *sockPools) drop(p *sockPool) {
	ps.m.CompareAndDelete(p.h, p)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i := range p.fds {
		for _, fd := range p.fds[i] {
			unix.Close(fd)
		}
		ps.pooled.Add(-int64(len(p.fds[i])))
		p.fds[i] = nil
	}
}

// close drops every pool (Shutdown); later takes find none.
func (ps *sockPools) close() {
	ps.closed.Store(true)
	ps.m.Range(func(_, v any) bool {
		ps.drop(v.(*sockPool))
		return true
	})
}

// trimIdle gives back the sockets of the pools nobody took from since its
// last run, down to a first batch, and resets their batches; a pool still
// unused at the next run gives back its first batch too, so that idle
// namespaces' first batches cannot hold the whole total. A connector-side
// ticker runs it every sockPoolIdle. It returns how many sockets it closed.
func (ps *sockPools) trimIdle() int {
	closed := 0
	ps.m.Range(func(_, v any) bool {
		p := v.(*sockPool)
		p.mu.Lock()
		if p.used || p.closed {
			p.used, p.idle = false, 0
			p.mu.Unlock()
			return true
		}
		p.idle++
		keep := sockPoolBatchMin
		if p.idle > 1 {
			keep = 0
		}
		var extra []int
		for i := range p.fds {
			if n := len(p.fds[i]); n > keep {
				extra = append(extra, p.fds[i][keep:]...)
				p.fds[i] = slices.Clip(p.fds[i][:keep])
			}
			p.batch[i], p.filled[i] = sockPoolBatchMin, false
		}
		ps.pooled.Add(-int64(len(extra)))
		p.mu.Unlock()
		for _, fd := range extra {
			unix.Close(fd)
		}
		closed += len(extra)
		return true
	})
	return closed
}

// drainRefills gives back the reserve of the refills still queued, once no
// connector is left to take them (Shutdown).
func (ps *sockPools) drainRefills() {
	for {
		select {
		case r := <-ps.refill:
			r.p.mu.Lock()
			r.p.asked[famIndex(r.fam)] = 0
			r.p.mu.Unlock()
			ps.pooled.Add(-int64(r.n))
		default:
			return
		}
	}
}
