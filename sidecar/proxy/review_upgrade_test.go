package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// rvuNS makes a namespace of this review's own prefix (rvu), deleted at
// cleanup.
var rvuSeq atomic.Int32

func rvuNS(t *testing.T, tag string) string {
	t.Helper()
	return testns.Add(t, fmt.Sprintf("rvu%d%s%d", os.Getpid()%10000, tag, rvuSeq.Add(1)))
}

// refusedDuring dials addr in a tight loop while f runs (and a moment
// after) and counts connections refused.
func refusedDuring(t *testing.T, addr string, f func()) (refused, ok int) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var nRefused, nOK atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					nRefused.Add(1)
				}
				continue
			}
			nOK.Add(1)
			c.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	f()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	return int(nRefused.Load()), int(nOK.Load())
}

// TestReviewRenamedFrontendKeepsBind: README "Reloads keep every listener
// whose bind line is unchanged, with its connections". A reload that only
// renames a frontend (same bind line, same backend) closes the listening
// socket and binds a new one from a goroutine after Apply returned: clients
// are refused meanwhile.
func TestReviewRenamedFrontendKeepsBind(t *testing.T) {
	v := newEnv(t)
	v.serve("", "127.0.0.1:22101", "srv")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22100")}
	be := BackendSpec{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:22101", "")}}
	spec := func(name string) Spec {
		return Spec{Frontends: []FrontendSpec{{Name: name, Binds: []BindSpec{bind}, Backend: "b"}},
			Backends: []BackendSpec{be}}
	}
	if err := v.e.Apply(spec("web")); err != nil {
		t.Fatal(err)
	}
	expectTag(v, "", bind.Addr.String(), "srv")
	total := 0
	for i := range 20 {
		name := "web"
		if i%2 == 0 {
			name = "www"
		}
		refused, ok := refusedDuring(t, bind.Addr.String(), func() {
			if err := v.e.Apply(spec(name)); err != nil {
				t.Fatal(err)
			}
		})
		if ok == 0 {
			t.Fatalf("no connection succeeded around the reload")
		}
		total += refused
	}
	if total > 0 {
		t.Errorf("20 reloads that only renamed the frontend (bind line unchanged) refused %d connections", total)
	}
}

// TestReviewServerEditKeepsCounters: a reload that edits a server in place
// (its weight; same name, address and namespace) keeps its health, but the
// server's counters start from zero: the established connection no longer
// shows in its connections_current / Active (the session decrements the old
// object), and connections_total goes back to 0.
func TestReviewServerEditKeepsCounters(t *testing.T) {
	v := newEnv(t)
	v.serve("", "127.0.0.1:22121", "srv")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22120")}
	s := srv("s", "127.0.0.1:22121", "")
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{s}})); err != nil {
		t.Fatal(err)
	}
	expectTag(v, "", bind.Addr.String(), "srv")
	echo, closeC := openSession(t, v, "", bind.Addr.String(), "srv")
	defer closeC()
	state := func() ServerState {
		for _, st := range v.e.Servers() {
			if st.Server == "s" {
				return st
			}
		}
		t.Fatal("server s missing")
		return ServerState{}
	}
	// expectTag's connection ends on its own: its session may still be
	// counted for a moment.
	var before ServerState
	eventually(t, "one connection open", func() error {
		if before = state(); before.Active != 1 || before.Total < 2 {
			return fmt.Errorf("before the reload: %+v", before)
		}
		return nil
	})
	s.Weight = 5
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{s}})); err != nil {
		t.Fatal(err)
	}
	if err := echo("still-open"); err != nil {
		t.Fatalf("connection cut by the reload: %v", err)
	}
	after := state()
	if after.Active != before.Active || after.Total < before.Total {
		t.Errorf("server s after a reload that changed only its weight, one connection open: Active %d -> %d, Total %d -> %d",
			before.Active, after.Active, before.Total, after.Total)
	}
	snap := v.e.Snapshot()
	for _, b := range snap.Backends {
		for _, sv := range b.Servers {
			if sv.Name == "s" && sv.Active != 1 {
				t.Errorf("snapshot (metrics): server s connections_current = %d with one connection open", sv.Active)
			}
		}
	}
}
