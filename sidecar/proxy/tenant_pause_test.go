package proxy

import (
	"bufio"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Review finding: a listener paused because its tenant's limiter was full waits
// on that limiter only; an Apply that moves its frontend to another
// (unlimited) tenant never wakes it, so the queued client waits until a
// connection of the old tenant ends.
func TestPausedListenerResumesWhenItsTenantChanges(t *testing.T) {
	v := newEnv(t)
	serveHome(t, "127.0.0.1:22110", "s")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:22111")}
	mk := func(tenant string) Spec {
		return Spec{NbThread: 1, TenantMaxConn: map[string]int{"t1": 1},
			Frontends: []FrontendSpec{{Name: "f", Tenant: tenant, Binds: []BindSpec{bind}, Backend: "b"}},
			Backends:  []BackendSpec{{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:22110", "")}}}}
	}
	if err := v.e.Apply(mk("t1")); err != nil {
		t.Fatal(err)
	}
	expectTag(v, "", bind.Addr.String(), "s")
	first, err := net.Dial("tcp", bind.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(3 * time.Second))
	if tag, err := bufio.NewReader(first).ReadString('\n'); err != nil || tag != "s\n" {
		t.Fatalf("first: %q %v", tag, err)
	}
	second, err := net.Dial("tcp", bind.Addr.String()) // queued: t1 is full
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	r := bufio.NewReader(second)
	second.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("second served while t1 is full: the test tests nothing")
	}
	if err := v.e.Apply(mk("t2")); err != nil { // t2 has no limit
		t.Fatal(err)
	}
	second.SetDeadline(time.Now().Add(2 * time.Second))
	if tag, err := r.ReadString('\n'); err != nil || tag != "s\n" {
		t.Errorf("queued client not served after its frontend moved to an unlimited tenant: %q %v", tag, err)
		first.Close()
		second.SetDeadline(time.Now().Add(2 * time.Second))
		tag, err := r.ReadString('\n')
		t.Logf("after the old tenant's connection ended: %q %v", tag, err)
	}
}
