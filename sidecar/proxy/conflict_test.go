package proxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestNoTakeoverConflict: a NoTakeover bind whose address another program
// holds reports a conflict as soon as Apply returns, and does not take the
// port when the program lets it go; a plain bind (the files') retries and
// takes it, as before.
func TestNoTakeoverConflict(t *testing.T) {
	a := testns.New(t, "C")
	v := newEnv(t, a)
	v.serve(a, "127.0.0.1:19541", "srv")
	h := v.handle(a)
	exposure, file := netip.MustParseAddrPort("127.0.0.1:19542"), netip.MustParseAddrPort("127.0.0.1:19543")
	holdExposure, err := h.Listen(exposure)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holdExposure.Close() })
	holdFile, err := h.Listen(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holdFile.Close() })

	be := BackendSpec{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:19541", a)}}
	sp := Spec{Backends: []BackendSpec{be}, Frontends: []FrontendSpec{
		{Name: "exposure", Backend: "b", Binds: []BindSpec{{Addr: exposure, Namespace: a, NoTakeover: true}}},
		{Name: "file", Backend: "b", Binds: []BindSpec{{Addr: file, Namespace: a}}},
	}}
	if err := v.e.Apply(sp); err != nil {
		t.Fatal(err)
	}
	state := func(fe string) ListenerState {
		for _, l := range v.e.Listeners() {
			if l.Frontend == fe {
				return l
			}
		}
		t.Fatalf("no listener of %s", fe)
		return ListenerState{}
	}
	if st := state("exposure"); !st.Conflict || st.Listening || st.Err == "" {
		t.Fatalf("exposure right after Apply: %+v, want a conflict", st)
	}
	v.waitLog("address in use by another program; not retried, never taken over")

	holdExposure.Close()
	holdFile.Close()
	expectTag(v, a, file.String(), "srv") // the file's bind retries and takes its port
	time.Sleep(500 * time.Millisecond)    // several retry rounds of the file's bind
	if st := state("exposure"); !st.Conflict || st.Listening {
		t.Fatalf("exposure after its holder exited: %+v, want still a conflict", st)
	}
	if _, err := v.dial(a, exposure.String()); err == nil {
		t.Fatal("the exposure's port answers after its holder exited: taken over")
	}

	// A free port: the NoTakeover bind listens at once, and Apply with the
	// same spec keeps it.
	free := netip.MustParseAddrPort("127.0.0.1:19544")
	sp.Frontends = append(sp.Frontends, FrontendSpec{Name: "ok", Backend: "b", Binds: []BindSpec{{Addr: free, Namespace: a, NoTakeover: true}}})
	if err := v.e.Apply(sp); err != nil {
		t.Fatal(err)
	}
	expectTag(v, a, free.String(), "srv")
}
