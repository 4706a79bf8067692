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

// TestSharedNamespaceOneTenant: one kernel namespace belongs to at most
// one tenant. Two attachments of one namespace (a pod on two networks,
// --network container:X) are both registered when they are of one tenant;
// one of another tenant is refused (a problem on it, not registered, not
// exposed), and so is an attachment of a namespace that is another
// tenant's static or API namespace. When the first holder goes, the refused one
// is registered at the next plan.
func TestSharedNamespaceOneTenant(t *testing.T) {
	testns.RequireRoot(t)
	td := startTestDaemon(t, "# attachments only\n", "")
	ns, static := testns.New(t, "S"), testns.New(t, "T")
	set := manifest.Set{Tenants: []manifest.Tenant{
		tenant("ta", nil, manifest.Selector{Network: "net-a*"}),
		tenant("tb", nil, manifest.Selector{Network: "net-b"}),
		tenant("tc", []string{static}),
	}}
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	post := func(a api.Attachment) api.Attachment {
		t.Helper()
		var got api.Attachment
		if code, e := td.call("POST", "/v1/attachments", a, &got); code != 201 {
			t.Fatalf("POST %s: %d %+v", a.ContainerID, code, e)
		}
		return got
	}
	a := attachmentIn("c0", ns, map[string]string{hooks.MetaNetwork: "net-a"})
	a2 := attachmentIn("c0", ns, map[string]string{hooks.MetaNetwork: "net-a2"})
	a2.IfName = "eth1"
	b := attachmentIn("c1", ns, map[string]string{hooks.MetaNetwork: "net-b"})
	b.PortMappings = []api.PortMapping{{HostIP: "127.0.0.1", HostPort: 20210, ContainerPort: 8080, Protocol: "tcp"}}
	s := attachmentIn("c2", static, map[string]string{hooks.MetaNetwork: "net-a"})
	post(a)
	if got := post(a2); len(got.Problems) != 0 || got.Owner != "ta" {
		t.Errorf("second attachment of ta's namespace, also ta's: owner %q problems %v, want ta and none", got.Owner, got.Problems)
	}
	got := post(b)
	if p := strings.Join(got.Problems, ";"); !strings.Contains(p, "of tenant ta; a namespace belongs to at most one tenant") || len(got.Exposures) != 0 {
		t.Errorf("tb's attachment of ta's namespace: exposures %+v problems %v, want refused", got.Exposures, got.Problems)
	}
	got = post(s)
	if p := strings.Join(got.Problems, ";"); !strings.Contains(p, "already "+static+" of tenant tc") {
		t.Errorf("ta's attachment of tc's static namespace: problems %v, want refused", got.Problems)
	}
	// An API namespace (root's, of its tenant) holds its kernel namespace too.
	apiNS := testns.New(t, "N")
	if code, e := td.call("POST", "/v1/namespaces", api.Namespace{Name: "api-ns", Path: "/var/run/netns/" + apiNS, Tenant: "tb"}, nil); code != 201 {
		t.Fatalf("POST namespace: %d %+v", code, e)
	}
	n := attachmentIn("c3", apiNS, map[string]string{hooks.MetaNetwork: "net-a"})
	got = post(n)
	if p := strings.Join(got.Problems, ";"); !strings.Contains(p, "already api-ns of tenant tb") {
		t.Errorf("ta's attachment of tb's API namespace: problems %v, want refused", got.Problems)
	}
	reg := td.d.Registry()
	for _, c := range []struct {
		key    api.AttachmentKey
		tenant string
		want   bool
	}{{a.AttachmentKey, "ta", true}, {a2.AttachmentKey, "ta", true}, {b.AttachmentKey, "tb", false}, {s.AttachmentKey, "ta", false},
		{n.AttachmentKey, "ta", false}} {
		name := td.d.attachmentName(c.key)
		if reg.Known(name) != c.want || (reg.Admit(c.tenant, name) == nil) != c.want {
			t.Errorf("%s (%s): registered %v, Admit(%s) %v; want %v", c.key.ContainerID, name, reg.Known(name), c.tenant,
				reg.Admit(c.tenant, name), c.want)
		}
	}
	for _, k := range []api.AttachmentKey{a.AttachmentKey, a2.AttachmentKey} {
		if code, e := td.call("DELETE", "/v1/attachments/"+k.ContainerID+"/"+k.IfName, nil, nil); code/100 != 2 {
			t.Fatalf("DELETE %v: %d %+v", k, code, e)
		}
	}
	if name := td.d.attachmentName(b.AttachmentKey); !reg.Known(name) || reg.Admit("tb", name) != nil {
		t.Errorf("ta's attachments gone: tb's %s registered %v, want registered", name, reg.Known(name))
	}
}
