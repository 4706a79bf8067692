package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestConnectTimeoutTriesNext: a connect that never completes ends at the
// backend's connect timeout, in the loop's timer heap, and the connection
// goes on to the next server (a retry started off the loop).
func TestConnectTimeoutTriesNext(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serve(b, "127.0.0.1:7812", "alive")
	// SYNs to 127.0.0.9:80 vanish: connects there hang.
	testns.Exec(t, b, "iptables", "-A", "OUTPUT", "-d", "127.0.0.9", "-p", "tcp", "--dport", "80", "-j", "DROP")
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	v.e.Apply(spec1(bind, BackendSpec{Balance: First, ConnectTimeout: 300 * time.Millisecond,
		Servers: []ServerSpec{srv("hole", "127.0.0.9:80", b), srv("alive", "127.0.0.1:7812", b)}}))
	start := time.Now()
	expectTag(v, "", bind.Addr.String(), "alive")
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("served after %v: the black hole was not tried first", el)
	}
	v.waitLog("i/o timeout (timeout connect 300ms)")
	snap := v.e.Snapshot()
	for _, bs := range snap.Backends {
		for _, s := range bs.Servers {
			if s.Name == "hole" && (s.ConnectErrors == 0 || s.Active != 0) {
				t.Fatalf("black hole: %d connect errors, %d active; want >0 and 0", s.ConnectErrors, s.Active)
			}
		}
	}
	eventually(t, "no connection left", func() error {
		if n := v.e.Sessions(); n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
}

// TestAbortedWhileQueuedConnectsNothing: a connection aborted while it
// waits for a connector (its server's socket is made in another
// namespace) makes no connect: the server never sees it, and the server's
// active count goes back to zero.
func TestAbortedWhileQueuedConnectsNothing(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	var served atomic.Int32
	v.serveFunc(b, "127.0.0.1:7813", func(c net.Conn) { served.Add(1) })
	queued := make(chan *pconn, 1)
	release := make(chan struct{})
	connectorTestHook = func(c *pconn) {
		queued <- c
		<-release
	}
	t.Cleanup(func() { connectorTestHook = nil })
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s1", "127.0.0.1:7813", b)}})); err != nil {
		t.Fatal(err)
	}
	var cl *net.TCPConn
	eventually(t, "listening", func() error {
		var err error
		cl, err = v.dial("", bind.Addr.String())
		return err
	})
	defer cl.Close()
	var c *pconn
	select {
	case c = <-queued:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the attempt did not go to a connector")
	}
	c.s.abort("killed")
	close(release)
	eventually(t, "session ended", func() error {
		if n := v.e.Sessions(); n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // a connect made anyway would be accepted by now
	if n := served.Load(); n != 0 {
		t.Fatalf("the server accepted %d connections from an aborted session", n)
	}
	for _, bs := range v.e.Snapshot().Backends {
		for _, s := range bs.Servers {
			if s.Active != 0 {
				t.Fatalf("server %s: %d active, want 0", s.Name, s.Active)
			}
		}
	}
}
