package sidecar

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

// Host ports of these tests: the fixb range 20300-20399.

// twoTenantsDoc: tenants ta and tb, selecting the CNI networks net-a and
// net-b; tb's spec gets extra (indented YAML under spec:).
func twoTenantsDoc(tbExtra string) string {
	return `apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: ta
spec:
  select:
    - network: net-a
---
apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: tb
spec:
  select:
    - network: net-b
` + tbExtra
}

func hostExposureDoc(name, tenant string, port int) string {
	return fmt.Sprintf(`---
apiVersion: nsproxy.io/v1alpha1
kind: Exposure
metadata:
  name: %s
  tenant: %s
spec:
  containerPort: 8080
  hostAddr: 127.0.0.1
  hostPort: %d
  target: loopback
`, name, tenant, port)
}

func postAttachment(t *testing.T, td *testDaemon, a api.Attachment) {
	t.Helper()
	if code, e := td.call("POST", "/v1/attachments", a, nil); code != 201 {
		t.Fatalf("POST attachment: %d %+v", code, e)
	}
}

// serveTagOnHost answers tag to every connection on 127.0.0.1:port.
func serveTagOnHost(t *testing.T, port int, tag string) {
	t.Helper()
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	serveTag(t, ln, tag)
}

// TestNewFrontendCannotTakeLiveExposure: tenant tb applies a frontend on
// the host port tenant ta's container is exposed on. The apply is refused
// at the bind's FILE:LINE:COLUMN and ta's clients keep reaching ta.
func TestNewFrontendCannotTakeLiveExposure(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	ns := testns.New(t, "H")
	serveTagIn(t, ns, 8080, "ta-container")
	serveTagOnHost(t, 20301, "tb-server")
	root := access{all: true, who: "root"}
	if _, err := td.d.applyManifests(root, manifestReq("t.yaml", twoTenantsDoc("")+hostExposureDoc("web", "ta", 20300)), opApply); err != nil {
		t.Fatal(err)
	}
	a := attachmentIn("c0", ns, map[string]string{hooks.MetaNetwork: "net-a"})
	postAttachment(t, td, a)
	expectAnswer(t, "127.0.0.1:20300", "ta-container")

	grab := `  frontends:
    - name: grab
      binds:
        - addr: 127.0.0.1:20300
      backend: tbb
  backends:
    - name: tbb
      servers:
        - name: s
          addr: 127.0.0.1:20301
`
	_, err := td.d.applyManifests(root, manifestReq("t.yaml", twoTenantsDoc(grab)+hostExposureDoc("web", "ta", 20300)), opApply)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:19:") || !strings.Contains(err.Error(), `tenant "ta" serves now`) {
		t.Fatalf("apply of a frontend on ta's live port: %v, want refused at t.yaml:19 (the bind)", err)
	}
	v, _ := td.d.attachmentView(a.AttachmentKey)
	if len(v.Exposures) != 1 || len(v.Problems) != 0 {
		t.Errorf("ta's container after the refused apply: exposures %+v problems %v", v.Exposures, v.Problems)
	}
	expectAnswer(t, "127.0.0.1:20300", "ta-container")
}

// TestNewRuleCannotTakeLivePort: a new Exposure of tenant ta whose
// container sorts before tb's asks for the host port tb's container is
// exposed on: refused at its hostPort, tb keeps the port.
func TestNewRuleCannotTakeLivePort(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	nsA, nsB := testns.New(t, "A"), testns.New(t, "B")
	serveTagIn(t, nsA, 8080, "ta")
	serveTagIn(t, nsB, 8080, "tb")
	root := access{all: true, who: "root"}
	docs := twoTenantsDoc("") + hostExposureDoc("b", "tb", 20302)
	if _, err := td.d.applyManifests(root, manifestReq("t.yaml", docs), opApply); err != nil {
		t.Fatal(err)
	}
	postAttachment(t, td, attachmentIn("c0", nsA, map[string]string{hooks.MetaNetwork: "net-a"}))
	b := attachmentIn("c1", nsB, map[string]string{hooks.MetaNetwork: "net-b"})
	postAttachment(t, td, b)
	expectAnswer(t, "127.0.0.1:20302", "tb")

	_, err := td.d.applyManifests(root, manifestReq("t.yaml", docs+hostExposureDoc("a", "ta", 20302)), opApply)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:36:13") || !strings.Contains(err.Error(), `of tenant "tb"`) {
		t.Fatalf("apply of a rule on tb's live port: %v, want refused at t.yaml:36:13 (its hostPort)", err)
	}
	if _, err := td.d.applyManifests(root, manifestReq("t.yaml", docs+hostExposureDoc("a", "ta", 20302)), opDiff); err == nil {
		t.Error("diff of the same rule validates")
	}
	v, _ := td.d.attachmentView(b.AttachmentKey)
	if len(v.Exposures) != 1 || len(v.Problems) != 0 {
		t.Errorf("tb's container: exposures %+v problems %v", v.Exposures, v.Problems)
	}
	expectAnswer(t, "127.0.0.1:20302", "tb")

	// A new container of ta matching a rule that was already there gets a
	// problem, as any ADD on a taken port does: never refused.
	if _, err := td.d.applyManifests(root, manifestReq("t.yaml", docs+hostExposureDoc("a", "ta", 20303)), opApply); err != nil {
		t.Fatal(err)
	}
	nsC := testns.New(t, "C")
	c := attachmentIn("c2", nsC, map[string]string{hooks.MetaNetwork: "net-a"})
	postAttachment(t, td, c)
	v, _ = td.d.attachmentView(c.AttachmentKey)
	if len(v.Exposures) != 0 || len(v.Problems) != 1 {
		t.Errorf("second container of rule a: exposures %+v problems %v, want the port taken", v.Exposures, v.Problems)
	}
}

// TestNewFrontendCannotTakeLiveExposureName: a frontend named like
// another tenant's live exposure is refused; the exposure keeps serving.
func TestNewFrontendCannotTakeLiveExposureName(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	ns := testns.New(t, "N")
	serveTagIn(t, ns, 8080, "ta-container")
	root := access{all: true, who: "root"}
	if _, err := td.d.applyManifests(root, manifestReq("t.yaml", twoTenantsDoc("")+hostExposureDoc("web", "ta", 20304)), opApply); err != nil {
		t.Fatal(err)
	}
	a := attachmentIn("c0", ns, map[string]string{hooks.MetaNetwork: "net-a"})
	postAttachment(t, td, a)
	v, _ := td.d.attachmentView(a.AttachmentKey)
	if len(v.Exposures) != 1 {
		t.Fatalf("exposures %+v problems %v", v.Exposures, v.Problems)
	}
	name := v.Exposures[0].Frontend
	same := fmt.Sprintf(`  frontends:
    - name: %s
      binds:
        - addr: 127.0.0.1:20305
      backend: tbb
  backends:
    - name: tbb
      servers:
        - name: s
          addr: 127.0.0.1:20306
`, name)
	_, err := td.d.applyManifests(root, manifestReq("t.yaml", twoTenantsDoc(same)+hostExposureDoc("web", "ta", 20304)), opApply)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:") || !strings.Contains(err.Error(), "choose another name") {
		t.Fatalf("apply of a frontend named %s: %v, want refused", name, err)
	}
	v, _ = td.d.attachmentView(a.AttachmentKey)
	if len(v.Exposures) != 1 || len(v.Problems) != 0 {
		t.Errorf("ta's container after the refused apply: exposures %+v problems %v", v.Exposures, v.Problems)
	}
	expectAnswer(t, "127.0.0.1:20304", "ta-container")
}

// TestMemberCannotMoveHostBinds: the host addresses a tenant's frontends
// listen on are root's to choose (the daemon binds them as root); a
// member may change everything else of its frontends.
func TestMemberCannotMoveHostBinds(t *testing.T) {
	td := startTestDaemon(t, manifestCfg, "")
	front := func(addr string, maxconn int) string {
		return tenantDoc("a", 2000) + fmt.Sprintf(`  frontends:
    - name: fa
      binds:
        - addr: %s
      backend: ba
      maxconn: %d
  backends:
    - name: ba
      servers:
        - name: s
          addr: 127.0.0.1:20309
`, addr, maxconn)
	}
	if code, e := td.call("POST", "/v1/manifests", manifestReq("a.yaml", front("127.0.0.1:20307", 10)), nil); code != 200 {
		t.Fatalf("apply as root: %d %+v", code, e)
	}
	member := func(body any) (int, string) {
		return asPeer(t, td.d, 1000, 1000, []uint32{2000}, "POST", "/v1/manifests", body)
	}
	if code, body := member(manifestReq("a.yaml", front("127.0.0.1:20307", 20))); code != 200 {
		t.Fatalf("member changing its frontend's maxconn: %d %s", code, body)
	}
	for _, addr := range []string{"127.0.0.1:20308", "0.0.0.0:22"} {
		code, body := member(manifestReq("a.yaml", front(addr, 20)))
		if code != 403 || !strings.Contains(body, "a.yaml:") || !strings.Contains(body, "spec.frontends[].binds (on the host)") {
			t.Errorf("member moving its frontend to %s: %d %s, want 403 at the tenant's spec.frontends", addr, code, body)
		}
	}
}
