package proxy

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Review finding: a loop that refuses a connection (trusted-proxies, bad header,
// loop guard) takes e.mu in frontendRefusal; Apply/Shutdown/StopAccepting
// hold e.mu while l.stop() waits for the owner loop to run dropAcceptor.
func TestRefusalWhileApplyStopsABind(t *testing.T) {
	v := newEnv(t)
	serveHome(t, "127.0.0.1:22102", "s")
	proxied := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22100"), AcceptProxy: true}
	plain := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22101")}
	sp := Spec{NbThread: 1,
		Frontends: []FrontendSpec{{Name: "f", Binds: []BindSpec{proxied, plain}, Backend: "b",
			Proxy: ProxyPolicy{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}},
		Backends: []BackendSpec{{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:22102", "")}}}}
	if err := v.e.Apply(sp); err != nil {
		t.Fatal(err)
	}
	expectTag(v, "", plain.Addr.String(), "s")
	l := v.e.frontends["f"].listeners[plain]

	v.e.mu.Lock() // as Apply does, before it stops the binds it drops
	c, err := net.Dial("tcp", proxied.Addr.String())
	if err != nil {
		v.e.mu.Unlock()
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond) // the loop refuses the untrusted source: frontendRefusal
	stopped := make(chan struct{})
	go func() { l.stop(); close(stopped) }() // Apply's l.stop() for a removed bind, e.mu held
	select {
	case <-stopped:
		v.e.mu.Unlock()
	case <-time.After(3 * time.Second):
		v.e.mu.Unlock()
		<-stopped
		t.Fatal("deadlock: l.stop() under e.mu waits for the loop, which waits for e.mu in frontendRefusal")
	}
}

// The same with the real Apply: untrusted clients hammer an accept-proxy
// bind while Apply adds and removes another bind.
func TestRefusalsDuringApply(t *testing.T) {
	v := newEnv(t)
	serveHome(t, "127.0.0.1:22105", "s")
	proxied := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22103"), AcceptProxy: true}
	plain := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22104")}
	mk := func(binds ...BindSpec) Spec {
		return Spec{NbThread: 1,
			Frontends: []FrontendSpec{{Name: "f", Binds: binds, Backend: "b",
				Proxy: ProxyPolicy{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}},
			Backends: []BackendSpec{{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:22105", "")}}}}
	}
	if err := v.e.Apply(mk(proxied, plain)); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c, err := net.DialTimeout("tcp", proxied.Addr.String(), time.Second)
				if err == nil {
					c.Close()
				}
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for i := range 200 {
		sp := mk(proxied, plain)
		if i%2 == 0 {
			sp = mk(proxied)
		}
		done := make(chan error, 1)
		go func() { done <- v.e.Apply(sp) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Apply %d hangs while the loop refuses untrusted connections", i)
		}
		time.Sleep(5 * time.Millisecond) // the new listener reaches its loop
	}
}
