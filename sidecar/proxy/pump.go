package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyChunk bounds one splice call, so that byte counters move during
// long transfers.
const copyChunk = 1 << 20

// burstMax: less than this queued is spliced as one bounded call.
const burstMax = 64 << 10

// pump moves bytes both ways until both sides finished, with half-close:
// a FIN from one side is passed on and the other direction goes on.
//
// Inactivity is watched by one timer per session, not by socket deadlines:
// a write deadline that fires in the middle of a splice would throw away
// the bytes already in the kernel pipe. The watchdog asks the kernel
// (TCP_INFO) whether either socket received or had acknowledged a byte
// since its last look, so a slow but moving transfer in one direction
// keeps the whole connection alive, as HAProxy's default does.
func (s *session) pump() {
	w := s.startWatchdog()
	s.wd = w
	defer w.stop()
	done := make(chan struct{})
	go func() {
		s.copy(s.server, s.client, true)
		close(done)
	}()
	s.copy(s.client, s.server, false)
	<-done
}

// copy moves src to dst. dst.ReadFrom with a *net.TCPConn inside an
// io.LimitedReader is spliced by the runtime; the loop only bounds each
// call so that counters are fed while data flows.
func (s *session) copy(dst, src *net.TCPConn, fromClient bool) {
	count := &s.bytesOut
	if fromClient {
		count = &s.bytesIn
	}
	raw, err := src.SyscallConn()
	if err != nil {
		s.abort("closed")
		return
	}
	// Wait for data before calling ReadFrom: the runtime takes a pipe pair
	// from its pool for every splice call and holds it while the call
	// waits, so an idle connection would pin 4 fds. A short burst (a
	// request, a reply) is spliced with a limit of what is queued, so the
	// call returns and gives the pipe back; bulk data keeps 1 MiB calls.
	queued := 0
	ready := func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false
		case err != nil || n == 0:
			queued = 0 // EOF or an error: ReadFrom reports it
			return true
		}
		queued, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			queued = 0
		}
		return true
	}
	lr := &io.LimitedReader{R: src}
	for {
		if err := raw.Read(ready); err != nil {
			s.abort("closed")
			return
		}
		lr.N = copyChunk
		if queued > 0 && queued < burstMax {
			lr.N = int64(queued)
		}
		n, err := dst.ReadFrom(lr)
		if n > 0 {
			count.Add(uint64(n))
			for _, c := range s.counters {
				if fromClient {
					c.BytesIn.Add(uint64(n))
				} else {
					c.BytesOut.Add(uint64(n))
				}
			}
		}
		if err == nil && lr.N > 0 {
			// EOF from src: pass the FIN on, keep the other direction.
			if fromClient {
				s.clientFin.Store(true)
			} else {
				s.serverFin.Store(true)
			}
			s.wd.finSeen()
			dst.CloseWrite()
			return
		}
		if err == nil {
			continue
		}
		s.abort(classify(err, src, dst, fromClient))
		return
	}
}

// classify names the side that ended a direction with err. EPIPE comes
// from writing, so it is dst's side; a reset is blamed on the socket the
// kernel has closed.
func classify(err error, src, dst *net.TCPConn, fromClient bool) string {
	srcSide, dstSide := "server", "client"
	if fromClient {
		srcSide, dstSide = "client", "server"
	}
	switch {
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.Is(err, syscall.EPIPE):
		return dstSide + "_gone"
	case errors.Is(err, syscall.ECONNRESET):
		if tcpClosed(src) || !tcpClosed(dst) {
			return srcSide + "_reset"
		}
		return dstSide + "_reset"
	}
	return srcSide + "_error"
}

// tcpClosed reports whether the kernel has moved c to TCP_CLOSE (as a
// reset does).
func tcpClosed(c *net.TCPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	raw.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			closed = ti.State == 7 // TCP_CLOSE
		}
	})
	return closed
}
