package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// Host ports of these tests: the tenantsr range 20100-20199.

func tenant(name string, namespaces []string, sel ...manifest.Selector) manifest.Tenant {
	t := manifest.Tenant{Meta: manifest.Meta{Name: name}, Spec: manifest.TenantSpec{Select: sel}}
	for _, n := range namespaces {
		t.Spec.Namespaces = append(t.Spec.Namespaces, manifest.StaticNamespace{Name: n})
	}
	return t
}

func attachmentIn(id, ns string, meta map[string]string) api.Attachment {
	return api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: id, IfName: "eth0"}, Source: api.SourceCNI,
		Netns: filepath.Join("/var/run/netns", ns), IPs: []string{"127.0.0.1/8"}, Metadata: meta}
}

// TestTenantIndexProblems: every problem of a manifest set is reported
// with the position the decoder recorded, and a valid set has none.
func TestTenantIndexProblems(t *testing.T) {
	pos := map[string]manifest.Pos{
		"Tenant/a":                         {File: "a.yaml", Line: 1, Col: 1},
		"Tenant/b.spec.namespaces[0].name": {File: "b.yaml", Line: 7, Col: 13},
		"Exposure/web":                     {File: "x.yaml", Line: 2, Col: 1},
		"Exposure/web.spec.containerPort":  {File: "x.yaml", Line: 9, Col: 20},
		"Service/db.spec.target.namespace": {File: "s.yaml", Line: 11, Col: 18},
	}
	tests := []struct {
		name string
		set  manifest.Set
		want []string // substrings of the error; none: valid
	}{
		{name: "valid", set: manifest.Set{Tenants: []manifest.Tenant{tenant("a", []string{"na"}), tenant("b", []string{"nb"})},
			Exposures: []manifest.Exposure{{Meta: manifest.Meta{Name: "web", Tenant: "a"},
				Spec: manifest.ExposureSpec{ContainerPort: 80, PortRange: "20100-20109"}}},
			Services: []manifest.Service{{Meta: manifest.Meta{Name: "db", Tenant: "a"},
				Spec: manifest.ServiceSpec{Listen: "127.0.0.1:5432", Target: manifest.Endpoint{Addr: "10.0.0.1:5432", Namespace: "na"}}}}}},
		{name: "namespace of two tenants", set: manifest.Set{Tenants: []manifest.Tenant{tenant("a", []string{"n1"}), tenant("b", []string{"n1"})}},
			want: []string{`b.yaml:7:13: namespace "n1" already belongs to tenant "a"`}},
		{name: "tenant twice", set: manifest.Set{Tenants: []manifest.Tenant{tenant("a", nil), tenant("a", nil)}},
			want: []string{`a.yaml:1:1: tenant "a" is defined twice`}},
		{name: "bad glob", set: manifest.Set{Tenants: []manifest.Tenant{tenant("a", nil, manifest.Selector{Network: "[x"})}},
			want: []string{`network "[x" is not a valid glob`}},
		{name: "exposure of no tenant", set: manifest.Set{Exposures: []manifest.Exposure{{Meta: manifest.Meta{Name: "web", Tenant: "zz"},
			Spec: manifest.ExposureSpec{ContainerPort: 80, HostPort: 20100}}}},
			want: []string{`tenant "zz" is not defined`}},
		{name: "exposure ports", set: manifest.Set{Tenants: []manifest.Tenant{tenant("a", nil)},
			Exposures: []manifest.Exposure{{Meta: manifest.Meta{Name: "web", Tenant: "a"},
				Spec: manifest.ExposureSpec{ContainerPort: 0, HostPort: 20100, PortRange: "1-2"}}}},
			want: []string{"x.yaml:9:20: containerPort 0", "x.yaml:2:1: give exactly one of hostPort"}},
		{name: "bad range", set: manifest.Set{Tenants: []manifest.Tenant{tenant("a", nil)},
			Exposures: []manifest.Exposure{{Meta: manifest.Meta{Name: "web", Tenant: "a"},
				Spec: manifest.ExposureSpec{ContainerPort: 80, PortRange: "20110-20100"}}}},
			want: []string{`portRange "20110-20100"`}},
		{name: "service into another tenant", set: manifest.Set{Tenants: []manifest.Tenant{tenant("a", nil), tenant("b", []string{"nb"})},
			Services: []manifest.Service{{Meta: manifest.Meta{Name: "db", Tenant: "a"},
				Spec: manifest.ServiceSpec{Listen: "127.0.0.1:5432", Target: manifest.Endpoint{Addr: "10.0.0.1:5432", Namespace: "nb"}}}}},
			want: []string{`s.yaml:11:18: namespace "nb" belongs to tenant "b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.set.Positions = pos
			err := buildTenantIndex(tt.set).err
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("valid set refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tt.want)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %v is not config.ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestTenantOwnership: an attachment matched by one tenant belongs to it
// (its registry entry, its TLV allowlist); matched by two, it belongs to
// neither, and the overlap is reported on it. A static namespace is
// registered with its tenant.
func TestTenantOwnership(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	nsA, nsX, nsStatic := testns.New(t, "A"), testns.New(t, "X"), testns.New(t, "S")
	set := manifest.Set{Tenants: []manifest.Tenant{
		tenant("ta", []string{nsStatic}, manifest.Selector{Network: "net-a"}, manifest.Selector{PodNamespace: "both"}),
		tenant("tb", nil, manifest.Selector{Network: "net-b"}, manifest.Selector{PodName: "both-*"}),
	}}
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	var got api.Attachment
	a := attachmentIn("ca", nsA, map[string]string{hooks.MetaNetwork: "net-a"})
	if code, e := td.call("POST", "/v1/attachments", a, &got); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if got.Owner != "ta" || len(got.Problems) != 0 {
		t.Errorf("owner %q problems %v, want ta and none", got.Owner, got.Problems)
	}
	x := attachmentIn("cx", nsX, map[string]string{hooks.MetaPodNamespace: "both", hooks.MetaPodName: "both-1"})
	if code, e := td.call("POST", "/v1/attachments", x, &got); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if got.Owner != netns.DefaultTenant || !strings.Contains(strings.Join(got.Problems, ";"), "claimed by tenants ta, tb") {
		t.Errorf("owner %q problems %v, want default and the overlap of ta and tb", got.Owner, got.Problems)
	}
	// The hook's own tenant: taken for a tenant without selectors, not for
	// one with selectors that do not match.
	h1 := attachmentIn("ch1", testns.New(t, "H"), map[string]string{hooks.MetaNetwork: "net-z"})
	h1.Tenant = "legacy"
	if code, e := td.call("POST", "/v1/attachments", h1, &got); code != 201 || got.Owner != "legacy" {
		t.Errorf("hook tenant legacy (no manifest): %d %+v owner %q, want legacy", code, e, got.Owner)
	}
	h2 := attachmentIn("ch2", testns.New(t, "H"), map[string]string{hooks.MetaNetwork: "net-z"})
	h2.Tenant = "ta"
	got = api.Attachment{}
	if code, e := td.call("POST", "/v1/attachments", h2, &got); code != 201 || got.Owner != netns.DefaultTenant ||
		!strings.Contains(strings.Join(got.Problems, ";"), "the hook asks for tenant ta, whose spec.select does not match") {
		t.Errorf("hook tenant ta, selectors not matching: %d %+v owner %q problems %v", code, e, got.Owner, got.Problems)
	}
	reg := td.d.Registry()
	nameA, nameX := td.d.attachmentName(a.AttachmentKey), td.d.attachmentName(x.AttachmentKey)
	for _, c := range []struct {
		tenant, name string
		want         bool
	}{
		{"ta", nameA, true}, {"tb", nameA, false}, {"default", nameA, false},
		{"ta", nsStatic, true}, {"tb", nsStatic, false}, {"default", nsStatic, false},
		{"ta", nameX, false}, {"tb", nameX, false}, {"default", nameX, true},
	} {
		if got := reg.Admit(c.tenant, c.name) == nil; got != c.want {
			t.Errorf("Admit(%s, %s) = %v, want %v", c.tenant, c.name, got, c.want)
		}
	}
	if err := reg.Admit("tb", nameA); !errors.Is(err, netns.ErrOtherTenant) {
		t.Errorf("tb selecting ta's namespace: %v, want ErrOtherTenant", err)
	}
}

// TestTenantRefsRefused: objects naming another tenant's namespace are
// refused at plan time with their position: an API server in a default
// backend naming a tenant's static namespace, a manifest taking a name
// the files use.
func TestTenantRefsRefused(t *testing.T) {
	td := startTestDaemon(t, "namespace_list\n    namespace filens\nbackend be\n    server s 127.0.0.1:20101\n", "")
	nsStatic := testns.New(t, "S")
	if err := td.d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{tenant("ta", []string{nsStatic})}}, false); err != nil {
		t.Fatal(err)
	}
	srv := api.Server{Name: "x", Addr: "10.0.0.1:80", Namespace: nsStatic}
	code, e := td.call("POST", "/v1/backends/be/servers", srv, nil)
	if code != 400 || !strings.Contains(e.Error+strings.Join(e.Details, ";"), `of tenant "default" names namespace "`+nsStatic+`" of tenant "ta"`) {
		t.Errorf("server into tenant ta's namespace: %d %+v, want 400 naming both tenants", code, e)
	}
	err := td.d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{tenant("ta", []string{"filens"})},
		Positions: map[string]manifest.Pos{"Tenant/ta.spec.namespaces[0].name": {File: "t.yaml", Line: 4, Col: 9}}}, false)
	if err == nil || !strings.Contains(err.Error(), `t.yaml:4:9: namespace "filens" of tenant "ta" is named by the configuration files`) {
		t.Errorf("tenant taking a name of the files: %v", err)
	}
	if err := td.d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{tenant("ta", []string{"filens"})}}, true); err == nil {
		t.Error("dry run accepted what the apply refuses")
	}
	// A tenant's own frontend and server may not name another tenant's
	// namespace either; the error is at the manifest's field.
	nsB := testns.New(t, "B")
	tb := tenant("tb", []string{nsB})
	ta := tenant("ta", []string{nsStatic})
	ta.Spec.Frontends = []api.Frontend{{Name: "fa", Backend: "ba", Binds: []api.Bind{{Addr: "127.0.0.1:20102", Namespace: nsB}}}}
	ta.Spec.Backends = []api.Backend{{Name: "ba", Servers: []api.Server{{Name: "s", Addr: "10.0.0.1:80", Namespace: nsB}}}}
	set := manifest.Set{Tenants: []manifest.Tenant{ta, tb}, Positions: map[string]manifest.Pos{
		"Tenant/ta.spec.frontends[0].binds[0]":  {File: "a.yaml", Line: 11, Col: 9},
		"Tenant/ta.spec.backends[0].servers[0]": {File: "a.yaml", Line: 17, Col: 9},
	}}
	err = td.d.ApplyManifests(set, false)
	t.Logf("refused: %v", err)
	for _, want := range []string{`of tenant "ta" names namespace "` + nsB + `" of tenant "tb"`, "a.yaml:11:9: ", "a.yaml:17:9: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tenant ta's objects in tb's namespace: %v, want %q", err, want)
		}
	}
	ta.Spec.Frontends[0].Binds[0].Namespace, ta.Spec.Backends[0].Servers[0].Namespace = nsStatic, nsStatic
	if err := td.d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{ta, tb}}, false); err != nil {
		t.Errorf("tenant ta's objects in its own namespace: %v", err)
	}
}

// TestExposureRules: an Exposure rule with a port range gives every
// matching attachment of its tenant its own port, reports it in the
// attachment's exposures, serves it, keeps it across a restart, and
// removes it on DEL; a fixed-port rule serves the first container only;
// limits.maxExposedPorts is enforced with a problem.
func TestExposureRules(t *testing.T) {
	testns.RequireRoot(t)
	state := filepath.Join(t.TempDir(), "state.json")
	td := startTestDaemon(t, "# attachments only\n", state)
	var nss []string
	for i := 0; i < 3; i++ {
		ns := testns.New(t, "E")
		serveTagIn(t, ns, 8080, fmt.Sprintf("c%d", i))
		nss = append(nss, ns)
	}
	ta := tenant("ta", nil, manifest.Selector{Network: "net-a"})
	rules := []manifest.Exposure{
		{Meta: manifest.Meta{Name: "web", Tenant: "ta"}, Spec: manifest.ExposureSpec{ContainerPort: 8080,
			HostAddr: "127.0.0.1", PortRange: "20110-20111", Target: "loopback"}},
		{Meta: manifest.Meta{Name: "fixed", Tenant: "ta"}, Spec: manifest.ExposureSpec{ContainerPort: 8080,
			HostAddr: "127.0.0.1", HostPort: 20115, Target: "loopback"}}}
	if err := td.d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{ta}, Exposures: rules}, false); err != nil {
		t.Fatal(err)
	}
	ports := map[int]string{}
	byKey := map[string]int{}
	for i, ns := range nss {
		a := attachmentIn(fmt.Sprintf("c%d", i), ns, map[string]string{hooks.MetaNetwork: "net-a"})
		var got api.Attachment
		if code, e := td.call("POST", "/v1/attachments", a, &got); code != 201 {
			t.Fatalf("POST: %d %+v", code, e)
		}
		var web []api.Exposure
		for _, x := range got.Exposures {
			if x.Rule == "web" {
				web = append(web, x)
			}
		}
		if i == 2 {
			// The range is full and the fixed port is the first container's.
			p := strings.Join(got.Problems, ";")
			if len(got.Exposures) != 0 || !strings.Contains(p, "every port of 20110-20111") || !strings.Contains(p, "127.0.0.1:20115 is already in use") {
				t.Errorf("third container: exposures %+v problems %v, want the range full and the fixed port taken", got.Exposures, got.Problems)
			}
			continue
		}
		if len(web) != 1 || web[0].ContainerPort != 8080 || web[0].HostIP != "127.0.0.1" {
			t.Fatalf("container %d: exposures %+v problems %v, want one of rule web", i, got.Exposures, got.Problems)
		}
		p := web[0].HostPort
		if p < 20110 || p > 20111 || ports[p] != "" {
			t.Fatalf("container %d got port %d (taken by %q), want a free one of 20110-20111", i, p, ports[p])
		}
		ports[p], byKey[a.ContainerID] = fmt.Sprintf("c%d", i), p
	}
	for p, tag := range ports {
		expectAnswer(t, fmt.Sprintf("127.0.0.1:%d", p), tag)
	}
	expectAnswer(t, "127.0.0.1:20115", "c0")

	// A restart gives every container the port it had.
	td.stop()
	td2 := startTestDaemon(t, "# attachments only\n", state)
	for id, p := range byKey {
		v, ok := td2.d.attachmentView(api.AttachmentKey{ContainerID: id, IfName: "eth0"})
		i := slices.IndexFunc(v.Exposures, func(x api.Exposure) bool { return x.Rule == "web" })
		if !ok || i < 0 || v.Exposures[i].HostPort != p {
			t.Errorf("%s: after restart %+v, want rule web on %d", id, v.Exposures, p)
		}
	}

	// A changed manifest reconciles: the tenant's limit leaves one port.
	ta.Spec.Limits.MaxExposedPorts = 1
	if err := td2.d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{ta}, Exposures: rules}, false); err != nil {
		t.Fatal(err)
	}
	v, _ := td2.d.attachmentView(api.AttachmentKey{ContainerID: "c1", IfName: "eth0"})
	if len(v.Exposures) != 0 || !strings.Contains(strings.Join(v.Problems, ";"), "tenant ta has reached limits.maxExposedPorts (1)") {
		t.Errorf("over the limit: exposures %+v problems %v", v.Exposures, v.Problems)
	}
	waitFor(t, "c1's port closed", func() error {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", byKey["c1"])); err == nil {
			c.Close()
			return fmt.Errorf("port %d still accepts", byKey["c1"])
		}
		return nil
	})
	// DEL closes its listeners.
	if code, e := td2.call("DELETE", "/v1/attachments/c0/eth0", nil, nil); code != 204 && code != 200 {
		t.Fatalf("DELETE: %d %+v", code, e)
	}
	// c1, no longer over the limit, gets its port back.
	v, _ = td2.d.attachmentView(api.AttachmentKey{ContainerID: "c1", IfName: "eth0"})
	if len(v.Exposures) != 1 || v.Exposures[0].HostPort != byKey["c1"] {
		t.Errorf("c1 after c0's DEL: %+v %v, want its port %d again", v.Exposures, v.Problems, byKey["c1"])
	}
	waitFor(t, "c0's ports closed after DEL", func() error {
		for _, p := range []int{byKey["c0"], 20115} {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				c.Close()
				return fmt.Errorf("port %d still accepts", p)
			}
		}
		return nil
	})
}

// TestServiceRule: a Service rule makes a listener inside every matching
// container that reaches the target on the host; DEL removes it.
func TestServiceRule(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	ln, err := net.Listen("tcp4", "127.0.0.1:20120")
	if err != nil {
		t.Fatal(err)
	}
	serveTag(t, ln, "db\n")
	ns := testns.New(t, "V")
	set := manifest.Set{Tenants: []manifest.Tenant{tenant("ta", nil, manifest.Selector{Network: "net-a"})},
		Services: []manifest.Service{{Meta: manifest.Meta{Name: "db", Tenant: "ta"},
			Spec: manifest.ServiceSpec{Listen: "127.0.0.1:5432", Target: manifest.Endpoint{Addr: "127.0.0.1:20120"}}}}}
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	var got api.Attachment
	a := attachmentIn("sv", ns, map[string]string{hooks.MetaNetwork: "net-a"})
	if code, e := td.call("POST", "/v1/attachments", a, &got); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if len(got.Services) != 1 || got.Services[0].Listen != "127.0.0.1:5432" || got.Services[0].Rule != "db" {
		t.Fatalf("services %+v problems %v", got.Services, got.Problems)
	}
	var out string
	waitFor(t, "the service answering inside the container", func() error {
		b, err := dialIn(ns, "127.0.0.1:5432")
		if out = strings.TrimSpace(b); err != nil || out != "db" {
			return fmt.Errorf("got %q, %v", out, err)
		}
		return nil
	})
	// A container that listens on the Service's address itself keeps it;
	// the conflict is reported on the attachment.
	busy := testns.New(t, "W")
	serveTagIn(t, busy, 5432, "own")
	var other api.Attachment
	if code, e := td.call("POST", "/v1/attachments", attachmentIn("busy", busy, map[string]string{hooks.MetaNetwork: "net-a"}), &other); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if p := strings.Join(other.Problems, ";"); len(other.Services) != 0 || !strings.Contains(p, "Service db: 127.0.0.1:5432 inside the container: conflict") {
		t.Errorf("busy container: services %+v problems %v, want the conflict reported", other.Services, other.Problems)
	}
	if b, err := dialIn(busy, "127.0.0.1:5432"); err != nil || b != "own" {
		t.Errorf("busy container's own listener: %q %v", b, err)
	}
	if code, e := td.call("DELETE", "/v1/attachments/sv/eth0", nil, nil); code != 204 && code != 200 {
		t.Fatalf("DELETE: %d %+v", code, e)
	}
	if len(td.d.engine.ListenersOf(got.Services[0].Frontend)) != 0 {
		t.Error("the service listener outlives DEL")
	}
}

// TestTenantLogNamesOverlap: an overlap is logged as well as reported,
// when the container comes and when a manifest makes it.
func TestTenantLogNamesOverlap(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	ns := testns.New(t, "O")
	set := manifest.Set{Tenants: []manifest.Tenant{tenant("ta", nil, manifest.Selector{}), tenant("tb", nil, manifest.Selector{})}}
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	if code, e := td.call("POST", "/v1/attachments", attachmentIn("ov", ns, nil), nil); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if !strings.Contains(td.log.String(), "claimed by tenants ta, tb") {
		t.Errorf("overlap not logged:\n%s", td.log)
	}
	set.Tenants = append(set.Tenants, tenant("tc", nil, manifest.Selector{}))
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(td.log.String(), "tenant selectors overlap") || !strings.Contains(td.log.String(), "claimed by tenants ta, tb, tc") {
		t.Errorf("overlap made by an apply not logged:\n%s", td.log)
	}
}

// TestTenantViewsOverlaps: get tenants shows a container claimed by two
// tenants' selectors on each of them (with both names), not on the
// default tenant that holds it, nor a container one tenant claims alone;
// a member of one tenant sees it on that tenant only. Changing a selector
// so that one tenant matches ends the overlap.
func TestTenantViewsOverlaps(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	set := manifest.Set{Tenants: []manifest.Tenant{
		tenant("ta", nil, manifest.Selector{Network: "net-a"}, manifest.Selector{PodNamespace: "both"}),
		tenant("tb", nil, manifest.Selector{Network: "net-b"}, manifest.Selector{PodName: "both-*"}),
	}}
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	x := attachmentIn("cx", testns.New(t, "X"), map[string]string{hooks.MetaPodNamespace: "both", hooks.MetaPodName: "both-1"})
	a := attachmentIn("ca", testns.New(t, "A"), map[string]string{hooks.MetaNetwork: "net-a"})
	for _, att := range []api.Attachment{x, a} {
		if code, e := td.call("POST", "/v1/attachments", att, nil); code != 201 {
			t.Fatalf("POST: %d %+v", code, e)
		}
	}
	want := []api.TenantOverlap{{AttachmentKey: x.AttachmentKey, Namespace: td.d.attachmentName(x.AttachmentKey),
		Tenants: []string{"ta", "tb"}}}
	overlaps := func(acc access) map[string][]api.TenantOverlap {
		m := map[string][]api.TenantOverlap{}
		for _, v := range td.d.tenantViews(acc) {
			m[v.Name] = v.Overlaps
		}
		return m
	}
	got := overlaps(access{all: true, who: "root"})
	for _, name := range []string{"ta", "tb"} {
		if !slices.EqualFunc(got[name], want, func(a, b api.TenantOverlap) bool {
			return a.AttachmentKey == b.AttachmentKey && a.Namespace == b.Namespace && slices.Equal(a.Tenants, b.Tenants)
		}) {
			t.Errorf("tenant %s: overlaps %+v, want %+v", name, got[name], want)
		}
	}
	if len(got[netns.DefaultTenant]) != 0 {
		t.Errorf("default tenant: overlaps %+v, want none", got[netns.DefaultTenant])
	}
	if m := overlaps(access{tenants: []string{"tb"}, who: "uid 1000"}); len(m) != 1 || len(m["tb"]) != 1 {
		t.Errorf("a member of tb sees %+v, want tb's one overlap only", m)
	}
	// tb no longer selects by pod name: ta alone claims cx.
	set = manifest.Set{Tenants: []manifest.Tenant{set.Tenants[0], tenant("tb", nil, manifest.Selector{Network: "net-b"})}}
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	for name, o := range overlaps(access{all: true, who: "root"}) {
		if len(o) != 0 {
			t.Errorf("after the selector change, tenant %s: overlaps %+v, want none", name, o)
		}
	}
}

// dialIn connects to addr from inside the namespace ns and reads what
// the server says until it closes.
func dialIn(ns, addr string) (string, error) {
	h, err := netns.OpenPath("/var/run/netns/"+ns, ns)
	if err != nil {
		return "", err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, netip.MustParseAddrPort(addr), netns.DialOptions{})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestParsePortRange: LOW-HIGH with 1 <= LOW <= HIGH <= 65535.
func TestParsePortRange(t *testing.T) {
	for _, tt := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"20100-20199", 20100, 20199, true},
		{"1-65535", 1, 65535, true},
		{"80-80", 80, 80, true},
		{" 80 - 81 ", 80, 81, true},
		{"81-80", 0, 0, false},
		{"0-10", 0, 0, false},
		{"1-65536", 0, 0, false},
		{"80", 0, 0, false},
		{"a-b", 0, 0, false},
		{"-5-10", 0, 0, false},
		{"", 0, 0, false},
	} {
		lo, hi, ok := parsePortRange(tt.in)
		if ok != tt.ok || (ok && (lo != tt.lo || hi != tt.hi)) {
			t.Errorf("parsePortRange(%q) = %d, %d, %v; want %d, %d, %v", tt.in, lo, hi, ok, tt.lo, tt.hi, tt.ok)
		}
	}
}

// FuzzParsePortRange: an accepted range is within 1..65535 and ordered,
// and preferredPort always falls inside it.
func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"20100-20199", "1-65535", "80-80", "81-80", "x", "-1-2", "1--2"} {
		f.Add(s, "c", "eth0", "web")
	}
	f.Fuzz(func(t *testing.T, s, id, ifname, rule string) {
		lo, hi, ok := parsePortRange(s)
		if !ok {
			return
		}
		if lo < 1 || hi > 65535 || lo > hi {
			t.Fatalf("%q accepted as %d-%d", s, lo, hi)
		}
		if p := preferredPort(api.AttachmentKey{ContainerID: id, IfName: ifname}, rule, lo, hi); p < lo || p > hi {
			t.Fatalf("preferred port %d outside %d-%d", p, lo, hi)
		}
	})
}

// TestRuleExposureShape: what an Exposure rule makes for a container: a
// listener on the rule's host address and port in the daemon's namespace,
// a server at the container's address (or its loopback) inside its
// namespace, PROXY v2 when asked, the rule's maxconn, the tenant on both.
func TestRuleExposureShape(t *testing.T) {
	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "c1", IfName: "eth0"}, Name: "web-1",
		IPs: []string{"10.1.2.3/24"}}
	set := manifest.Set{Tenants: []manifest.Tenant{tenant("ta", nil)}, Exposures: []manifest.Exposure{
		{Meta: manifest.Meta{Name: "web", Tenant: "ta"}, Spec: manifest.ExposureSpec{ContainerPort: 8080,
			HostAddr: "127.0.0.1", HostPort: 20130, SendProxyV2: true, MaxConn: 7}},
		{Meta: manifest.Meta{Name: "lo", Tenant: "ta"}, Spec: manifest.ExposureSpec{ContainerPort: 9090,
			PortRange: "20140-20149", Target: "loopback"}}}}
	ix := buildTenantIndex(set)
	if ix.err != nil {
		t.Fatal(ix.err)
	}
	rs := ix.rules["ta"]
	x := ruleExposure(a, "ta", rs[0], rs[0].hostPort)
	srv := x.backend.Servers[0]
	if x.bind.Addr.String() != "127.0.0.1:20130" || x.bind.Namespace != "" || !x.bind.NoTakeover ||
		srv.Addr.String() != "10.1.2.3" || srv.Port != 8080 || srv.Namespace != "web-1" || srv.SendProxy != 2 ||
		x.frontend.MaxConn != 7 || x.frontend.Tenant != "ta" || x.backend.Tenant != "ta" || x.rule != "web" {
		t.Errorf("fixed rule: bind %+v server %+v frontend %+v", x.bind, srv, x.frontend)
	}
	if x.mapping != (api.PortMapping{HostPort: 20130, ContainerPort: 8080, Protocol: "tcp", HostIP: "127.0.0.1"}) {
		t.Errorf("fixed rule reported as %+v", x.mapping)
	}
	p := preferredPort(a.AttachmentKey, "lo", 20140, 20149)
	y := ruleExposure(a, "ta", rs[1], p)
	if y.bind.Addr.String() != fmt.Sprintf("0.0.0.0:%d", p) || y.backend.Servers[0].Addr.String() != "127.0.0.1" ||
		y.lo != 20140 || y.hi != 20149 || y.backend.Servers[0].SendProxy != 0 {
		t.Errorf("range rule: bind %+v server %+v range %d-%d", y.bind, y.backend.Servers[0], y.lo, y.hi)
	}
	if p2 := preferredPort(a.AttachmentKey, "lo", 20140, 20149); p2 != p {
		t.Errorf("preferred port not stable: %d then %d", p, p2)
	}
}

// TestTenantMaxListeners: limits.maxListeners counts the tenant's own
// frontends' binds and the listeners its rules make.
func TestTenantMaxListeners(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	ns1, ns2 := testns.New(t, "L"), testns.New(t, "L")
	ta := tenant("ta", nil, manifest.Selector{Network: "net-a"})
	ta.Spec.Limits.MaxListeners = 2
	ta.Spec.Frontends = []api.Frontend{{Name: "fa", Backend: "ba", Binds: []api.Bind{{Addr: "127.0.0.1:20125"}}}}
	ta.Spec.Backends = []api.Backend{{Name: "ba", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:20126"}}}}
	set := manifest.Set{Tenants: []manifest.Tenant{ta}, Services: []manifest.Service{{Meta: manifest.Meta{Name: "db", Tenant: "ta"},
		Spec: manifest.ServiceSpec{Listen: "127.0.0.1:5432", Target: manifest.Endpoint{Addr: "127.0.0.1:20126"}}}}}
	if err := td.d.ApplyManifests(set, false); err != nil {
		t.Fatal(err)
	}
	var first, second api.Attachment
	if code, e := td.call("POST", "/v1/attachments", attachmentIn("l1", ns1, map[string]string{hooks.MetaNetwork: "net-a"}), &first); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if code, e := td.call("POST", "/v1/attachments", attachmentIn("l2", ns2, map[string]string{hooks.MetaNetwork: "net-a"}), &second); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if len(first.Services) != 1 || len(first.Problems) != 0 {
		t.Errorf("first container: services %+v problems %v, want its listener (2 of 2)", first.Services, first.Problems)
	}
	if len(second.Services) != 0 || !strings.Contains(strings.Join(second.Problems, ";"), "tenant ta has reached limits.maxListeners (2)") {
		t.Errorf("second container: services %+v problems %v, want the limit", second.Services, second.Problems)
	}
}

// TestRestoreDropsInvalidRule: a saved Exposure that no longer validates
// (its tenant is gone) is dropped at start, with a log line; the rest of
// the manifests stay and the daemon starts.
func TestRestoreDropsInvalidRule(t *testing.T) {
	testns.RequireRoot(t)
	state := filepath.Join(t.TempDir(), "state.json")
	st := State{Manifests: manifest.Set{Tenants: []manifest.Tenant{tenant("ta", nil)},
		Exposures: []manifest.Exposure{
			{Meta: manifest.Meta{Name: "gone", Tenant: "zz"}, Spec: manifest.ExposureSpec{ContainerPort: 80, HostPort: 20105}},
			{Meta: manifest.Meta{Name: "web", Tenant: "ta"}, Spec: manifest.ExposureSpec{ContainerPort: 80, HostPort: 20106}}}}}
	if err := (&store{path: state}).save(st); err != nil {
		t.Fatal(err)
	}
	td := startTestDaemon(t, "# attachments only\n", state)
	got, _, _ := td.d.snapshotState()
	if len(got.Manifests.Tenants) != 1 || len(got.Manifests.Exposures) != 1 || got.Manifests.Exposures[0].Meta.Name != "web" {
		t.Errorf("restored manifests %+v, want tenant ta and Exposure web only", got.Manifests)
	}
	if !strings.Contains(td.log.String(), "Exposure/gone") {
		t.Errorf("the dropped rule is not logged:\n%s", td.log)
	}
}

// TestTenantTrustedProxiesApplied: a tenant's spec.proxy.trustedProxies
// narrow its frontends' own (the engine gets the peers both admit), and a
// frontend whose list shares no address with the tenant's is refused at
// its position.
func TestTenantTrustedProxiesApplied(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	doc := func(trusted string) manifest.Set {
		s, err := manifest.Decode("t.yaml", []byte(`apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: ta
spec:
  proxy:
    trustedProxies: [10.0.0.0/24]
  frontends:
    - name: ta-pp
      binds:
        - addr: 127.0.0.1:20150
          acceptProxy: true
      backend: ta-b
`+trusted+`  backends:
    - name: ta-b
      servers:
        - name: s
          addr: 127.0.0.1:1
`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := td.d.ApplyManifests(doc(""), false); err != nil {
		t.Fatal(err)
	}
	_, merged, _ := td.d.snapshotState()
	i := slices.IndexFunc(merged.Frontends, func(f *config.Frontend) bool { return f.Name == "ta-pp" })
	if i < 0 || fmt.Sprint(merged.Frontends[i].TrustedProxies) != "[10.0.0.0/24]" {
		t.Fatalf("frontend ta-pp: %+v, want trusted peers 10.0.0.0/24 (the tenant's)", merged.Frontends)
	}
	err := td.d.ApplyManifests(doc("      trustedProxies: [127.0.0.1]\n"), false)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:") || !strings.Contains(err.Error(), "no address is in both") {
		t.Fatalf("disjoint trustedProxies: %v, want refused at t.yaml:LINE:COL", err)
	}
}
