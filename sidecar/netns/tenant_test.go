package netns

import (
	"errors"
	"testing"

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
