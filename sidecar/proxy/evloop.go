package proxy

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// evloop is one event loop of the data plane: a goroutine that owns the
// established connections handed to it. It learns readiness from its own
// epoll set (edge-triggered); when idle it blocks in epoll_wait on its own
// locked thread (wait). It keeps their idle
// timers in a heap, moves bytes through one read buffer or, for bulk,
// through pipes leased from its pool. Nothing else touches a connection
// it owns (and accepts on the listening sockets it owns, accept.go):
// other goroutines post commands (post), which the loop runs
// between two epoll waits, woken by an eventfd.
//
// Idle connections cost no goroutine and no buffer: two slots of the fd
// table, a pconn and the session it belongs to.
type evloop struct {
	e    *Engine
	id   int
	epfd int
	efd  int             // eventfd: commands wait in cmds
	pf   *os.File        // epfd in the runtime's poller (parking only, loopWaitBlocks off)
	rc   syscall.RawConn // pf's, to park until epfd is readable

	mu      sync.Mutex
	cmds    []func()
	stopped bool // no more commands are taken

	conns     atomic.Int64 // connections owned, for the choice of a loop
	listening atomic.Int64 // listening sockets owned (accept.go)
	done      chan struct{}

	// Owned by the loop's goroutine.
	fds      []fdSlot // indexed by fd number
	gen      uint32   // generation of the last registration
	timers   timerHeap
	again    []*pconn // connections whose budget ran out this turn
	buf      []byte   // read buffer for small payloads
	spare    [][]byte // buffers for bytes a short write left over
	pipes    pipePool
	now      mono // taken once per turn: activity stamps
	stopping bool
	// drained: the pump in progress may stop at a short read (pump).
	drained bool
	// parkedUntil: the read deadline set on pf (the next timer; 0 none).
	parkedUntil mono
	// Listening sockets it accepts on (accept.go), by fd, and those whose
	// batch ran out this turn.
	acceptors   map[int]*acceptor
	acceptAgain []*acceptor
	sa          unix.RawSockaddrAny // accept4's and getsockname's
}

// fdSlot says which connection an fd belongs to. gen is the registration's
// generation, carried in every epoll event too: an event for an fd that
// was closed and reused within one batch names an older generation and is
// dropped.
type fdSlot struct {
	c   *pconn
	gen uint32
}

// evEnd: the events that say a socket's peer finished or failed.
// EPOLLPRI too: a read stops short at TCP's urgent mark with bytes
// behind it, which raise no new edge (the kernel reports EPOLLPRI while
// urgent data is pending), so such a short read is not an empty queue.
const evEnd = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLPRI

const (
	// loopBufSize is the read buffer: a read that fills it switches the
	// direction to splice (HAProxy's splice-auto idea).
	loopBufSize = 16 << 10
	// loopYieldEvery: a loop that never yields is preempted by sysmon
	// every 10 ms, which costs a spinning sysmon; yielding first is cheap.
	loopYieldEvery = 5 * time.Millisecond
	// loopEvents per epoll_wait.
	loopEvents = 256
	// spareMax caps the buffers kept for short writes.
	spareMax = 16
)

func newLoop(e *Engine, id int) (*evloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	l := &evloop{e: e, id: id, epfd: epfd, efd: efd, done: make(chan struct{}),
		buf: make([]byte, loopBufSize), pipes: pipePool{budget: &e.pipes}}
	if loopWaitBlocks {
		return l, nil
	}
	// The epoll set is itself pollable: wrapped as a non-blocking file,
	// the runtime's poller wakes the loop when it has events (wait).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	l.pf = os.NewFile(uintptr(epfd), "evloop")
	rc, err := l.pf.SyscallConn()
	if err != nil {
		l.pf.Close()
		unix.Close(efd)
		return nil, err
	}
	l.rc = rc
	return l, nil
}

// post runs f on the loop. It reports false once the loop has stopped.
func (l *evloop) post(f func()) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	wake := len(l.cmds) == 0
	l.cmds = append(l.cmds, f)
	l.mu.Unlock()
	if wake {
		one := [8]byte{1}
		unix.Write(l.efd, one[:])
	}
	return true
}

// stop ends the loop: connections it still owns are closed ("shutdown").
func (l *evloop) stop() {
	if l.post(func() { l.stopping = true }) {
		<-l.done
	}
}

func (l *evloop) run() {
	defer close(l.done)
	if loopWaitBlocks {
		// The loop blocks in epoll_wait on its own thread; see wait.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	events := make([]unix.EpollEvent, loopEvents)
	lastYield := monoNow()
	for {
		n := l.wait(events)
		l.now = monoNow()
		for i := 0; i < n; i++ {
			l.event(events[i])
		}
		l.runAgain()
		l.runAcceptAgain()
		l.fireTimers()
		if l.stopping {
			l.close()
			return
		}
		if l.now.sub(lastYield) >= loopYieldEvery {
			runtime.Gosched()
			lastYield = monoNow()
		}
	}
}

// wait returns the next batch of events: waitBlocking (loopWaitBlocks), or
// else parked in the Go runtime's poller on the epoll fd (the epoll set is
// itself pollable) with a read deadline at the next timer.
//
// Why blocking: measured A/B, interleaved in one session (bench/ab.sh, 5
// rounds, ns mode, 2026-12-02 15:14-15:24 UTC, load 11-14 on 2 cores),
// blocking vs parking, with everything else equal: short connections
// 4,525 vs 3,298/s at 126.6 vs 151.6 µs proxy CPU each ("namespace *"
// 4,410 vs 3,657 at 121.8 vs 146.8; send-proxy-v2 3,794 vs 3,419 at 127.0
// vs 157.1), keep-alive 15,733 vs 11,583 req/s at 21.8 vs 25.7 µs. A
// parked loop's every wake-up went through the runtime's own epoll, a
// thread hand-off and the scheduler (findRunnable was ~20 % of the
// proxy's CPU under short connections), and polled its epoll set three
// times.
//
// What parking still does better: a goroutine locked to its thread that
// waits on the runtime's poller while the loops' Ps sit in epoll_wait.
// When it parks, its thread hands its P off, and the runtime starts a
// thread to poll the network only if every other P is idle; Ps in a
// system call are not, so the poller waits for sysmon (up to 10 ms):
// BenchmarkAcceptDialClose with its client on a locked thread, ~6 ms per
// connection blocking vs ~0.4-0.8 ms parked (client=unlocked: the same
// both ways). The daemon has no such goroutine: netns.Handle.Dial unlocks
// before the connect waits, Do's functions make sockets and never wait on
// the network. An ordinary goroutine that parks leaves its thread in
// findRunnable, which blocks in the runtime's poller itself.
func (l *evloop) wait(events []unix.EpollEvent) int {
	if loopWaitBlocks {
		return l.waitBlocking(events)
	}
	for {
		if len(l.again) > 0 || len(l.acceptAgain) > 0 {
			// Work is left over: only what is ready now.
			n, errno := epollPoll(l.epfd, events)
			if errno != 0 {
				return 0 // EINTR or worse: the next turn polls again
			}
			return n
		}
		// The read deadline is the next timer; set only when it changed
		// (a runtime timer update per wake-up otherwise).
		dl := mono(0)
		if len(l.timers) > 0 {
			dl = l.timers[0].deadline
			if dl <= monoNow() {
				n, errno := epollPoll(l.epfd, events)
				if errno != 0 {
					return 0
				}
				return n
			}
		}
		if dl != l.parkedUntil {
			deadline := time.Time{}
			if dl != 0 {
				deadline = epoch.Add(time.Duration(dl))
			}
			l.pf.SetReadDeadline(deadline)
			l.parkedUntil = dl
		}
		// Read polls once before it parks: no poll of our own first.
		var n int
		var errno syscall.Errno
		err := l.rc.Read(func(fd uintptr) bool {
			n, errno = epollPoll(int(fd), events)
			return n > 0 || (errno != 0 && errno != unix.EINTR)
		})
		if n > 0 {
			return n
		}
		if errno != 0 && errno != unix.EINTR {
			l.e.log.Error("event loop: epoll_wait failed", "loop", l.id, "err", errno)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			l.parkedUntil = -1 // expired: set again next time
			return 0           // the deadline: timers are due
		}
	}
}

// loopWaitBlocks chooses waitBlocking over parking in the runtime's poller
// (wait says why); the benchmarks turn it off to compare.
var loopWaitBlocks = true

// waitBlocking blocks in epoll_wait on the loop's locked thread, as a
// system call the runtime knows of (syscall.Syscall6, not a raw one: a
// stop-the-world waits for no thread in a system call), with the next
// timer as its timeout; with work left over it only polls (a raw call).
// EINTR (the runtime's preemption signal) retries. The epoll fd is not in
// the runtime's poller then (newLoop), which would wake for every event.
func (l *evloop) waitBlocking(events []unix.EpollEvent) int {
	for {
		ms := l.waitMillis()
		var n int
		var errno syscall.Errno
		if ms == 0 {
			n, errno = epollPoll(l.epfd, events)
		} else {
			r, _, e := syscall.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&events[0])),
				uintptr(len(events)), uintptr(ms), 0, 0)
			n, errno = int(r), e
		}
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			l.e.log.Error("event loop: epoll_wait failed", "loop", l.id, "err", errno)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return n
	}
}

// epollPoll is a non-blocking epoll_wait.
func epollPoll(epfd int, events []unix.EpollEvent) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	return int(r), e
}

// waitMillis is epoll_wait's timeout: 0 when work is left over, else until
// the next timer.
func (l *evloop) waitMillis() int {
	if len(l.again) > 0 || len(l.acceptAgain) > 0 {
		return 0
	}
	if len(l.timers) == 0 {
		return -1
	}
	d := l.timers[0].deadline.sub(monoNow())
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

func (l *evloop) event(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	if fd == l.efd {
		l.commands()
		return
	}
	var slot fdSlot
	if fd < len(l.fds) {
		slot = l.fds[fd]
	}
	c := slot.c
	if c == nil {
		l.acceptEvent(fd, uint32(ev.Pad)) // a listening socket, or nothing
		return
	}
	if slot.gen != uint32(ev.Pad) || c.closed {
		return // closed, maybe reused, since the event was queued
	}
	side := 0
	if c.fd[1] == fd {
		side = 1
	}
	if c.header != nil {
		// Only readable matters; adoptHeader read once already, so the
		// registration's writable event costs no read.
		if side == 0 && ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.readHeader()
		}
		return
	}
	if c.connecting {
		// The client's bytes wait in the kernel until the server is
		// connected; then both directions are pumped (established),
		// knowing what the client's events said meanwhile.
		if side == 0 {
			c.early |= ev.Events
		} else if ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			c.connectDone(ev.Events)
		}
		return
	}
	in := ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLPRI) != 0
	out := ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0
	if in {
		l.drained = ev.Events&evEnd == 0
		c.pump(side) // side's socket is the source
		l.drained = false
	}
	if out && !c.closed && c.dir[1-side].holding() {
		c.pump(1 - side) // side's socket is the destination
	}
	if ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 && !c.closed && c.dir[side].done {
		// A reset (or hang-up) of a socket whose own direction had
		// ended, its FIN passed on: pump has nothing left to read from
		// it, and the other direction, idle, nothing to write to it; with
		// edge-triggered readiness this event is the only news of it.
		// Both sockets are up otherwise only while that other direction
		// lasts, which a reset ended.
		c.fail(c.classify(sockError(fd), side, false))
	}
}

// sockError is the socket's pending error (SO_ERROR), ECONNRESET if it has
// none left to tell (a hang-up, or an error a call returned already).
func sockError(fd int) syscall.Errno {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v != 0 {
		return syscall.Errno(v)
	}
	return unix.ECONNRESET
}

func (l *evloop) commands() {
	var b [8]byte
	unix.Read(l.efd, b[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds {
		f()
	}
}

// adopt registers a connection's two sockets (the server's connecting)
// and arms its connect timeout.
func (l *evloop) adopt(c *pconn) {
	if l.now == 0 {
		l.now = monoNow()
	}
	c.active = l.now
	for _, fd := range c.fd {
		if !l.watch(c, fd) {
			c.fail("closed")
			return
		}
	}
	c.armConnect()
}

// watch registers fd of c, edge-triggered, with a new generation.
func (l *evloop) watch(c *pconn, fd int) bool {
	for fd >= len(l.fds) {
		l.fds = append(l.fds, make([]fdSlot, max(64, len(l.fds)))...)
	}
	l.gen++
	l.fds[fd] = fdSlot{c: c, gen: l.gen}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLPRI | unix.EPOLLET,
		Fd: int32(fd), Pad: int32(l.gen)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.fds[fd] = fdSlot{}
		l.e.log.Warn("event loop: cannot watch a socket", "loop", l.id, "err", err)
		return false
	}
	return true
}

// requeue gives a direction whose budget ran out another turn after the
// other connections had theirs: edge-triggered epoll will not report
// what is already waiting.
func (l *evloop) requeue(c *pconn, side int) {
	c.dir[side].more = true
	if !c.queued {
		c.queued = true
		l.again = append(l.again, c)
	}
}

func (l *evloop) runAgain() {
	if len(l.again) == 0 {
		return
	}
	again := l.again
	l.again = nil
	for _, c := range again {
		c.queued = false
		for side := range c.dir {
			if !c.closed && c.dir[side].more {
				c.dir[side].more = false
				c.pump(side)
			}
		}
	}
	clear(again)
}

func (l *evloop) fireTimers() {
	for len(l.timers) > 0 && l.timers[0].deadline <= l.now {
		l.timers[0].idleCheck(l.now)
	}
}

// getSpare returns an empty buffer for bytes a short write left over.
func (l *evloop) getSpare() []byte {
	if n := len(l.spare); n > 0 {
		b := l.spare[n-1]
		l.spare = l.spare[:n-1]
		return b[:0]
	}
	return make([]byte, 0, loopBufSize)
}

func (l *evloop) putSpare(b []byte) {
	if len(l.spare) < spareMax {
		l.spare = append(l.spare, b[:0])
	}
}

// close ends every connection still owned and frees the loop's fds.
func (l *evloop) close() {
	l.mu.Lock()
	l.stopped = true
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds { // adoptions and aborts that came late
		f()
	}
	for _, slot := range l.fds {
		if slot.c != nil && !slot.c.closed {
			slot.c.fail("shutdown")
		}
	}
	l.pipes.close()
	if l.pf != nil {
		l.pf.Close() // epfd
	} else {
		unix.Close(l.epfd)
	}
	unix.Close(l.efd)
}

// startLoops starts n loops (n <= 0: one per CPU) and leaves a spare P
// for everything else the daemon runs.
func (e *Engine) startLoops(n int) error {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	if runtime.GOMAXPROCS(0) < n+1 {
		runtime.GOMAXPROCS(n + 1)
	}
	loops := make([]*evloop, 0, n)
	for i := range n {
		l, err := newLoop(e, i)
		if err != nil {
			for _, l := range loops {
				l.stop()
			}
			return err
		}
		loops = append(loops, l)
		go l.run()
	}
	e.loops = loops
	e.startConnectors(n)
	return nil
}

// pickLoop chooses the loop owning the fewest connections.
func (e *Engine) pickLoop() *evloop {
	best := e.loops[0]
	for _, l := range e.loops[1:] {
		if l.conns.Load() < best.conns.Load() {
			best = l
		}
	}
	return best
}

func (e *Engine) stopLoops() {
	for _, l := range e.loops {
		l.stop()
	}
}
