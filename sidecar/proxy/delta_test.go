package proxy

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestApplyDeltaAddsAndRemoves: ApplyDelta starts and stops frontends,
// backends and their listeners by name as Apply would; after most of them
// left, the frontends' map and the loop guard's maps are made again at
// their size (a Go map keeps its peak bucket array) and nothing is left.
func TestApplyDeltaAddsAndRemoves(t *testing.T) {
	v := newEnv(t)
	if err := v.e.Apply(Spec{}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var d Delta
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("x%d", i)
		addr := netip.MustParseAddrPort(fmt.Sprintf("127.0.%d.1:%d", 1+i/100, 20460+i%100))
		d.Frontends = append(d.Frontends, FrontendSpec{Name: name, Tenant: "default", Backend: name,
			Binds: []BindSpec{{Addr: addr, NoTakeover: true}}})
		d.Backends = append(d.Backends, BackendSpec{Name: name, Servers: []ServerSpec{{Name: "c",
			Addr: netip.MustParseAddr("127.0.0.1"), Port: 9}}})
	}
	if err := v.e.ApplyDelta(d); err != nil {
		t.Fatal(err)
	}
	up := 0
	for try := 0; try < 500 && up < n; try++ { // listeners open on their own goroutines
		up = 0
		for _, l := range v.e.Listeners() {
			if l.Listening {
				up++
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if up != n || v.e.backend("x7") == nil || v.e.binds != n {
		t.Fatalf("after adding %d: %d listening, backend x7 %v, %d binds counted", n, up, v.e.backend("x7"), v.e.binds)
	}
	frontendsMap := reflect.ValueOf(v.e.frontends).UnsafePointer()
	v.e.own.mu.Lock()
	refsMap := reflect.ValueOf(v.e.own.refs).UnsafePointer()
	v.e.own.mu.Unlock()
	var rm Delta
	for i := 0; i < n; i++ {
		rm.RemoveFrontends = append(rm.RemoveFrontends, fmt.Sprintf("x%d", i))
		rm.RemoveBackends = append(rm.RemoveBackends, fmt.Sprintf("x%d", i))
	}
	if err := v.e.ApplyDelta(rm); err != nil {
		t.Fatal(err)
	}
	if got := len(v.e.Listeners()); got != 0 || v.e.backend("x7") != nil || v.e.binds != 0 {
		t.Errorf("after removing all: %d listeners, backend x7 %v, %d binds counted", got, v.e.backend("x7"), v.e.binds)
	}
	if reflect.ValueOf(v.e.frontends).UnsafePointer() == frontendsMap {
		t.Error("after all frontends left, their map is the one made for the peak")
	}
	// Listeners close on their own goroutines: wait for the loop guard.
	for i := 0; i < 200; i++ {
		v.e.own.mu.Lock()
		left, refs := len(v.e.own.refs), reflect.ValueOf(v.e.own.refs).UnsafePointer()
		v.e.own.mu.Unlock()
		if left == 0 {
			if refs == refsMap {
				t.Error("after all listeners closed, the loop guard's map is the one made for the peak")
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("the loop guard still holds listeners of removed frontends")
}
