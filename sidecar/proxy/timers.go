package proxy

import (
	"container/heap"
	"time"
)

// timerHeap orders a loop's connections by the deadline of their idle
// check: one entry per connection, moved rather than re-created when the
// deadline changes, and no runtime timer at all.
type timerHeap []*pconn

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *timerHeap) Push(x any) {
	c := x.(*pconn)
	c.hidx = len(*h)
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.hidx = -1
	return c
}

// set puts c in the heap or moves it to its new deadline.
func (h *timerHeap) set(c *pconn) {
	if c.hidx < 0 {
		heap.Push(h, c)
		return
	}
	heap.Fix(h, c.hidx)
}

// remove takes c out of the heap, if it is in.
func (h *timerHeap) remove(c *pconn) {
	if c.hidx >= 0 {
		heap.Remove(h, c.hidx)
	}
}

// mono is a point in time on the monotonic clock, as nanoseconds since
// the package's epoch: 8 bytes where a time.Time takes 24, for the two
// stamps every connection keeps (activity).
type mono int64

var epoch = time.Now()

func monoNow() mono { return mono(time.Since(epoch)) }

func (m mono) add(d time.Duration) mono { return m + mono(d) }

func (m mono) sub(o mono) time.Duration { return time.Duration(m - o) }
