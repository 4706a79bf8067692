package proxy

import (
	"bufio"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestTenantMaxConn: Spec.TenantMaxConn caps a tenant's connections over
// all its frontends: with a cap of 1, a client of the tenant's second
// frontend waits in the backlog while the first holds the slot, and is
// served once it closes; another tenant's frontend is not held back.
func TestTenantMaxConn(t *testing.T) {
	// Each tenant's frontends and server in a namespace of its own: a
	// server in another tenant's namespace is refused (MayUse).
	b, c := testns.New(t, "B"), testns.New(t, "C")
	v := newEnv(t)
	for ns, tenant := range map[string]string{b: "t", c: "u"} {
		v.registerTenant(ns, tenant)
		v.serve(ns, "127.0.0.1:9402", "s")
	}
	bind := func(ns string, port uint16) BindSpec {
		return BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Namespace: ns}
	}
	sp := Spec{TenantMaxConn: map[string]int{"t": 1},
		Frontends: []FrontendSpec{
			{Name: "t1", Tenant: "t", Binds: []BindSpec{bind(b, 9501)}, Backend: "b"},
			{Name: "t2", Tenant: "t", Binds: []BindSpec{bind(b, 9502)}, Backend: "b"},
			{Name: "u1", Tenant: "u", Binds: []BindSpec{bind(c, 9503)}, Backend: "bu"},
		},
		Backends: []BackendSpec{{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:9402", b)}},
			{Name: "bu", Servers: []ServerSpec{srv("s", "127.0.0.1:9402", c)}}}}
	if err := v.e.Apply(sp); err != nil {
		t.Fatal(err)
	}
	expectTag(v, b, "127.0.0.1:9501", "s") // listening; the slot is free again once it ends
	eventually(t, "the first connection's slot given back", func() error {
		if n := v.e.Sessions(); n != 0 {
			return &mismatch{"sessions", "none"}
		}
		return nil
	})
	c1, err := v.dial(b, "127.0.0.1:9501")
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c1).ReadString('\n'); err != nil || strings.TrimSpace(line) != "s" {
		t.Fatalf("first connection: %q %v", line, err)
	}
	c2, err := v.dial(b, "127.0.0.1:9502") // completes in the backlog
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	expectTag(v, c, "127.0.0.1:9503", "s") // tenant u is not held back
	c2.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _ := c2.Read(make([]byte, 1)); n != 0 {
		t.Fatal("tenant t's second connection was served while the first held the tenant's only slot")
	}
	if cur := frontendCurrent(v.e, "t2"); cur != 0 {
		t.Fatalf("frontend t2 holds %d connections, want 0 while the tenant's slot is taken", cur)
	}
	c1.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c2).ReadString('\n'); err != nil || strings.TrimSpace(line) != "s" {
		t.Fatalf("second connection after the first closed: %q %v", line, err)
	}
	// No cap: both at once.
	sp.TenantMaxConn = nil
	if err := v.e.Apply(sp); err != nil {
		t.Fatal(err)
	}
	expectTag(v, b, "127.0.0.1:9501", "s")
}

func frontendCurrent(e *Engine, name string) int64 {
	for _, f := range e.Snapshot().Frontends {
		if f.Name == name {
			return f.Current
		}
	}
	return -1
}
