package proxy

import (
	"bufio"
	"net/netip"
	"testing"
	"time"
)

// TestRenamedFrontendTakesTheBacklog: a listener kept for a renamed
// frontend hands its queued connections to the new frontend: one that
// waited in the backlog on the old frontend's full maxconn is served under
// the new one's, and counted there; the listener's state names the new
// frontend.
func TestRenamedFrontendTakesTheBacklog(t *testing.T) {
	v := newEnv(t)
	v.serve("", "127.0.0.1:20411", "srv")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:20410")}
	be := BackendSpec{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:20411", "")}}
	spec := func(name string, maxconn int) Spec {
		return Spec{Frontends: []FrontendSpec{{Name: name, Binds: []BindSpec{bind}, Backend: "b", MaxConn: maxconn}},
			Backends: []BackendSpec{be}}
	}
	if err := v.e.Apply(spec("old", 1)); err != nil {
		t.Fatal(err)
	}
	echo, closeFirst := openSession(t, v, "", bind.Addr.String(), "srv")
	defer closeFirst()
	// The second waits in the backlog: "old" is full.
	c, err := v.dial("", bind.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("served over maxconn 1")
	}
	if err := v.e.Apply(spec("new", 5)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if tag, err := r.ReadString('\n'); err != nil || tag != "srv\n" {
		t.Fatalf("queued connection after the rename: %q, %v", tag, err)
	}
	if err := echo("still-open"); err != nil {
		t.Fatalf("the old frontend's connection: %v", err)
	}
	st := v.e.Listeners()
	if len(st) != 1 || st[0].Frontend != "new" || !st[0].Listening {
		t.Errorf("listeners after the rename: %+v", st)
	}
	for _, f := range v.e.Snapshot().Frontends {
		if f.Name == "new" && f.Total != 1 {
			t.Errorf("frontend new counted %d connections, want the queued one", f.Total)
		}
	}
}

// TestRenamedFrontendKeepsItsCount: maxconn counts the connections of the
// listener it keeps across a rename. On e4721e3 the renamed frontend
// started from zero while the old name's connections went on: with maxconn
// 1, a rename let a second connection in beside the first.
func TestRenamedFrontendKeepsItsCount(t *testing.T) {
	v := newEnv(t)
	v.serve("", "127.0.0.1:20413", "srv")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:20412")}
	be := BackendSpec{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:20413", "")}}
	spec := func(name string) Spec {
		return Spec{Frontends: []FrontendSpec{{Name: name, Binds: []BindSpec{bind}, Backend: "b", MaxConn: 1}},
			Backends: []BackendSpec{be}}
	}
	if err := v.e.Apply(spec("old")); err != nil {
		t.Fatal(err)
	}
	echo, closeFirst := openSession(t, v, "", bind.Addr.String(), "srv")
	defer closeFirst() // closing twice is harmless
	if err := v.e.Apply(spec("new")); err != nil {
		t.Fatal(err)
	}
	c, err := v.dial("", bind.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if tag, err := r.ReadString('\n'); err == nil {
		t.Fatalf("after a rename, a second connection was served (%q) beside the first, over maxconn 1", tag)
	}
	if err := echo("still-open"); err != nil {
		t.Fatalf("the old frontend's connection: %v", err)
	}
	closeFirst()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if tag, err := r.ReadString('\n'); err != nil || tag != "srv\n" {
		t.Fatalf("the queued connection once the first ended: %q, %v", tag, err)
	}
}
