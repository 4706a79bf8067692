package proxy

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// The loop's side of a connect: the loop itself (a server in the daemon's
// own namespace) or a connector (another namespace, hdrloop.go) creates the
// server's socket and starts the connect; the loop learns the outcome from
// the socket's writability, bounds it with the connect timeout in its
// timer heap, writes the PROXY header the server wants, and starts
// pumping. A failed attempt is retried on another server the same way
// (pconn.attempt).

// armConnect sets the deadline of the attempt in progress.
func (c *pconn) armConnect() {
	c.deadline = c.l.now.add(c.s.connectTimeout())
	c.l.timers.set(c)
}

// connectDone runs when the connecting socket reports writability or an
// error (events). Writable without an error or hang-up means connected (a
// socket still in SYN_SENT is not writable): only a failure costs the
// getsockopt(SO_ERROR) that names it.
func (c *pconn) connectDone(events uint32) {
	if events&(unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		c.established(events)
		return
	}
	soErr, err := unix.GetsockoptInt(c.fd[1], unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		c.connectFailed(fmt.Errorf("dial tcp %s: %w", c.s.at.dst, err))
	case soErr == 0:
		c.established(events)
	case syscall.Errno(soErr) == unix.EINPROGRESS || syscall.Errno(soErr) == unix.EALREADY:
		// not yet
	default:
		c.connectFailed(fmt.Errorf("dial tcp %s: connect: %w", c.s.at.dst, syscall.Errno(soErr)))
	}
}

// established: the server accepted. Send the PROXY header if the server
// wants one, then move what both sides have sent so far.
func (c *pconn) established(events uint32) {
	s := c.s
	if v := s.at.srv.spec.SendProxy; v > 0 {
		hdr := s.appendProxyHeader(c.l.buf[:0], v, s.at.fromClient)
		// A fresh socket's send buffer takes a header whole. When the
		// client's bytes are known to wait (pump(0) sends them next), the
		// header waits for them (MSG_MORE): one segment, and the server
		// reads header and request at once.
		var more uintptr
		if len(c.dir[0].pend) > 0 || (!s.acceptProxy && c.early&(unix.EPOLLIN|evEnd) == unix.EPOLLIN) {
			more = unix.MSG_MORE
		}
		n, errno := rawSendFlags(c.fd[1], hdr, more)
		if errno != 0 || n != len(hdr) {
			err := error(errno)
			if errno == 0 {
				err = fmt.Errorf("short write (%d of %d bytes)", n, len(hdr))
			}
			c.connectFailed(fmt.Errorf("send PROXY v%d header: %w", v, err))
			return
		}
	}
	c.connecting = false
	s.connected()
	l := c.l
	c.active = l.now
	c.armIdle(l.now)
	// The client's bytes: their events came while connecting (early).
	// After a PROXY header, bytes may wait in dir[0].pend, and the header
	// reader stopped without an EAGAIN: read until one.
	switch {
	case s.acceptProxy:
		c.pump(0)
	case c.early&(unix.EPOLLIN|evEnd) != 0:
		l.drained = c.early&evEnd == 0
		c.pump(0)
		l.drained = false
	}
	// The server's: only if the event that completed the connect said
	// so; bytes arriving later raise their own edge.
	if !c.closed && events&(unix.EPOLLIN|evEnd) != 0 {
		c.pump(1)
	}
}

// connectFailed closes the attempt's socket, counts the failure, and starts
// the next attempt (pconn.attempt).
func (c *pconn) connectFailed(err error) {
	l, s := c.l, c.s
	fd := c.fd[1]
	if fd < len(l.fds) && l.fds[fd].c == c {
		l.fds[fd] = fdSlot{}
	}
	unix.Close(fd)
	c.fd[1] = -1
	l.timers.remove(c)
	s.attemptFailed(s.at, err)
	c.attempt()
}

// adoptServer takes the socket of the next attempt.
func (c *pconn) adoptServer(fd int) {
	if c.closed {
		c.s.dropAttempt(fd)
		return
	}
	c.fd[1] = fd
	if !c.l.watch(c, fd) {
		c.fail("closed")
		return
	}
	c.armConnect()
}
