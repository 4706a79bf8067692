package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// TestIdleConnectionsHoldNoGoroutine (issue 14): established connections
// belong to the event loops, not to goroutines: the goroutine count with
// 2,000 idle connections open through the engine is the count with 10.
// It logs what each connection costs in RSS and heap (not asserted:
// numbers for the report, not a timed or sized test).
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	const few, many = 10, 2000
	a, b := testns.New(t, "A"), testns.New(t, "B")
	v := newEnv(t, a, b)
	// A server in B that holds every connection and greets it with one
	// byte, from one goroutine: no per-connection cost on that side.
	ln, err := v.handle(b).Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []*net.TCPConn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			c.Write([]byte{'g'})
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	var clients []*net.TCPConn
	t.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:7400"), Namespace: a}
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", ln.Addr().String(), b)}})); err != nil {
		t.Fatal(err)
	}
	ha, err := netns.OpenPath(filepath.Join(netns.DefaultDir, a), a)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	eventually(t, "listener", func() error {
		if ls := v.e.Listeners(); len(ls) != 1 || !ls[0].Listening {
			return fmt.Errorf("listener not up: %+v", ls)
		}
		return nil
	})
	// open brings the number of clients to n, each greeted through the
	// engine, and waits until the engine counts them all.
	open := func(n int) {
		t.Helper()
		from := len(clients)
		err := ha.Do(func() error {
			for len(clients) < n {
				c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(bind.Addr))
				if err != nil {
					return err
				}
				clients = append(clients, c)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range clients[from:] {
			var g [1]byte
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, g[:]); err != nil || g[0] != 'g' {
				mu.Lock()
				nheld := len(held)
				mu.Unlock()
				t.Fatalf("greeting %d of %d through the engine: %q, %v (sessions %d, server accepted %d)", from+i, n, g, err, v.e.Sessions(), nheld)
			}
			c.SetReadDeadline(time.Time{})
		}
		eventually(t, "sessions", func() error {
			if got := v.e.Sessions(); got != n {
				return fmt.Errorf("%d sessions, want %d", got, n)
			}
			return nil
		})
		time.Sleep(100 * time.Millisecond) // setup goroutines have ended
	}
	settle := func() (goroutines int, rss, heap uint64) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return runtime.NumGoroutine(), vmRSS(), m.HeapInuse
	}
	open(few)
	g0, rss0, heap0 := settle()
	open(many)
	g1, rss1, heap1 := settle()
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / (many - few) }
	t.Logf("%d idle connections: goroutines %d → %d; per connection (engine, client and server ends together): RSS %.0f B, heap %.0f B",
		many, g0, g1, per(rss0, rss1), per(heap0, heap1))
	if g1-g0 > 5 {
		t.Fatalf("goroutines grew from %d to %d while %d more connections were opened: a goroutine per connection is back", g0, g1, many-few)
	}
	for _, c := range clients {
		c.Close()
	}
	clients = nil
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	held = nil
	mu.Unlock()
	eventually(t, "connections end", func() error {
		if got := v.e.Sessions(); got != 0 {
			return fmt.Errorf("%d sessions left", got)
		}
		return nil
	})
}

// vmRSS is this process's resident set size in bytes.
func vmRSS() uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
			return kb << 10
		}
	}
	return 0
}
