package proxy

import (
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestListeningSocketsHoldNoGoroutine (issue 13): a socket in a loop costs
// no goroutine, the namespace's end and stop reach it without one. 1,000
// binds (exposures, bound during Apply, and file binds, bound by a
// goroutine that ends once the socket is in its loop) leave the goroutine
// count where 10 left it; removing them closes every socket. It logs what
// the heap and the runtime's stack memory do (numbers for the report, not
// asserted).
func TestListeningSocketsHoldNoGoroutine(t *testing.T) {
	const few, many = 10, 1000
	a := testns.New(t, "A")
	v := newEnv(t, a)
	v.serve(a, "127.0.0.1:20401", "srv")
	spec := func(n int) Spec {
		s := Spec{Backends: []BackendSpec{{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:20401", a)}}}}
		for i := range n {
			// 127.0.x.y:20400 in A: one port, many addresses.
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(1 + i/250), byte(1 + i%250)}), 20400)
			s.Frontends = append(s.Frontends, FrontendSpec{Name: fmt.Sprintf("f%d", i), Backend: "b",
				Binds: []BindSpec{{Addr: addr, Namespace: a, NoTakeover: i%2 == 0}}})
		}
		return s
	}
	listening := func(want int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d listening", want), func() error {
			n := 0
			for _, l := range v.e.Listeners() {
				if l.Listening {
					n++
				}
			}
			if n != want {
				return fmt.Errorf("%d listening", n)
			}
			return nil
		})
	}
	usage := func() (goroutines int, heap, stacks uint64) {
		runtime.GC()
		debug.FreeOSMemory()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
		metrics.Read(s)
		return runtime.NumGoroutine(), s[0].Value.Uint64(), s[1].Value.Uint64()
	}
	if err := v.e.Apply(spec(few)); err != nil {
		t.Fatal(err)
	}
	listening(few)
	expectTag(v, a, "127.0.1.2:20400", "srv")
	g0, heap0, stk0 := usage()
	if err := v.e.Apply(spec(many)); err != nil {
		t.Fatal(err)
	}
	listening(many)
	expectTag(v, a, "127.0.4.200:20400", "srv")
	g1, heap1, stk1 := usage()
	t.Logf("%d listening: %d goroutines, heap %.1f MiB, stacks %.1f MiB; %d listening: %d goroutines, heap %.1f MiB, stacks %.1f MiB",
		few, g0, float64(heap0)/(1<<20), float64(stk0)/(1<<20), many, g1, float64(heap1)/(1<<20), float64(stk1)/(1<<20))
	// A few for the runtime's own (GC workers, timers) at most.
	if g1 > g0+5 {
		t.Errorf("goroutines grow with listening sockets: %d with %d, %d with %d", g0, few, g1, many)
	}
	if err := v.e.Apply(spec(few)); err != nil {
		t.Fatal(err)
	}
	listening(few)
	if _, err := v.ask(a, "127.0.4.200:20400"); err == nil {
		t.Error("a removed bind still accepts")
	}
	g2, heap2, stk2 := usage()
	t.Logf("back to %d: %d goroutines, heap %.1f MiB, stacks %.1f MiB", few, g2, float64(heap2)/(1<<20), float64(stk2)/(1<<20))
	if g2 > g0+5 {
		t.Errorf("goroutines after removal: %d, %d before", g2, g0)
	}
}
