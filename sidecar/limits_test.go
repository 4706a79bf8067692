package sidecar

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestMaxListenersBoundsFrontends: limits.maxListeners counts a tenant's
// own frontends' binds: a Tenant whose frontends bind more is refused at
// the first bind over the limit, and nothing listens.
func TestMaxListenersBoundsFrontends(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	doc := `apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: ta
spec:
  limits:
    maxListeners: 1
  frontends:
    - name: f
      binds:
        - addr: 127.0.0.1:20310
        - addr: 127.0.0.1:20311
      backend: b
  backends:
    - name: b
      servers:
        - name: s
          addr: 127.0.0.1:20312
`
	root := access{all: true, who: "root"}
	_, err := td.d.applyManifests(root, manifestReq("l.yaml", doc), opApply)
	if err == nil || !strings.Contains(err.Error(), "l.yaml:12:") || !strings.Contains(err.Error(), "limits.maxListeners (1)") {
		t.Fatalf("two binds under maxListeners 1: %v, want refused at l.yaml:12 (the second bind)", err)
	}
	for _, p := range []int{20310, 20311} {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			c.Close()
			t.Errorf("127.0.0.1:%d listens after the refused apply", p)
		}
	}
	one := strings.Replace(doc, "        - addr: 127.0.0.1:20311\n", "", 1)
	if _, err := td.d.applyManifests(root, manifestReq("l.yaml", one), opApply); err != nil {
		t.Fatalf("one bind under maxListeners 1: %v", err)
	}
}
