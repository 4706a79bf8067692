package netns

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestTenantAdmitAndMayUse: the registry's two isolation decisions. A
// TLV (Admit) may select only an allowlisted namespace of the frontend's
// tenant; another tenant's is ErrOtherTenant, one off every list
// ErrNotAllowed. A "namespace *" dial (MayUse) may enter the daemon's own
// namespace or one of the tenant's, and only through the handle that is
// registered under the name now.
func TestTenantAdmitAndMayUse(t *testing.T) {
	x, y, z := testns.New(t, "X"), testns.New(t, "Y"), testns.New(t, "Z")
	r, err := NewRegistry("", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.SetNames([]string{z}); err != nil { // the files' name: the default tenant's
		t.Fatal(err)
	}
	r.SetAllowed([]string{z})
	for ns, tenant := range map[string]string{x: "a", y: "b"} {
		if err := r.Register(Entry{Name: ns, Source: "cni", Tenant: tenant, Allowed: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		tenant, name string
		want         error
	}{
		{"a", x, nil}, {"b", y, nil}, {"", z, nil}, {DefaultTenant, z, nil},
		{"a", y, ErrOtherTenant}, {"b", x, ErrOtherTenant}, {"", x, ErrOtherTenant}, {"a", z, ErrOtherTenant},
		{"a", "nope", ErrNotAllowed},
	} {
		if err := r.Admit(c.tenant, c.name); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("Admit(%q, %s) = %v, want %v", c.tenant, c.name, err, c.want)
		}
	}
	hx, err := r.Wait(t.Context(), x)
	if err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]error{"a": nil, "b": ErrOtherTenant, DefaultTenant: ErrOtherTenant} {
		if err := r.MayUse(tenant, hx); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("MayUse(%s, x) = %v, want %v", tenant, err, want)
		}
	}
	if err := r.MayUse("b", r.Default()); err != nil {
		t.Errorf("the daemon's own namespace refused: %v", err)
	}
	// x's name given to another namespace (y's file): the old handle no
	// longer stands for it.
	if err := r.Register(Entry{Name: x, Path: "/var/run/netns/" + y, Source: "cni", Tenant: "a", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	if err := r.MayUse("a", hx); !errors.Is(err, ErrOtherTenant) {
		t.Errorf("MayUse through a replaced handle = %v, want ErrOtherTenant", err)
	}
}

// TestTenantChangeClosesHandle: a namespace registered again under
// another tenant gets a new handle; the old one is closed and its Context
// done, so what the old tenant had open in it (listeners, sessions a TLV
// selected) closes, and the old handle is no use to the old tenant
// (MayUse). The same holds when a run-time entry over a name the files
// also use is removed: the name goes back to the default tenant.
func TestTenantChangeClosesHandle(t *testing.T) {
	testns.RequireRoot(t)
	ns, shared := testns.New(t, "R"), testns.New(t, "Q")
	r, err := NewRegistry("", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wait := func(name string) *Handle {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h, err := r.Wait(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if err := r.Register(Entry{Name: ns, Tenant: "ta", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	h := wait(ns)
	if err := r.Register(Entry{Name: ns, Tenant: "ta", Allowed: true, Source: "cni"}); err != nil {
		t.Fatal(err)
	}
	if h2 := wait(ns); h2 != h || h.Closed() {
		t.Fatalf("same tenant again: handle replaced (%v) or closed (%v), want kept", h2 != h, h.Closed())
	}
	if err := r.Register(Entry{Name: ns, Tenant: "tb", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	h2 := wait(ns)
	if h2 == h || !h.Closed() || h.Context().Err() == nil {
		t.Errorf("tenant changed: new handle %v, old closed %v, old context done %v; want all true", h2 != h, h.Closed(), h.Context().Err() != nil)
	}
	if err := r.MayUse("ta", h); !errors.Is(err, ErrOtherTenant) {
		t.Errorf("MayUse(ta, old handle) = %v, want ErrOtherTenant", err)
	}
	if err := r.MayUse("tb", h2); err != nil {
		t.Errorf("MayUse(tb, new handle) = %v", err)
	}

	if err := r.SetNames([]string{shared}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(Entry{Name: shared, Tenant: "ta", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	hs := wait(shared)
	if err := r.MayUse("ta", hs); err != nil {
		t.Fatalf("MayUse(ta, %s) = %v", shared, err)
	}
	r.Unregister(shared)
	hs2 := wait(shared)
	if hs2 == hs || !hs.Closed() {
		t.Errorf("back to the default tenant: new handle %v, old closed %v; want both", hs2 != hs, hs.Closed())
	}
	if err := r.MayUse(DefaultTenant, hs2); err != nil {
		t.Errorf("MayUse(default, %s) = %v", shared, err)
	}
}
