package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// Sockets made ahead in other namespaces, so that a loop connects to a
// server in another namespace itself: a loop never enters a namespace, but
// bind and connect work on a socket from any thread, and only socket(2)
// must run inside. A connector makes them in batches (one round trip into
// the namespace for sockPoolBatch sockets, netns.Handle.Sockets); the loop
// takes one per attempt and asks for more when the pool runs low. A pool
// that is empty costs nothing but the old way: the attempt goes to a
// connector (errOffLoop). Pooled sockets count against the open-file
// budget (sockPoolTotal, in fitMaxConn's reserve) and keep their namespace
// alive, so a namespace's pool is closed when its handle ends (and all of
// them at Shutdown).

const (
	sockPoolBatch = 8  // sockets made per refill
	sockPoolTotal = 64 // pooled sockets of the whole engine, at most
)

// sockPools are the engine's pools, by namespace handle.
type sockPools struct {
	m      sync.Map         // *netns.Handle → *sockPool
	pooled atomic.Int64     // sockets pooled, and a batch for each refill asked for
	refill chan *sockRefill // for the connectors
	closed atomic.Bool
}

type sockPool struct {
	h      *netns.Handle
	mu     sync.Mutex
	fds    [2][]int // AF_INET, AF_INET6
	asked  [2]bool  // a refill is queued or running
	closed bool
}

type sockRefill struct {
	p   *sockPool
	fam int
}

func famIndex(fam int) int {
	if fam == unix.AF_INET6 {
		return 1
	}
	return 0
}

// take returns a socket of family fam made in h's namespace, or -1 (none
// pooled now: a refill is asked for). On the loop.
func (ps *sockPools) take(h *netns.Handle, fam int) int {
	if ps.closed.Load() || h.Context().Err() != nil {
		return -1
	}
	v, ok := ps.m.Load(h)
	if !ok {
		var loaded bool
		v, loaded = ps.m.LoadOrStore(h, &sockPool{h: h})
		if !loaded {
			p := v.(*sockPool)
			context.AfterFunc(h.Context(), func() { ps.drop(p) })
		}
	}
	p := v.(*sockPool)
	i := famIndex(fam)
	p.mu.Lock()
	defer p.mu.Unlock()
	fd := -1
	if n := len(p.fds[i]); n > 0 {
		fd = p.fds[i][n-1]
		p.fds[i] = p.fds[i][:n-1]
		ps.pooled.Add(-1)
	}
	if len(p.fds[i]) < sockPoolBatch/2 && !p.asked[i] && !p.closed && ps.reserve() {
		select {
		case ps.refill <- &sockRefill{p, fam}:
			p.asked[i] = true
		default: // the connectors are busy: the next take asks again
			ps.pooled.Add(-sockPoolBatch)
		}
	}
	return fd
}

// reserve counts a batch against sockPoolTotal before it is asked for, so
// that refills queued or running never take the pools past it.
func (ps *sockPools) reserve() bool {
	for {
		n := ps.pooled.Load()
		if n+sockPoolBatch > sockPoolTotal {
			return false
		}
		if ps.pooled.CompareAndSwap(n, n+sockPoolBatch) {
			return true
		}
	}
}

// fill runs on a connector: it makes a batch of sockets for the pool. It
// reports a thread stuck in a foreign namespace.
func (ps *sockPools) fill(r *sockRefill) (stuck bool) {
	p, i := r.p, famIndex(r.fam)
	fds, err := p.h.Sockets(r.fam, sockPoolBatch)
	p.mu.Lock()
	p.asked[i] = false
	if p.closed || ps.closed.Load() {
		ps.pooled.Add(-sockPoolBatch) // the batch reserve went unused
		p.mu.Unlock()
		for _, fd := range fds {
			unix.Close(fd)
		}
		return errors.Is(err, netns.ErrThreadStuck)
	}
	p.fds[i] = append(p.fds[i], fds...)
	ps.pooled.Add(int64(len(fds) - sockPoolBatch)) // what was reserved and not made
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
