package proxy

import (
	"reflect"
	"slices"
	"testing"
)

// TestSpecCompareFields: Apply skips a frontend or backend whose spec is
// unchanged, compared field by field; a new field must be compared too,
// or a change of it alone would not take effect.
func TestSpecCompareFields(t *testing.T) {
	for _, c := range []struct {
		v     any
		known []string
	}{
		{BackendSpec{}, []string{"Name", "Balance", "ConnectTimeout", "ServerTimeout", "ServerFinTimeout", "CheckTimeout", "Source", "UseSrcClientIP", "Servers"}},
		{FrontendSpec{}, []string{"Name", "Tenant", "Binds", "Backend", "MaxConn", "ClientTimeout", "ClientFinTimeout", "Proxy"}},
		{ProxyPolicy{}, []string{"HeaderTimeout", "LenientNamespace", "Trusted"}},
	} {
		typ := reflect.TypeOf(c.v)
		var got []string
		for i := 0; i < typ.NumField(); i++ {
			got = append(got, typ.Field(i).Name)
		}
		if !slices.Equal(got, c.known) {
			t.Errorf("%s has fields %v; its compare knows %v: update sameBackendSpec/sameFrontendSpec", typ.Name(), got, c.known)
		}
	}
	b := BackendSpec{Name: "b", Servers: []ServerSpec{{Name: "s", Port: 80}}}
	b2 := b
	b2.Servers = []ServerSpec{{Name: "s", Port: 81}}
	if !sameBackendSpec(b, b) || sameBackendSpec(b, b2) {
		t.Error("sameBackendSpec does not see a server's port")
	}
	f := FrontendSpec{Name: "f", Binds: []BindSpec{{V4V6: true}}}
	f2 := f
	f2.Binds = []BindSpec{{}}
	if !sameFrontendSpec(f, f) || sameFrontendSpec(f, f2) {
		t.Error("sameFrontendSpec does not see a bind")
	}
}
