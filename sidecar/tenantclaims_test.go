package sidecar

import (
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// TestOCITenantAnnotationNeedsSelector: an OCI container's annotation
// nsproxy.io/tenant (set by whoever creates the container) does not put
// it into a tenant without a selector that matches it: it stays in the
// default tenant, the attachment says why, and the tenant's Service into
// its static namespace is not given to it. A tenant whose selector takes
// OCI containers by that annotation does get them.
func TestOCITenantAnnotationNeedsSelector(t *testing.T) {
	testns.RequireRoot(t)
	td := startTestDaemon(t, "# attachments only\n", "")
	private := testns.New(t, "P")
	foreign, member := testns.New(t, "F"), testns.New(t, "M")
	set := manifest.Set{Tenants: []manifest.Tenant{
		tenant("ta", []string{private}),
		tenant("tb", nil, manifest.Selector{Source: hooks.SourceOCI, Annotations: map[string]string{hooks.MetaPrefix + "tenant": "tb"}}),
	},
		Services: []manifest.Service{{Meta: manifest.Meta{Name: "db", Tenant: "ta"},
			Spec: manifest.ServiceSpec{Listen: "127.0.0.1:5432", Target: manifest.Endpoint{Addr: "127.0.0.1:7000", Namespace: private}}}}}
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	a := attachmentIn("evil", foreign, map[string]string{hooks.MetaPrefix + "tenant": "ta"})
	a.Source, a.Tenant = api.SourceOCI, "ta"
	var got api.Attachment
	if code, e := td.call("POST", "/v1/attachments", a, &got); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if got.Owner != netns.DefaultTenant || len(got.Services) != 0 ||
		!strings.Contains(strings.Join(got.Problems, ";"), "the OCI annotation nsproxy.io/tenant asks for tenant ta") {
		t.Errorf("annotation-only claim of ta: owner %q services %+v problems %v; want default, none, the claim refused",
			got.Owner, got.Services, got.Problems)
	}
	if err := td.d.Registry().Admit("ta", td.d.attachmentName(a.AttachmentKey)); err == nil {
		t.Errorf("ta may select the foreign container's namespace")
	}
	b := attachmentIn("good", member, map[string]string{hooks.MetaPrefix + "tenant": "tb"})
	b.Source, b.Tenant = api.SourceOCI, "tb"
	got = api.Attachment{}
	if code, e := td.call("POST", "/v1/attachments", b, &got); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if got.Owner != "tb" || len(got.Problems) != 0 {
		t.Errorf("OCI container selected by tb: owner %q problems %v, want tb and none", got.Owner, got.Problems)
	}
	// A CNI network's tenant (root's conflist) is still taken by a tenant
	// without selectors.
	c := attachmentIn("cni", testns.New(t, "C"), map[string]string{hooks.MetaNetwork: "net-a"})
	c.Tenant = "ta"
	got = api.Attachment{}
	if code, e := td.call("POST", "/v1/attachments", c, &got); code != 201 || got.Owner != "ta" {
		t.Errorf("CNI network tenant ta: %d %+v owner %q problems %v, want ta", code, e, got.Owner, got.Problems)
	}
}
