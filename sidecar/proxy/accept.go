package proxy

import (
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// Accept inside the loops. A bind's listening socket (one per bind: made
// in its namespace, inherited from a predecessor or adopted from podman)
// is registered in the epoll set of one loop, its owner, chosen among the
// loops by the fewest listening sockets. The owner accepts with accept4(2)
// as a raw non-blocking call, a bounded batch per turn, takes the maxconn
// slots first (frontend, tenant, global: when one is full it stops
// watching the socket, so the excess waits in the kernel backlog, and
// watches it again when a slot frees), and sets the connection up itself:
// a plain bind's server connect starts right there when the server's
// socket is made in the daemon's own namespace (no setns); a socket in
// another namespace is made by a connector (hdrloop.go), since a loop's
// thread never enters a foreign namespace. An accepted connection stays
// on the accepting loop unless another owns loopSlack fewer connections.
//
// Why one owner and not every loop with EPOLLEXCLUSIVE: an exclusive
// wake-up goes to the first waiter in the socket's wait queue whose epoll
// takes the event, whether or not its loop is busy (the wake-up goes to
// the socket's first wait-queue entry, an epoll set, not to a thread that
// waits), so the same loop takes nearly
// every connection anyway (the "LIFO" wake-up nginx saw); and one owner
// makes a listening socket's registration, pause and close one loop's
// commands, with one generation tag, instead of N loops to agree with
// before the fd may be closed.

// acceptor is one listening socket in its owner loop. Fields below loop
// are the owner's.
type acceptor struct {
	l    *listener
	h    *netns.Handle
	fd   int
	loop *evloop

	gen       uint32 // of the epoll registration; 0 while not watched
	paused    pauseReason
	dropped   bool
	queued    bool          // in the loop's acceptAgain list
	backoff   time.Duration // after accept errors; 0 after a success
	lastLog   time.Time
	notLogged int
	wake      func(*limiter) // a slot freed: posted to the loop (limiter.tryAcquire)
	woken     *limiter       // whose wake-up the accept in progress uses (slotFreed)
	// What every accepted socket inherits (acceptedFD): TCP_NODELAY set
	// on the listening socket, and its address when bound to one (not a
	// wildcard, not transparent): the connections' destination. A socket
	// takes its listener's options when its handshake completes, so the
	// connections queued before the option was set (a socket handed over
	// or adopted, a client between listen and the loop) lack it: nodelay
	// holds only from the first EAGAIN after it was set (canNodelay).
	nodelay    bool
	canNodelay bool
	local      netip.AddrPort
}

type pauseReason uint8

const (
	notPaused pauseReason = iota
	pausedSlots
	pausedBackoff
)

const (
	// acceptBatch bounds the accepts of one listening socket per loop
	// turn (HAProxy's tune.maxaccept is 64 per listener, shared by its
	// threads): the loop's connections get their turn in between.
	acceptBatch = 32
	// loopSlack: an accepted connection stays on the accepting loop (no
	// wake-up of another thread) unless another loop owns this many fewer.
	loopSlack = 32
)

// Accept error back-off and log rate.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	acceptLogEvery   = 10 * time.Second
)

// acceptLoop chooses the loop that owns a new listening socket.
func (e *Engine) acceptLoop() *evloop {
	best := e.loops[0]
	for _, l := range e.loops[1:] {
		if l.listening.Load() < best.listening.Load() {
			best = l
		}
	}
	best.listening.Add(1) // given back by dropAcceptor
	return best
}

// addAcceptor starts watching a listening socket (on the loop).
func (l *evloop) addAcceptor(a *acceptor) {
	if l.acceptors == nil {
		l.acceptors = map[int]*acceptor{}
	}
	l.acceptors[a.fd] = a
	a.wake = func(from *limiter) { l.post(func() { a.slotFreed(from) }) }
	a.canNodelay, a.local = inherited(a.fd, &l.sa)
	a.arm()
}

// inherited sets TCP_NODELAY on a listening socket, which the sockets it
// accepts inherit, and returns the local address they all have: its own
// when bound to one address and not transparent (a transparent socket
// accepts connections to any address), else none. Two system calls per
// connection fewer (acceptedFD).
func inherited(fd int, sa *unix.RawSockaddrAny) (nodelay bool, local netip.AddrPort) {
	nodelay = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) == nil
	n := uint32(unsafe.Sizeof(*sa))
	if _, _, errno := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(sa)),
		uintptr(unsafe.Pointer(&n))); errno != 0 {
		return nodelay, netip.AddrPort{}
	}
	local = rawAddrPort(sa)
	if !local.IsValid() || local.Addr().IsUnspecified() || local.Port() == 0 {
		return nodelay, netip.AddrPort{}
	}
	level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
	if sa.Addr.Family == unix.AF_INET6 {
		level, opt = unix.SOL_IPV6, unix.IPV6_TRANSPARENT
	}
	if v, err := unix.GetsockoptInt(fd, level, opt); err != nil || v != 0 {
		return nodelay, netip.AddrPort{}
	}
	return nodelay, local
}

// dropAcceptor stops watching a listening socket for good (on the loop);
// its listener closes it afterwards.
func (l *evloop) dropAcceptor(a *acceptor) {
	a.dropped = true
	a.disarm()
	if l.acceptors[a.fd] == a {
		delete(l.acceptors, a.fd)
	}
	l.listening.Add(-1)
}

// arm registers the socket, edge-triggered, with a new generation: an
// event of an older registration (the fd closed and reused) is dropped.
// Adding a socket that has connections queued reports it at once.
func (a *acceptor) arm() {
	l := a.loop
	l.gen++
	a.gen = l.gen
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(a.fd), Pad: int32(a.gen)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, a.fd, &ev); err != nil {
		a.gen = 0
		l.e.log.Error("event loop: cannot watch a listening socket", "loop", l.id, "frontend", a.l.fe.Load().name,
			"err", err)
	}
}

func (a *acceptor) disarm() {
	if a.gen != 0 {
		unix.EpollCtl(a.loop.epfd, unix.EPOLL_CTL_DEL, a.fd, nil)
		a.gen = 0
	}
}

// pause stops watching the socket until resume: connections wait in the
// kernel backlog meanwhile.
func (a *acceptor) pause(why pauseReason) {
	a.paused = why
	a.disarm()
}

func (a *acceptor) resume(why pauseReason) {
	if a.dropped || a.paused != why {
		return
	}
	a.paused = notPaused
	a.arm()
}

// slotFreed runs on the loop when a slot of from it waited for may be
// free. A freed slot wakes one acceptor, so the slot must not be lost: an
// acceptor that is no longer paused for slots passes the wake-up on, and
// one that resumes accepts at once (with nothing queued in its backlog no
// event would come; the accept's EAGAIN gives the slot back, and that
// release wakes the next).
func (a *acceptor) slotFreed(from *limiter) {
	if a.dropped || a.paused != pausedSlots {
		from.passOn()
		return
	}
	a.resume(pausedSlots)
	a.woken = from
	a.accept()
	a.woken = nil
}

// full pauses the acceptor on a full limiter; a wake-up from another
// limiter that it could not use goes on to that limiter's next waiter.
func (a *acceptor) full(lim *limiter) {
	if w := a.woken; w != nil && w != lim {
		w.passOn()
	}
	a.woken = nil
	a.pause(pausedSlots)
}

// acceptEvent: a listening socket of the loop is readable.
func (l *evloop) acceptEvent(fd int, gen uint32) {
	a := l.acceptors[fd]
	if a == nil || a.gen != gen || a.paused != notPaused {
		return // an older registration's event, or paused since
	}
	a.accept()
}

// accept takes up to acceptBatch connections; if more may be queued, the
// socket gets another turn after the loop's connections had theirs.
func (a *acceptor) accept() {
	l, fe := a.loop, a.l.fe.Load()
	for range acceptBatch {
		tl := fe.tenant.Load()
		if !fe.limit.tryAcquire(a.wake) {
			a.full(fe.limit)
			return
		}
		if !tl.tryAcquire(a.wake) {
			fe.limit.release()
			a.full(tl)
			return
		}
		if !l.e.global.tryAcquire(a.wake) {
			tl.release()
			fe.limit.release()
			a.full(l.e.global)
			return
		}
		fd, src, errno := l.accept4(a.fd)
		if errno != 0 {
			l.e.global.release()
			tl.release()
			fe.limit.release()
			switch errno {
			case unix.EAGAIN:
				// The backlog queued before TCP_NODELAY was set on the
				// listening socket is accepted: the rest inherit it.
				a.nodelay = a.canNodelay
				return
			case unix.EINTR, unix.ECONNABORTED: // the client gave up while queued
				continue
			}
			a.failed(errno)
			return
		}
		a.backoff = 0
		l.startSession(a, fe, tl, fd, src)
	}
	if !a.queued {
		a.queued = true
		l.acceptAgain = append(l.acceptAgain, a)
	}
}

// failed: accept errors (EMFILE, ENFILE, ENOBUFS...) pause the socket for
// a back-off that doubles (acceptBackoffMin to acceptBackoffMax), are
// counted, and logged at most once per acceptLogEvery with the number of
// those not logged.
func (a *acceptor) failed(errno syscall.Errno) {
	l := a.loop
	a.l.fe.Load().acceptErrors.Add(1)
	a.backoff = min(max(2*a.backoff, acceptBackoffMin), acceptBackoffMax)
	if now := time.Now(); now.Sub(a.lastLog) >= acceptLogEvery {
		l.e.log.Warn("accept failed; backing off", "frontend", a.l.fe.Load().name, "netns", a.h.Label(),
			"err", error(errno), "backoff", a.backoff, "not_logged_since_last", a.notLogged)
		a.lastLog, a.notLogged = now, 0
	} else {
		a.notLogged++
	}
	a.pause(pausedBackoff)
	time.AfterFunc(a.backoff, func() { l.post(func() { a.resume(pausedBackoff) }) })
}

// runAcceptAgain gives the sockets whose batch ran out another turn.
func (l *evloop) runAcceptAgain() {
	if len(l.acceptAgain) == 0 {
		return
	}
	again := l.acceptAgain
	l.acceptAgain = nil
	for _, a := range again {
		a.queued = false
		if !a.dropped && a.paused == notPaused && a.gen != 0 {
			a.accept()
		}
	}
	clear(again)
}

// startSession sets up an accepted connection on the loop: the session,
// then the loop that will own it (this one, unless another owns loopSlack
// fewer), which reads the PROXY header or starts the connect (setup).
func (l *evloop) startSession(a *acceptor, fe *frontend, tl *limiter, fd int, src netip.AddrPort) {
	dst, errno := acceptedFD(fd, &l.sa, a)
	if errno != 0 {
		unix.Close(fd)
		l.e.global.release()
		tl.release()
		fe.limit.release()
		return
	}
	h := a.h
	s := l.e.newSession(a.l, fe, h, src, dst)
	s.tenantLimit = tl
	owner := l.e.loopFor(l)
	c := &pconn{s: s, l: owner, fd: [2]int{fd, -1}}
	c.hidx = -1
	s.mu.Lock()
	s.pc = c // an abort from now on is a command to owner, after setup
	s.mu.Unlock()
	owner.conns.Add(1)
	l.e.watchNS(h) // Engine.nsGone aborts it with its listener's namespace
	if h.Context().Err() != nil {
		s.abort("client_netns_gone")
	}
	if owner == l {
		owner.setup(c)
		return
	}
	if !owner.post(func() { owner.setup(c) }) { // the loops stopped: the engine is shutting down
		owner.conns.Add(-1)
		c.closed = true
		unix.Close(fd)
		s.setTerm("shutdown")
		s.end(nil)
	}
}

// loopFor chooses the loop that owns a connection accepted by owner.
func (e *Engine) loopFor(owner *evloop) *evloop {
	best := e.pickLoop()
	if best == owner || owner.conns.Load() <= best.conns.Load()+loopSlack {
		return owner
	}
	return best
}

// setup registers a new connection's client socket in its loop, then reads
// its PROXY header (accept-proxy binds, after the trusted-proxies check)
// or starts its first connect attempt.
func (l *evloop) setup(c *pconn) {
	if l.now == 0 {
		l.now = monoNow()
	}
	c.active = l.now
	if c.closed {
		return
	}
	s := c.s
	s.mu.Lock()
	aborted := s.aborted
	s.mu.Unlock()
	if aborted {
		c.finish()
		return
	}
	if s.acceptProxy {
		if err := s.checkProxySource(); err != nil {
			c.s.endErr = err
			c.finish()
			return
		}
		c.header = s.headerParser()
		l.adoptHeader(c)
		return
	}
	if !l.watch(c, c.fd[0]) {
		c.fail("closed")
		return
	}
	c.connect()
}

// connect chooses the server (prepareConnect) and starts the first
// attempt: right after accept on a plain bind, after the PROXY header on an
// accept-proxy one.
func (c *pconn) connect() {
	if err := c.s.prepareConnect(); err != nil {
		c.s.endErr = err
		c.finish()
		return
	}
	c.connecting = true
	c.attempt()
}

// attempt starts the next connect attempt on the loop when the server's
// socket is made in the daemon's own namespace, else has a connector make
// it (a loop never enters another namespace).
func (c *pconn) attempt() {
	fd, err := c.s.nextAttempt(true)
	switch {
	case err == errOffLoop:
		c.l.e.connect(c)
	case err != nil:
		c.s.endErr = err
		c.finish()
	default:
		c.adoptServer(fd)
	}
}

// accept4 accepts one connection as a raw non-blocking fd and returns the
// client's address; sa is the loop's buffer, so nothing is allocated.
func (l *evloop) accept4(lfd int) (int, netip.AddrPort, syscall.Errno) {
	sa := &l.sa
	n := uint32(unsafe.Sizeof(*sa))
	fd, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(sa)),
		uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, netip.AddrPort{}, errno
	}
	return int(fd), rawAddrPort(sa), 0
}

// acceptedFD sets up an accepted socket as Go's accept would (no delay)
// and returns its local address: the connection's destination. What the
// socket inherited from its listening socket (a's) costs no system call.
func acceptedFD(fd int, sa *unix.RawSockaddrAny, a *acceptor) (netip.AddrPort, syscall.Errno) {
	if !a.nodelay {
		one := int32(1)
		if _, _, errno := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY,
			uintptr(unsafe.Pointer(&one)), 4, 0); errno != 0 {
			return netip.AddrPort{}, errno
		}
	}
	if a.local.IsValid() {
		return a.local, 0
	}
	n := uint32(unsafe.Sizeof(*sa))
	if _, _, errno := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(sa)),
		uintptr(unsafe.Pointer(&n))); errno != 0 {
		return netip.AddrPort{}, errno
	}
	return rawAddrPort(sa), 0
}

// rawAddrPort reads an IPv4 or IPv6 socket address, IPv4-mapped addresses
// as plain IPv4 (as addrPort does for *net.TCPAddr).
func rawAddrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), ntohs(a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), ntohs(a.Port))
	}
	return netip.AddrPort{}
}

// ntohs: a sockaddr's port is in network byte order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}
