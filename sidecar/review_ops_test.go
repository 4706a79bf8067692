package sidecar

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// Review of operator-facing behaviour (rev-ops): each test below fails on
// baca3f3.

// TestReviewOpsNamespaceOfAPIObjectShownAsConfig: a namespace named only by
// an API object (a server added with "namespace": N, N never registered
// with ns add and in no file) is listed with source "config", which
// api.SourceConfig defines as "a -f file; read-only through the API", and
// `nsproxy ns del N` answers 409 "comes from the configuration files or an
// attachment, not the API". No file and no attachment names it: the
// operator is sent to look for it where it is not, and the answer does not
// say what holds it (the API server, which `get ns` shows in USED-BY).
func TestReviewOpsNamespaceOfAPIObjectShownAsConfig(t *testing.T) {
	td := startTestDaemon(t, `
frontend web
    bind 127.0.0.1:23250
    default_backend web
backend web
    server s1 127.0.0.1:23251
`, "")
	name := fmt.Sprintf("ro%dapi", os.Getpid()%10000) // never created
	code, e := td.call("POST", "/v1/backends/web/servers",
		map[string]any{"name": "s2", "addr": "127.0.0.1:23252", "namespace": name}, nil)
	if code != 201 {
		t.Fatalf("add server: %d %+v", code, e)
	}
	var ns api.Namespace
	if code, e := td.call("GET", "/v1/namespaces/"+name, nil, &ns); code != 200 {
		t.Fatalf("get namespace: %d %+v", code, e)
	}
	if ns.Source == api.SourceConfig {
		t.Errorf("namespace %q, named only by the API server web/s2, is listed with source %q (a -f file): %+v",
			name, ns.Source, ns)
	}
	code, e = td.call("DELETE", "/v1/namespaces/"+name, nil, nil)
	if strings.Contains(e.Error, "configuration files or an attachment") || !strings.Contains(e.Error+strings.Join(e.Details, " "), "s2") {
		t.Errorf("ns del %s: %d %q %q; no file or attachment names it: the answer should name what uses it (backend/web/server/s2)",
			name, code, e.Error, e.Details)
	}
}
