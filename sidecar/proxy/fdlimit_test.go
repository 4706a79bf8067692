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
		{256, 64, 48},
		{1024, 64, 240},
		{1 << 20, 64, (1<<20 - 64) / 4},
		{67, 64, 1}, // three left: still one connection
		{10, 64, 1}, // below the reserve
		{0, 0, 1},
		{1<<64 - 1, 64, (int(^uint(0)>>1) - 64) / 4}, // RLIM_INFINITY
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
	want := (256 - fdsReserved - 2) / fdsPerConn
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
