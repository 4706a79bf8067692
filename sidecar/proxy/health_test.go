package proxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestHealthCheckFromBackendSource: a check connects from the backend's
// source address, as HAProxy's checks do; usesrc clientip has no client to
// take an address from, so its checks bind nothing.
func TestHealthCheckFromBackendSource(t *testing.T) {
	ns := testns.New(t, "S")
	v := newEnv(t, ns)
	testns.Addr(t, ns, "10.77.0.1/32")
	testns.Addr(t, ns, "10.77.0.2/32")
	var mu sync.Mutex
	var peers []string
	v.serveFunc(ns, "10.77.0.1:20452", func(c net.Conn) {
		mu.Lock()
		peers = append(peers, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String())
		mu.Unlock()
	})
	s := srv("s", "10.77.0.1:20452", ns)
	check := func(t *testing.T, bs BackendSpec) string {
		t.Helper()
		bs.Name = "c"
		if err := v.e.Apply(Spec{Backends: []BackendSpec{bs}}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		peers = nil
		mu.Unlock()
		if err := v.e.checkOnce(context.Background(), newServer("c", s), netip.MustParseAddrPort("10.77.0.1:20452")); err != nil {
			t.Fatalf("check: %v", err)
		}
		var got string
		eventually(t, "the server saw the check", func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(peers) == 0 {
				return &mismatch{"no connection", "one"}
			}
			got = peers[0]
			return nil
		})
		return got
	}
	t.Run("source", func(t *testing.T) {
		if got := check(t, BackendSpec{Source: netip.MustParseAddr("10.77.0.2")}); got != "10.77.0.2" {
			t.Fatalf("check came from %s, want the backend's source 10.77.0.2", got)
		}
	})
	t.Run("usesrc clientip", func(t *testing.T) {
		if got := check(t, BackendSpec{Source: netip.IPv4Unspecified(), UseSrcClientIP: true}); got != "10.77.0.1" {
			t.Fatalf("check came from %s, want the kernel's choice 10.77.0.1", got)
		}
	})
}

// TestHealthCheckConnectTimeout: with timeout check set, a check's connect
// is bounded by min(timeout connect, inter), timeout check being a further
// read timeout (HAProxy's rule; a TCP check reads nothing); without it, by
// inter alone. A SYN that is never answered shows which one applies; the
// margins are wide, a loaded machine only makes a timeout later.
func TestHealthCheckConnectTimeout(t *testing.T) {
	ns := testns.New(t, "T")
	v := newEnv(t, ns)
	// SYNs to 127.0.0.9:20453 vanish: connects there hang.
	testns.Exec(t, ns, "iptables", "-A", "OUTPUT", "-d", "127.0.0.9", "-p", "tcp", "--dport", "20453", "-j", "DROP")
	hole := netip.MustParseAddrPort("127.0.0.9:20453")
	run := func(t *testing.T, bs BackendSpec, inter time.Duration) time.Duration {
		t.Helper()
		bs.Name = "c"
		if err := v.e.Apply(Spec{Backends: []BackendSpec{bs}}); err != nil {
			t.Fatal(err)
		}
		s := srv("s", hole.String(), ns)
		s.Inter = inter
		// The cap ends a check that no timeout of its own bounds soon enough.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		if err := v.e.checkOnce(ctx, newServer("c", s), hole); err == nil {
			t.Fatal("check of a black hole succeeded")
		}
		return time.Since(start)
	}
	t.Run("timeout check set: min(connect, inter)", func(t *testing.T) {
		got := run(t, BackendSpec{ConnectTimeout: time.Second, CheckTimeout: 30 * time.Second}, 30*time.Second)
		if got < 900*time.Millisecond || got > 10*time.Second {
			t.Fatalf("check connect gave up after %v, want about timeout connect (1s), not timeout check (30s)", got.Round(time.Millisecond))
		}
		t.Logf("check connect gave up after %v", got.Round(time.Millisecond))
	})
	t.Run("timeout check set, inter shorter", func(t *testing.T) {
		got := run(t, BackendSpec{ConnectTimeout: 30 * time.Second, CheckTimeout: 30 * time.Second}, time.Second)
		if got < 900*time.Millisecond || got > 10*time.Second {
			t.Fatalf("check connect gave up after %v, want about inter (1s)", got.Round(time.Millisecond))
		}
	})
	t.Run("no timeout check: inter", func(t *testing.T) {
		got := run(t, BackendSpec{ConnectTimeout: time.Second}, 3*time.Second)
		if got < 2500*time.Millisecond || got > 15*time.Second {
			t.Fatalf("check gave up after %v, want about inter (3s): without timeout check, timeout connect does not bound a check", got.Round(time.Millisecond))
		}
		t.Logf("check gave up after %v", got.Round(time.Millisecond))
	})
}
