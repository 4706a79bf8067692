package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// TestTenantIsolation: a frontend of tenant a reaches only tenant a's
// namespaces. X (a) and Y (b) both have 10.68.0.1. A NETNS TLV naming Y
// is refused with reason "tenant" (X is served); a "namespace *" server on
// a listener inside Y (b's) is refused at dial time with the same reason,
// also though the files never say so (the engine checks each connection).
func TestTenantIsolation(t *testing.T) {
	x, y := testns.New(t, "X"), testns.New(t, "Y")
	v := newEnv(t)
	for ns, tenant := range map[string]string{x: "a", y: "b"} {
		v.registerTenant(ns, tenant)
		testns.Addr(t, ns, "10.68.0.1/32")
		v.serve(ns, "10.68.0.1:8080", ns)
	}
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), AcceptProxy: true}
	star := ServerSpec{Name: "any", PortMode: PortFromClient, ClientNamespace: true, Weight: 1}
	sp := spec1(bind, BackendSpec{Servers: []ServerSpec{star}})
	sp.Frontends[0].Tenant = "a"
	inY := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:9090"), Namespace: y}
	sp.Frontends = append(sp.Frontends, FrontendSpec{Name: "g", Tenant: "a", Binds: []BindSpec{inY}, Backend: "b"})
	v.e.Apply(sp)
	addr := bind.Addr.String()
	eventually(t, "listener", func() error { _, err := v.dial("", addr); return err })

	if got, err := v.sendHeader("", addr, v2("192.0.2.9:4000", "10.68.0.1:8080", x)); err != nil || got != x {
		t.Fatalf("TLV of its own tenant: answered %q (%v)", got, err)
	}
	if got, err := v.sendHeader("", addr, v2("192.0.2.9:4000", "10.68.0.1:8080", y)); err == nil && got != "" {
		t.Errorf("TLV naming tenant b's namespace: served by %q, want refused", got)
	}
	v.waitLog("reason=tenant")
	var c interface {
		Read([]byte) (int, error)
		Close() error
	}
	eventually(t, "listener in Y", func() error {
		cc, err := v.dial(y, "127.0.0.1:9090")
		if err == nil {
			c = cc
		}
		return err
	})
	c.(interface{ SetReadDeadline(time.Time) error }).SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	c.Close()
	if n > 0 {
		t.Errorf("namespace * inside tenant b's namespace on tenant a's frontend: served %q, want refused", buf[:n])
	}
	eventually(t, "refusal counters", func() error {
		if f, g := v.e.Refusals("f")[reasonTenant], v.e.Refusals("g")[reasonTenant]; f != 1 || g != 1 {
			return fmt.Errorf("tenant refusals f=%d g=%d, want 1 and 1 (f: %v)", f, g, v.e.Refusals("f"))
		}
		return nil
	})
	v.waitLog("namespace * refused")
}

// TestTenantFixedNamespaceServer: a server with a fixed namespace is
// dialled only for a frontend of that namespace's tenant, checked per
// connection like "namespace *" (the plan refuses such objects, but a
// namespace's owner can change under a running backend). Frontend f of
// tenant a and g of tenant b share a backend whose server is in Y (b's):
// g is served, f is refused with reason "tenant".
func TestTenantFixedNamespaceServer(t *testing.T) {
	x, y := testns.New(t, "X"), testns.New(t, "Y")
	v := newEnv(t)
	for ns, tenant := range map[string]string{x: "a", y: "b"} {
		v.registerTenant(ns, tenant)
	}
	testns.Addr(t, y, "10.68.0.1/32")
	v.serve(y, "10.68.0.1:8080", y)
	inX := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:9090"), Namespace: x}
	inY := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:9091"), Namespace: y}
	s := ServerSpec{Name: "s", Addr: netip.MustParseAddr("10.68.0.1"), Port: 8080, Namespace: y, Weight: 1}
	sp := spec1(inX, BackendSpec{Servers: []ServerSpec{s}})
	sp.Frontends[0].Tenant = "a"
	sp.Frontends = append(sp.Frontends, FrontendSpec{Name: "g", Tenant: "b", Binds: []BindSpec{inY}, Backend: "b"})
	v.e.Apply(sp)
	expectTag(v, y, "127.0.0.1:9091", y)
	var c *net.TCPConn
	eventually(t, "listener in X", func() error {
		cc, err := v.dial(x, "127.0.0.1:9090")
		if err == nil {
			c = cc
		}
		return err
	})
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	c.Close()
	if n > 0 {
		t.Errorf("tenant a's frontend reached a server in tenant b's namespace: served %q, want refused", buf[:n])
	}
	eventually(t, "refusal counter", func() error {
		if f := v.e.Refusals("f")[reasonTenant]; f != 1 {
			return fmt.Errorf("tenant refusals of f = %d, want 1 (%v)", f, v.e.Refusals("f"))
		}
		return nil
	})
	if g := v.e.Refusals("g")[reasonTenant]; g != 0 {
		t.Errorf("tenant refusals of g = %d, want 0", g)
	}
}

// registerTenant registers ns as an allowlisted run-time namespace of tenant.
func (v *env) registerTenant(ns, tenant string) {
	v.t.Helper()
	if err := v.reg.Register(netns.Entry{Name: ns, Source: "cni", Tenant: tenant, Allowed: true}); err != nil {
		v.t.Fatal(err)
	}
}
