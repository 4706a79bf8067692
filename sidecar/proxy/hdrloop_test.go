package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestProxyHeaderInPiecesInTheLoop: accept-proxy connections whose header
// is still arriving cost no goroutine (the loops read it), and a header
// that comes in pieces, its last piece carrying the first payload bytes,
// is read whole without losing a byte of the payload.
func TestProxyHeaderInPiecesInTheLoop(t *testing.T) {
	const n = 200
	a, b := testns.New(t, "A"), testns.New(t, "B")
	v := newEnv(t, a, b)
	v.serve(b, "127.0.0.1:8080", "tagged")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:7410"), Namespace: a, AcceptProxy: true}
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:8080", b)}})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listener", func() error {
		if ls := v.e.Listeners(); len(ls) != 1 || !ls[0].Listening {
			return fmt.Errorf("listener not up: %+v", ls)
		}
		return nil
	})
	sessions := func() int {
		v.e.sessMu.Lock()
		defer v.e.sessMu.Unlock()
		return len(v.e.sessions)
	}
	hdr := v2("192.0.2.7:4000", "127.0.0.1:8080", "")
	before := runtime.NumGoroutine()
	clients := make([]*net.TCPConn, 0, n)
	t.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
	})
	for range n {
		c, err := v.dial(a, bind.Addr.String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		if _, err := c.Write(hdr[:7]); err != nil { // inside the signature
			t.Fatal(err)
		}
	}
	eventually(t, "sessions", func() error {
		if got := sessions(); got != n {
			return fmt.Errorf("%d sessions, want %d", got, n)
		}
		return nil
	})
	if during := runtime.NumGoroutine(); during > before+n/10 {
		t.Fatalf("%d goroutines with %d headers pending, %d before: a goroutine per connection", during, n, before)
	}
	for i, c := range clients {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(hdr[7:20]); err != nil { // cuts the fixed part and the addresses
			t.Fatal(err)
		}
		if _, err := c.Write(append(hdr[20:len(hdr):len(hdr)], "ping\n"...)); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		tag, err := r.ReadString('\n')
		if err != nil || tag != "tagged\n" {
			t.Fatalf("client %d: tag %q (%v)", i, tag, err)
		}
		echo, err := r.ReadString('\n')
		if err != nil || echo != "ping\n" {
			t.Fatalf("client %d: echo %q (%v): the payload after the header was lost", i, echo, err)
		}
		c.Close()
	}
	clients = nil
	eventually(t, "sessions end", func() error {
		if got := sessions(); got != 0 {
			return fmt.Errorf("%d sessions left", got)
		}
		return nil
	})
	v.waitLog("client=192.0.2.7:4000")
	if r := v.e.Refusals("f"); len(r) != 0 {
		t.Fatalf("refusals %v", r)
	}
}
