package proxy

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// inherit turns handed listeners into what a successor receives.
func inherit(t *testing.T, hs []HandedListener) []InheritedListener {
	t.Helper()
	var out []InheritedListener
	for _, h := range hs {
		ln, err := net.FileListener(h.File)
		h.File.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, InheritedListener{Bind: h.Bind, Listener: ln.(*net.TCPListener)})
	}
	return out
}

// TestHandOverListener: a listener inside a namespace passes from engine
// A to engine B without being bound again; A's established connection
// survives A's StopAccepting and new connections reach B.
func TestHandOverListener(t *testing.T) {
	l, s := testns.New(t, "L"), testns.New(t, "S")
	a := newEnv(t, l, s)
	a.serve(s, "127.0.0.1:7301", "old")
	a.serve(s, "127.0.0.1:7302", "new")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:9300"), Namespace: l}
	if err := a.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7301", s)}})); err != nil {
		t.Fatal(err)
	}
	echo, closeC := openSession(t, a, l, bind.Addr.String(), "old")
	defer closeC()

	// B counts its goroutines from here on (its cleanup, which runs
	// first, checks them while A's loops and connectors still run).
	b := newEnv(t, l, s)
	handed, err := a.e.HandOver()
	if err != nil {
		t.Fatal(err)
	}
	if len(handed) != 1 || handed[0].Bind != bind || handed[0].Netns != a.handle(l).Identity() {
		t.Fatalf("handed %+v", handed)
	}
	b.e.Inherit(inherit(t, handed))
	if err := b.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7302", s)}})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if left := b.e.WaitInherited(ctx); left != 0 {
		t.Fatalf("%d inherited listeners not served", left)
	}
	b.waitLog("listener taken over")
	if strings.Contains(b.log.String(), "cannot listen") {
		t.Fatalf("B tried to bind:\n%s", b.log)
	}
	a.e.StopAccepting()
	if err := a.e.Apply(Spec{}); err == nil {
		t.Fatal("Apply after StopAccepting must be refused")
	}
	for range 5 {
		expectTag(b, l, bind.Addr.String(), "new")
	}
	if err := echo("after-hand-over"); err != nil {
		t.Fatalf("A's established connection broken by the hand-over: %v", err)
	}
}

// TestInheritedForeignNamespaceRefused: a received socket that lives in
// another namespace than the bind's is closed, never served, and the
// engine binds in the right namespace itself.
func TestInheritedForeignNamespaceRefused(t *testing.T) {
	l := testns.New(t, "L")
	v := newEnv(t, l)
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	wrong, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr)) // default namespace
	if err != nil {
		t.Fatal(err)
	}
	bind := BindSpec{Addr: addr, Namespace: l}
	v.e.Inherit([]InheritedListener{{Bind: bind, Listener: wrong}})
	v.serve(l, "127.0.0.1:7303", "right")
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7303", l)}})); err != nil {
		t.Fatal(err)
	}
	v.waitLog("inherited listener not reused")
	expectTag(v, l, addr.String(), "right")
	if _, err := v.ask("", addr.String()); err == nil {
		t.Fatal("the foreign (default namespace) socket is served")
	}
}

// TestInheritedUnwantedClosed: sockets no bind asks for are closed at
// Apply, so a port the new configuration dropped is freed.
func TestInheritedUnwantedClosed(t *testing.T) {
	v := newEnv(t)
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	v.e.Inherit([]InheritedListener{{Bind: BindSpec{Addr: addr}, Listener: ln}})
	if err := v.e.Apply(Spec{}); err != nil {
		t.Fatal(err)
	}
	v.waitLog("inherited listener closed")
	again, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("port still held: %v", err)
	}
	again.Close()
}
