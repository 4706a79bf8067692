package proxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Review finding: Shutdown (SIGTERM) holds e.mu while each listener waits for its
// loop to drop the socket; a loop refusing an untrusted PROXY client at
// that moment waits for e.mu in frontendRefusal.
func TestShutdownDuringRefusals(t *testing.T) {
	for round := range 10 {
		v := newEnv(t)
		var binds []BindSpec
		for i := range 4 {
			binds = append(binds, BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(22120+i)), AcceptProxy: true})
		}
		if err := v.e.Apply(Spec{NbThread: 1,
			Frontends: []FrontendSpec{{Name: "f", Binds: binds, Backend: "b",
				Proxy: ProxyPolicy{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}},
			Backends: []BackendSpec{{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:22130", "")}}}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					if c, err := net.DialTimeout("tcp", binds[i].Addr.String(), time.Second); err == nil {
						c.Close()
					}
				}
			}()
		}
		time.Sleep(50 * time.Millisecond)
		done := make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			v.e.Shutdown(ctx)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Shutdown hangs while the loop refuses untrusted PROXY clients", round)
		}
		stop.Store(true)
		wg.Wait()
	}
}
