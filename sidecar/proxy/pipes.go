package proxy

import "golang.org/x/sys/unix"

// pipe is a kernel pipe that splice(2) moves bulk data through.
type pipe struct {
	r, w int
	size int // capacity in bytes
}

// pipePool is a loop's pipes. A direction leases one only while bulk data
// is in flight, so idle connections hold none; the pool keeps a few for
// the next transfer and closes the rest.
type pipePool struct {
	idle []*pipe
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
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
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
}

func (p *pipePool) close() {
	for _, pp := range p.idle {
		pp.close()
	}
	p.idle = nil
}

func (pp *pipe) close() {
	unix.Close(pp.r)
	unix.Close(pp.w)
}
