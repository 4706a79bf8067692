package proxy

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// pipe is a kernel pipe that splice(2) moves bulk data through.
type pipe struct {
	r, w int
	size int // capacity in bytes
}

// pipePool is a loop's pipes. A direction leases one only while bulk data
// is in flight, so idle connections hold none; the pool keeps a few for
// the next transfer and closes the rest. budget counts the pipes of every
// loop against the open-file limit (HAProxy's maxpipes): past it a
// direction copies through the loop's buffer instead.
type pipePool struct {
	idle   []*pipe
	budget *pipeBudget
}

// pipeBudget is the engine-wide count of open pipes and its cap.
type pipeBudget struct {
	open, max atomic.Int64
}

// take reserves one pipe; false when the cap is reached.
func (b *pipeBudget) take() bool {
	if b == nil {
		return true
	}
	if b.open.Add(1) > b.max.Load() {
		b.open.Add(-1)
		return false
	}
	return true
}

func (b *pipeBudget) give() {
	if b != nil {
		b.open.Add(-1)
	}
}

const (
	// pipeSize: 1 MiB pipes halve the CPU per GB against the default
	// 64 KiB (fewer splice calls); it is also what Go's own splice uses.
	pipeSize = 1 << 20
	// pipeIdleMax caps the pipes kept idle per loop (2 fds each).
	pipeIdleMax = 8
)

// get leases a pipe; nil if none can be made (the caller copies through
// its buffer instead).
func (p *pipePool) get() *pipe {
	if n := len(p.idle); n > 0 {
		pp := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		return pp
	}
	if !p.budget.take() {
		return nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		p.budget.give()
		return nil
	}
	pp := &pipe{r: fds[0], w: fds[1]}
	// Without CAP_SYS_RESOURCE the resize fails (EPERM) once the user's
	// pipe pages are used up: the default size still works.
	if n, err := unix.FcntlInt(uintptr(pp.w), unix.F_SETPIPE_SZ, pipeSize); err == nil {
		pp.size = n
	} else if n, err := unix.FcntlInt(uintptr(pp.w), unix.F_GETPIPE_SZ, 0); err == nil {
		pp.size = n
	} else {
		pp.size = 64 << 10
	}
	return pp
}

// put returns an empty pipe to the pool.
func (p *pipePool) put(pp *pipe) {
	if len(p.idle) < pipeIdleMax {
		p.idle = append(p.idle, pp)
		return
	}
	pp.close()
	p.budget.give()
}

func (p *pipePool) close() {
	for _, pp := range p.idle {
		pp.close()
		p.budget.give()
	}
	p.idle = nil
}

func (pp *pipe) close() {
	unix.Close(pp.r)
	unix.Close(pp.w)
}
