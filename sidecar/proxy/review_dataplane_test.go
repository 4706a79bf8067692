package proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// Review of the data plane (rev-dataplane): each test below fails on the
// commit it was written against.

// rvdName is a namespace name of this review (prefix rvd), deleted by
// testns.Add's cleanup.
func rvdName(tag string) string { return fmt.Sprintf("rvd%d%s", os.Getpid()%10000, tag) }

// rvdSetup makes namespaces A (listener) and B (server), a server in B
// run by handle, and a frontend on bind in A (AcceptProxy as asked). It
// returns the env, A's name and the bind's address.
func rvdSetup(t *testing.T, port uint16, acceptProxy bool, be BackendSpec, handle func(net.Conn)) (*env, string, string) {
	t.Helper()
	return rvdSetupFE(t, port, acceptProxy, be, handle, nil)
}

// rvdSetupFE is rvdSetup with a function that edits the frontend.
func rvdSetupFE(t *testing.T, port uint16, acceptProxy bool, be BackendSpec, handle func(net.Conn), fe func(*FrontendSpec)) (*env, string, string) {
	t.Helper()
	a, b := testns.Add(t, rvdName(fmt.Sprintf("a%d", port))), testns.Add(t, rvdName(fmt.Sprintf("b%d", port)))
	v := newEnv(t, a, b)
	saddr := fmt.Sprintf("127.0.0.1:%d", port+1)
	v.serveFunc(b, saddr, handle)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Namespace: a, AcceptProxy: acceptProxy}
	be.Servers = append(be.Servers, srv("s", saddr, b))
	sp := spec1(bind, be)
	if fe != nil {
		fe(&sp.Frontends[0])
	}
	if err := v.e.Apply(sp); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listener", func() error {
		if ls := v.e.Listeners(); len(ls) != 1 || !ls[0].Listening {
			return fmt.Errorf("listener not up: %+v", ls)
		}
		return nil
	})
	return v, a, bind.Addr.String()
}

// waitSessions waits up to d for the engine's sessions to reach want.
func waitSessions(v *env, want int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		n := v.e.Sessions()
		if n == want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReviewDPClientResetAfterHalfClose: a client sends a request,
// half-closes (shutdown SHUT_WR) and then resets its connection while the
// server is still working on the reply. The proxy must notice the reset
// and end the session; with no timeouts configured it holds the session
// (a maxconn slot, "current" at 1, the server's connection) until the
// server writes: pump returns at once for a direction that is done, so
// the client socket's EPOLLERR/EPOLLHUP is never read.
func TestReviewDPClientResetAfterHalfClose(t *testing.T) {
	gotEOF := make(chan net.Conn, 1)
	release := make(chan struct{})
	v, a, addr := rvdSetup(t, 22000, false, BackendSpec{}, func(c net.Conn) {
		io.Copy(io.Discard, c) // the request, up to the client's FIN
		gotEOF <- c
		select { // "working on the reply"
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	t.Cleanup(func() { close(release) }) // before the server's cleanup waits for it
	c, err := v.dial(a, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("request"))
	c.CloseWrite()
	select {
	case <-gotEOF:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never saw the client's FIN")
	}
	c.SetLinger(0)
	c.Close() // RST
	if n := waitSessions(v, 0, 3*time.Second); n != 0 {
		t.Fatalf("3s after the client reset its half-closed connection the proxy still holds %d session(s)", n)
	}
}

// TestReviewDPResetAfterHalfCloseHoldsMaxconnSlot: the same with
// maxconn 1: the dead connection keeps the only slot, and the next client
// waits in the backlog for as long as the server stays silent.
func TestReviewDPResetAfterHalfCloseHoldsMaxconnSlot(t *testing.T) {
	release := make(chan struct{})
	v, a, addr := rvdSetupFE(t, 22060, false, BackendSpec{}, func(c net.Conn) {
		io.WriteString(c, "hi\n")
		io.Copy(io.Discard, c)
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}, func(f *FrontendSpec) { f.MaxConn = 1 })
	t.Cleanup(func() { close(release) })
	c, err := v.dial(a, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	greet := make([]byte, 3)
	if _, err := io.ReadFull(c, greet); err != nil {
		t.Fatal(err)
	}
	halfCloseThenReset(c)
	c2, err := v.dial(a, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(c2, greet); err != nil {
		t.Fatalf("maxconn 1: the next client is not served 3s after the first one reset its half-closed connection: %v", err)
	}
}

// TestResetAfterServerHalfClose is the mirror: the server sends its reply
// and FIN, then resets, while the client, which got the reply and the
// FIN, stays idle with its own direction open. The server socket's reset
// is the only event: the session must end on it (the client then sees
// its connection end), not wait for the client.
func TestResetAfterServerHalfClose(t *testing.T) {
	v, a, addr := rvdSetup(t, 22020, false, BackendSpec{}, func(c net.Conn) {
		io.WriteString(c, "reply")
		halfCloseThenReset(c.(*net.TCPConn))
	})
	c, err := v.dial(a, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); err != nil || string(b) != "reply" {
		t.Fatalf("client read %q, %v; want the reply and the server's FIN", b, err)
	}
	if n := waitSessions(v, 0, 3*time.Second); n != 0 {
		t.Fatalf("3s after the server reset its half-closed connection the proxy still holds %d session(s)", n)
	}
}

// halfCloseThenReset sends c's FIN, lets it reach the peer, then resets c.
func halfCloseThenReset(c *net.TCPConn) {
	c.CloseWrite()
	time.Sleep(200 * time.Millisecond)
	c.SetLinger(0)
	c.Close()
}
