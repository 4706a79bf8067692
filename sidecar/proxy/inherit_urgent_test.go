package proxy

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/testwait"
)

// Tests of what the event loops' system-call savings must not lose: bytes
// behind TCP's urgent mark, TCP_NODELAY on connections queued before the
// listening socket got it. They run in the test's own namespace on ports
// 22000-22199.

// recordingServer listens at addr in the test's own namespace and returns
// what the connections to it have sent so far.
func recordingServer(v *env, addr string) (got func() []byte) {
	var mu sync.Mutex
	var buf bytes.Buffer
	v.serveFunc("", addr, func(c net.Conn) {
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	})
	return func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(buf.Bytes())
	}
}

// serverGot waits up to d for the server to have got want.
func serverGot(t *testing.T, got func() []byte, want []byte, d time.Duration, why string) {
	t.Helper()
	testwait.For(t, d, "the server's bytes", func() error {
		if b := got(); !bytes.Equal(b, want) {
			return fmt.Errorf("the server got %q, want %q%s", b, want, why)
		}
		return nil
	})
}

// TestUrgentDataDoesNotStallTheRest: a read stops short at TCP's urgent
// mark although more bytes wait behind it. The loop takes a short read for
// "the socket's queue is empty" and waits for the next edge (pump's
// drained), which never comes when those bytes arrived in the same segment
// as the urgent byte: they stay in the proxy until the client sends
// something else. Before a8f4d98 every pump read on to EAGAIN and the
// second read (past the mark) returned them.
func TestUrgentDataDoesNotStallTheRest(t *testing.T) {
	v := newEnv(t)
	got := recordingServer(v, "127.0.0.1:22001")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22000")}
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:22001", "")}})); err != nil {
		t.Fatal(err)
	}
	var c *net.TCPConn
	eventually(t, "listening", func() error {
		var err error
		c, err = v.dial("", bind.Addr.String())
		return err
	})
	defer c.Close()
	// The connection is established end to end first.
	if _, err := c.Write([]byte("start\n")); err != nil {
		t.Fatal(err)
	}
	serverGot(t, got, []byte("start\n"), 5*time.Second, "")
	// "hello" with its last byte urgent, then "world\n", both in the
	// proxy's socket before its loop reads: the loops are held on a
	// command meanwhile.
	hold := make(chan struct{})
	var held sync.WaitGroup
	for _, l := range v.e.loops {
		held.Add(1)
		l.post(func() { held.Done(); <-hold })
	}
	held.Wait()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	raw.Write(func(fd uintptr) bool {
		if serr = unix.Sendto(int(fd), []byte("hello"), unix.MSG_OOB, nil); serr != nil {
			return true
		}
		serr = unix.Sendto(int(fd), []byte("world\n"), 0, nil)
		return true
	})
	time.Sleep(50 * time.Millisecond) // loopback: both segments are queued by now
	close(hold)
	if serr != nil {
		t.Fatal(serr)
	}
	// The urgent byte ("o", not inline) is not part of the stream: the
	// server must see "hell" and then "world\n".
	serverGot(t, got, []byte("start\nhellworld\n"), 3*time.Second, ": the bytes behind the urgent mark stalled in the proxy")
}

// clientSockets returns the client-side fds of the engine's sessions.
func clientSockets(e *Engine) []int {
	e.sessMu.Lock()
	defer e.sessMu.Unlock()
	var fds []int
	for s := range e.sessions {
		s.mu.Lock()
		if s.pc != nil {
			fds = append(fds, s.pc.fd[0])
		}
		s.mu.Unlock()
	}
	return fds
}

// TestQueuedConnectionGetsNoDelay: TCP_NODELAY is now set once on the
// listening socket when a loop starts accepting on it (inherited), and
// acceptedFD skips it for every accepted socket. But a socket copies its
// listening socket's options when the handshake completes, not when
// accept(2) returns: connections that were already waiting in the
// backlog (an inherited socket from a hand-over by a daemon that never
// set the option on it, an adopted reservation, or clients that connected
// between listen(2) and the loop's registration) are accepted without
// TCP_NODELAY, and their replies to the client go through Nagle.
func TestQueuedConnectionGetsNoDelay(t *testing.T) {
	v := newEnv(t)
	recordingServer(v, "127.0.0.1:22011")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22010")}
	// A listening socket as a predecessor hands it over: no TCP_NODELAY
	// on it (Go sets it on accepted sockets only), and a client whose
	// handshake is done waits in its backlog.
	ln, err := net.Listen("tcp", bind.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", bind.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v.e.Inherit([]InheritedListener{{Bind: bind, Listener: ln.(*net.TCPListener)}})
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:22011", "")}})); err != nil {
		t.Fatal(err)
	}
	var fds []int
	testwait.For(t, 5*time.Second, "the queued client's session", func() error {
		if fds = clientSockets(v.e); len(fds) != 1 {
			return fmt.Errorf("%d sessions, want the queued client's", len(fds))
		}
		return nil
	})
	nd, err := unix.GetsockoptInt(fds[0], unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil {
		t.Fatal(err)
	}
	if nd == 0 {
		t.Fatal("the connection queued before the loop set TCP_NODELAY on the listening socket was accepted without it")
	}
	// A connection made afterwards inherits it (the case the change
	// optimised).
	c2, err := net.Dial("tcp", bind.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
}
