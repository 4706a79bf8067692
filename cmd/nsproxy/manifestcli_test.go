package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// manifestDaemon is a fake daemon for the manifest commands: it records
// each request and answers with code and body.
type manifestDaemon struct {
	socket string
	mu     sync.Mutex
	paths  []string
	reqs   []api.ManifestRequest
	code   int
	body   any
}

func startManifestDaemon(t *testing.T, code int, body any) *manifestDaemon {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "nsmcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &manifestDaemon{socket: filepath.Join(dir, "s.sock"), code: code, body: body}
	ln, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.ManifestRequest
		json.NewDecoder(r.Body).Decode(&req)
		d.mu.Lock()
		d.paths = append(d.paths, r.Method+" "+r.URL.Path)
		d.reqs = append(d.reqs, req)
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(d.code)
		json.NewEncoder(w).Encode(d.body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return d
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestCLIManifestsSendFiles: -f DIR sends the directory's *.yaml and
// *.yml files (no other file, no subdirectory) in name order, each with
// the name the user can find it by and its text as it is; -f - sends
// standard input as <stdin>.
func TestCLIManifestsSendFiles(t *testing.T) {
	d := startManifestDaemon(t, 200, api.ManifestResult{Changed: true, Diff: "+ Tenant/a\n", Documents: []string{"Tenant/a"}})
	dir := t.TempDir()
	for name, text := range map[string]string{"b.yml": "kind: B\n", "a.yaml": "kind: A\n", "notes.txt": "x"} {
		mustWriteCLI(t, filepath.Join(dir, name), text)
	}
	os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755)
	single := filepath.Join(t.TempDir(), "one.yaml")
	mustWriteCLI(t, single, "kind: One\n")
	cliStdin = strings.NewReader("kind: Stdin\n")
	t.Cleanup(func() { cliStdin = os.Stdin })
	code, out, errOut := runMain("apply", "-f", dir, "-f", single, "-f", "-", "--socket", d.socket)
	if code != 0 || out != "+ Tenant/a\napplied: Tenant/a\n" {
		t.Fatalf("apply: %d %q %q", code, out, errOut)
	}
	want := []api.ManifestFile{
		{Name: filepath.Join(dir, "a.yaml"), Data: "kind: A\n"},
		{Name: filepath.Join(dir, "b.yml"), Data: "kind: B\n"},
		{Name: single, Data: "kind: One\n"},
		{Name: "<stdin>", Data: "kind: Stdin\n"},
	}
	got := d.reqs[0].Files
	if len(got) != len(want) {
		t.Fatalf("sent %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("file %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if d.paths[0] != "POST /v1/manifests" {
		t.Fatalf("path %s", d.paths[0])
	}
	for verb, path := range map[string]string{"delete": "/v1/manifests/delete", "diff": "/v1/manifests/diff"} {
		runMain(verb, "-f", single, "--socket", d.socket)
		if p := d.paths[len(d.paths)-1]; p != "POST "+path {
			t.Errorf("%s went to %s", verb, p)
		}
	}
}

// TestCLIManifestsExitCodes: diff exits 0 when nothing would change, 1
// when something would, 2 on any error; apply and delete exit 1 on an
// error of the daemon and 2 on a usage error. The daemon's details (one
// FILE:LINE:COLUMN each) are printed one per line.
func TestCLIManifestsExitCodes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a.yaml")
	mustWriteCLI(t, file, "kind: Tenant\n")
	big := filepath.Join(t.TempDir(), "big.yaml")
	mustWriteCLI(t, big, "# "+strings.Repeat("x", 1<<20)+"\n")
	invalid := api.Error{Error: "the manifests do not decode; nothing was changed",
		Details: []string{file + ":3:5: unknown field", file + ":9:1: kind \"X\""}}
	tests := []struct {
		name     string
		answer   int
		body     any
		args     []string
		code     int
		out, err string
	}{
		{"diff unchanged", 200, api.ManifestResult{Documents: []string{"Tenant/a"}}, []string{"diff", "-f", file}, 0, "", ""},
		{"diff changed", 200, api.ManifestResult{Changed: true, Diff: "~ Tenant/a\n"}, []string{"diff", "-f", file}, 1, "~ Tenant/a\n", ""},
		{"diff invalid", 400, invalid, []string{"diff", "-f", file}, 2, "", invalid.Details[1]},
		{"diff forbidden", 403, api.Error{Error: `permission denied: Tenant/b belongs to tenant "b"`}, []string{"diff", "-f", file}, 2, "", `tenant "b"`},
		{"apply invalid", 400, invalid, []string{"apply", "-f", file}, 1, "", invalid.Details[0]},
		{"apply unchanged", 200, api.ManifestResult{Documents: []string{"Tenant/a"}}, []string{"apply", "-f", file}, 0, "unchanged: Tenant/a\n", ""},
		{"delete", 200, api.ManifestResult{Changed: true, Documents: []string{"Tenant/a"}}, []string{"delete", "-f", file}, 0, "deleted: Tenant/a\n", ""},
		{"delete conflict", 409, api.Error{Error: "Tenant/a is owned by the manifest directory /etc/m"}, []string{"delete", "-f", file}, 1, "", "/etc/m"},
		{"no -f", 200, nil, []string{"apply"}, 2, "", "give at least one -f"},
		{"stray argument", 200, nil, []string{"diff", "-f", file, "extra"}, 2, "", "unexpected arguments: extra"},
		{"missing file", 200, nil, []string{"diff", "-f", file + ".gone"}, 2, "", "no such file"},
		{"missing file apply", 200, nil, []string{"apply", "-f", file + ".gone"}, 1, "", "no such file"},
		{"empty directory", 200, nil, []string{"apply", "-f", t.TempDir()}, 1, "", "holds no *.yaml"},
		{"too large", 200, nil, []string{"diff", "-f", big}, 2, "", "apply them in parts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := startManifestDaemon(t, tc.answer, tc.body)
			code, out, errOut := runMain(append(tc.args, "--socket", d.socket)...)
			if code != tc.code || out != tc.out || !strings.Contains(errOut, tc.err) {
				t.Fatalf("exit %d stdout %q stderr %q; want %d %q and stderr with %q", code, out, errOut, tc.code, tc.out, tc.err)
			}
			if tc.answer == 400 && !strings.Contains(errOut, strings.Join(invalid.Details, "\n")) {
				t.Fatalf("details not one per line:\n%s", errOut)
			}
		})
	}
}

// TestCLIGetTenants: the table shows each tenant's namespaces, frontends,
// exposures, the sum of its refusals and the containers its selectors
// claim with another tenant; -o wide adds refusals by reason.
func TestCLIGetTenants(t *testing.T) {
	tenants := []api.Tenant{
		{Name: "a", Source: api.SourceAPI, Namespaces: []api.TenantNamespace{{Name: "a1", Source: "manifest"}, {Name: "cni-1", Source: "cni"}},
			Frontends: []string{"a-web"}, Exposures: []string{"a-80"}, Refusals: map[string]uint64{"netns_not_allowed": 3, "loop": 1},
			Overlaps: []api.TenantOverlap{{AttachmentKey: api.AttachmentKey{ContainerID: "c9", IfName: "eth0"}, Namespace: "cni-9", Tenants: []string{"a", "b"}}}},
		{Name: "default", Namespaces: []api.TenantNamespace{}, Frontends: []string{"web"}},
	}
	d := startManifestDaemon(t, 200, tenants)
	code, out, errOut := runMain("get", "tenants", "-o", "wide", "--socket", d.socket)
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "TENANT SOURCE NAMESPACES FRONTENDS EXPOSURES REFUSED OVERLAPS SERVICES REFUSALS OWNER" {
		t.Fatalf("table:\n%s", out)
	}
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "a api a1,cni-1 a-web a-80 4 cni-9(a+b) <none> loop=1,netns_not_allowed=3 <none>" {
		t.Fatalf("row of a: %q", got)
	}
	if d.paths[0] != "GET /v1/tenants" {
		t.Fatalf("path %s", d.paths[0])
	}
}

func TestCLIManifestUsage(t *testing.T) {
	code, out, _ := runMain("help")
	for _, cmd := range []string{"nsproxy apply -f", "nsproxy delete -f", "nsproxy diff -f", "nsproxy get tenants"} {
		if code != 0 || !strings.Contains(out, cmd) {
			t.Errorf("help lacks %q", cmd)
		}
	}
}

func mustWriteCLI(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
