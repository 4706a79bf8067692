package proxy

import (
	"syscall"
	"unsafe"

	"github.com/nsproxy/nsproxy/sidecar/proxyproto"
	"golang.org/x/sys/unix"
)

// pconn is an established connection owned by a loop: the client's and the
// server's socket (raw, non-blocking fds) and one flow per direction.
// Only its loop touches it.
type pconn struct {
	s   *session
	l   *evloop
	fd  [2]int  // the client's socket, then the server's
	dir [2]flow // client → server (bytes in), then server → client (bytes out)

	activity
	header     *proxyproto.Parser // the PROXY header is being read (accept-proxy binds; fd[1] -1)
	connecting bool               // the server's connect is in progress (fd[1] -1 between attempts)
	early      uint32             // the client socket's epoll events while connecting
	queued     bool               // in the loop's again list
	closed     bool
}

// flow is one direction: what has been read from its source and not yet
// written to its destination, and whether the source has finished.
type flow struct {
	pend   []byte // bytes a short write left over (a buffer of the loop's)
	pipe   *pipe  // leased while bulk data moves by splice
	inPipe int    // bytes in pipe
	bulk   bool   // splice from the next read on
	eof    bool   // the source sent its FIN
	done   bool   // the FIN was passed on
	more   bool   // its budget ran out with work left
}

// holding reports whether the flow waits for its destination to drain.
func (f *flow) holding() bool { return f.inPipe > 0 || len(f.pend) > 0 || (f.eof && !f.done) }

// bulkMin: a splice that moves less turns the direction back to the
// buffer. Lower than the buffer, so that a stream whose bytes arrive in
// pieces keeps splicing; higher than a typical request or reply.
const bulkMin = 4 << 10

// flowBudget bounds the bytes one direction moves per loop turn, so that a
// bulk transfer does not starve the loop's other connections.
const flowBudget = 1 << 20

// pump moves bytes of direction side (0: from the client) until its source
// or its destination would block, the budget is used, or the direction or
// the connection ends. Reads go through the loop's buffer; a read that
// fills it means bulk, and the direction splices from then on, through a
// pipe leased while bytes are in flight (given back whenever the source
// runs dry), until a splice moves less than bulkMin. With edge-triggered
// readiness every call goes on until EAGAIN (or requeues itself): a missed
// edge would stall a transfer, except after a short read when the loop's
// drained says the event that started this pump carried no FIN.
func (c *pconn) pump(side int) {
	f := &c.dir[side]
	if f.done || c.closed || c.connecting {
		return
	}
	l := c.l
	src, dst := c.fd[side], c.fd[1-side]
	moved := 0
	for moved < flowBudget {
		if f.inPipe > 0 {
			n, errno := rawSplice(f.pipe.r, dst, f.inPipe)
			switch {
			case errno == unix.EAGAIN:
				return // EPOLLOUT on dst resumes
			case errno == unix.EINTR:
				continue
			case errno != 0:
				c.fail(c.classify(errno, side, true))
				return
			}
			f.inPipe -= n
			c.count(side, n)
			moved += n
			if f.inPipe == 0 && !f.bulk {
				c.releasePipe(f)
			}
			continue
		}
		if len(f.pend) > 0 {
			n, errno := rawSend(dst, f.pend)
			switch {
			case errno == unix.EAGAIN:
				return
			case errno == unix.EINTR:
				continue
			case errno != 0:
				c.fail(c.classify(errno, side, true))
				return
			}
			c.count(side, n)
			moved += n
			if n < len(f.pend) {
				f.pend = f.pend[:copy(f.pend, f.pend[n:])]
				continue
			}
			l.putSpare(f.pend)
			f.pend = nil
			continue
		}
		if f.eof {
			f.done = true
			c.releasePipe(f)
			if c.dir[1-side].done {
				// Both directions are over: close(2) in finish sends this
				// FIN (nothing is left unread on either socket, so it is
				// no reset), one shutdown(2) fewer per connection.
				c.finFlag(side)
				c.finish()
				return
			}
			unix.Shutdown(dst, unix.SHUT_WR)
			c.finSeen(side)
			return
		}
		if f.bulk && f.pipe == nil {
			f.pipe = l.pipes.get()
			if f.pipe == nil {
				f.bulk = false // no pipe to be had: copy
			}
		}
		if f.pipe != nil {
			n, errno := rawSplice(src, f.pipe.w, f.pipe.size)
			switch {
			case errno == unix.EAGAIN:
				c.releasePipe(f) // empty: back to the pool until the next burst
				return
			case errno == unix.EINTR:
				continue
			case errno != 0:
				c.fail(c.classify(errno, side, false))
				return
			case n == 0:
				f.eof = true
			case n < bulkMin:
				f.bulk = false // a short message: the buffer is cheaper from the next one on
			}
			f.inPipe = n
			continue
		}
		n, errno := rawRead(src, l.buf)
		switch {
		case errno == unix.EAGAIN:
			return
		case errno == unix.EINTR:
			continue
		case errno != 0:
			c.fail(c.classify(errno, side, false))
			return
		case n == 0:
			f.eof = true
			continue
		}
		w, errno := rawSend(dst, l.buf[:n])
		switch {
		case errno == unix.EAGAIN || errno == unix.EINTR:
			w = 0
		case errno != 0:
			c.fail(c.classify(errno, side, true))
			return
		}
		if w > 0 {
			c.count(side, w)
			moved += w
		}
		if w < n {
			f.pend = append(l.getSpare(), l.buf[w:n]...)
		}
		if n == len(l.buf) {
			f.bulk = true // a full buffer: splice from now on
		} else if l.drained && w == n {
			// A short read found the socket's queue empty: what arrives
			// from now on raises a new edge. Only when the event said
			// no FIN had come (a FIN waiting behind the bytes raises
			// none): one read (its EAGAIN) fewer per message.
			return
		}
	}
	l.requeue(c, side)
}

func (c *pconn) releasePipe(f *flow) {
	if f.pipe == nil {
		return
	}
	if f.inPipe > 0 {
		f.pipe.close() // bytes that will never be written: not reusable
		c.l.pipes.budget.give()
	} else {
		c.l.pipes.put(f.pipe)
	}
	f.pipe, f.inPipe = nil, 0
}

// count feeds the session's byte counters and those it reports to: the
// frontend's, the server's and the namespaces'.
func (c *pconn) count(side, n int) {
	s := c.s
	c.active = c.l.now
	if side == 0 {
		s.bytesIn.Add(uint64(n))
		for _, ct := range s.counters {
			if ct != nil {
				ct.BytesIn.Add(uint64(n))
			}
		}
		return
	}
	s.bytesOut.Add(uint64(n))
	for _, ct := range s.counters {
		if ct != nil {
			ct.BytesOut.Add(uint64(n))
		}
	}
}

// fail ends the connection with reason, unless a reason came first.
func (c *pconn) fail(reason string) {
	c.s.setTerm(reason)
	c.finish()
}

// finish closes both sockets, gives the pipes and buffers back and ends the
// session: its log line, counters and slots.
func (c *pconn) finish() {
	if c.closed {
		return
	}
	c.closed = true
	l := c.l
	for _, fd := range c.fd {
		if fd < 0 {
			continue // between two connect attempts
		}
		if fd < len(l.fds) && l.fds[fd].c == c {
			l.fds[fd] = fdSlot{}
		}
		unix.Close(fd) // also leaves the epoll set
	}
	if c.connecting && c.fd[1] >= 0 {
		c.s.at.srv.active.Add(-1) // the attempt in progress ends with the session
	}
	for i := range c.dir {
		f := &c.dir[i]
		c.releasePipe(f)
		if f.pend != nil {
			l.putSpare(f.pend)
			f.pend = nil
		}
	}
	l.timers.remove(c)
	l.conns.Add(-1)
	c.s.end(c.s.endErr)
}

// classify names the side that ended a direction with errno. A write's
// EPIPE is the destination's side; a reset is blamed on the socket the
// kernel has closed.
func (c *pconn) classify(errno syscall.Errno, side int, writing bool) string {
	srcSide, dstSide := "client", "server"
	if side == 1 {
		srcSide, dstSide = "server", "client"
	}
	switch {
	case errno == unix.EPIPE:
		return dstSide + "_gone"
	case errno == unix.ECONNRESET:
		if tcpClosedFD(c.fd[side]) || !tcpClosedFD(c.fd[1-side]) {
			return srcSide + "_reset"
		}
		return dstSide + "_reset"
	case writing:
		return dstSide + "_error"
	}
	return srcSide + "_error"
}

// tcpClosedFD reports whether the kernel has moved a socket to TCP_CLOSE
// (as a reset does).
func tcpClosedFD(fd int) bool {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	return err != nil || ti.State == 7 // TCP_CLOSE
}

// The loop's non-blocking calls are raw system calls: they never block, so
// the scheduler need not hand the thread's P away and back around each.

func rawRead(fd int, b []byte) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(r), e
}

// rawSend writes with MSG_NOSIGNAL: a peer that is gone is an EPIPE, not
// a signal.
func rawSend(fd int, b []byte) (int, syscall.Errno) { return rawSendFlags(fd, b, 0) }

// rawSendFlags is rawSend with more flags (MSG_MORE).
func rawSendFlags(fd int, b []byte, flags uintptr) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT|flags, 0, 0)
	return int(r), e
}

func rawSplice(in, out, n int) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
		unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	return int(r), e
}
