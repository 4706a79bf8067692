package proxy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestConnLimitForFDs(t *testing.T) {
	for _, tc := range []struct {
		nofile   uint64
		reserved int
		want     int
	}{
		{256, 64, 76},   // 192 fds: 19 groups of 4 connections + 1 pipe
		{1024, 64, 384}, // 960 fds: 384 connections (768 fds) + 96 pipes (192 fds)
		{1 << 20, 64, (1<<20 - 64) / 10 * 4},
		{20000, 66, 7972}, // this machine's limit: 5,000 idle connections fit
		{67, 64, 1},       // three left: still one connection
		{10, 64, 1},       // below the reserve
		{0, 0, 1},
		{1<<64 - 1, 64, (int(^uint(0)>>1) - 64) / 10 * 4}, // RLIM_INFINITY
	} {
		if got := connLimitForFDs(tc.nofile, tc.reserved); got != tc.want {
			t.Errorf("connLimitForFDs(%d, %d) = %d, want %d", tc.nofile, tc.reserved, got, tc.want)
		}
	}
}

func TestEffectiveMaxConn(t *testing.T) {
	for _, tc := range []struct{ configured, fdLimit, want int }{
		{0, 48, 48},    // none configured: the fd limit
		{1000, 48, 48}, // lowered
		{20, 48, 20},   // fits
		{48, 48, 48},   // exactly
		{-1, 100, 100}, // nonsense counts as none
		{5000, 5000, 5000},
	} {
		if got := effectiveMaxConn(tc.configured, tc.fdLimit); got != tc.want {
			t.Errorf("effectiveMaxConn(%d, %d) = %d, want %d", tc.configured, tc.fdLimit, got, tc.want)
		}
	}
}

// TestApplyFitsMaxConnToNoFile: Apply caps the global maxconn by the
// open-file limit, counting the listeners, and says so once.
func TestApplyFitsMaxConnToNoFile(t *testing.T) {
	v := newEnv(t)
	if v.e.nofile == 0 {
		t.Fatal("RLIMIT_NOFILE not read")
	}
	v.e.nofile = 256
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:0")}
	sp := spec1(bind, BackendSpec{})
	sp.MaxConn = 1000
	for range 2 {
		if err := v.e.Apply(sp); err != nil {
			t.Fatal(err)
		}
	}
	want := connLimitForFDs(256, fdsReserved+int(sockPoolTotalFor(256))+1)
	v.e.global.mu.Lock()
	got := v.e.global.limit
	v.e.global.mu.Unlock()
	if got != want {
		t.Fatalf("global maxconn %d, want %d", got, want)
	}
	v.waitLog("maxconn lowered to fit the open-file limit")
	if n := strings.Count(v.log.String(), "maxconn lowered"); n != 1 {
		t.Fatalf("logged %d times, want once", n)
	}
	sp.MaxConn = 10
	v.e.Apply(sp)
	v.e.global.mu.Lock()
	got = v.e.global.limit
	v.e.global.mu.Unlock()
	if got != 10 {
		t.Fatalf("global maxconn %d, want the configured 10", got)
	}
}

// TestPipeBudget: all loops together open at most the budget's pipes (their
// fds are counted in maxconn's fit); past it get says none, and a direction
// copies instead. Pipes closed or pooled past pipeIdleMax free their share.
func TestPipeBudget(t *testing.T) {
	var b pipeBudget
	b.max.Store(3)
	p1, p2 := pipePool{budget: &b}, pipePool{budget: &b}
	var got []*pipe
	for _, p := range []*pipePool{&p1, &p2, &p1} {
		pp := p.get()
		if pp == nil {
			t.Fatalf("pipe %d refused under a budget of 3", len(got)+1)
		}
		got = append(got, pp)
	}
	if p2.get() != nil {
		t.Fatal("a fourth pipe was opened past the budget of 3")
	}
	p1.put(got[0]) // pooled: still open, still counted
	if p2.get() != nil {
		t.Fatal("a pooled pipe's share was handed out again")
	}
	if pp := p1.get(); pp != got[0] {
		t.Fatal("the pooled pipe was not reused")
	}
	got[1].close()
	b.give()
	if pp := p2.get(); pp == nil {
		t.Fatal("a closed pipe's share was not returned")
	} else {
		got[1] = pp
	}
	for _, pp := range got {
		pp.close()
		b.give()
	}
	p1.close()
	p2.close()
	if n := b.open.Load(); n != 0 {
		t.Fatalf("%d pipes counted open after closing all", n)
	}
}
