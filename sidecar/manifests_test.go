package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"golang.org/x/sys/unix"
)

// manifestCfg listens in this package's test port range only.
const manifestCfg = `
frontend web
    bind 127.0.0.1:20001
    default_backend web
backend web
    server s1 127.0.0.1:20002
`

// tenantDoc is a Tenant whose spec.access names group gid.
func tenantDoc(name string, gid int) string {
	return fmt.Sprintf(`apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: %s
spec:
  access:
    groups: ["%d"]
`, name, gid)
}

// exposureDoc is an Exposure of tenant on hostPort.
func exposureDoc(name, tenant string, hostPort int) string {
	return fmt.Sprintf(`apiVersion: nsproxy.io/v1alpha1
kind: Exposure
metadata:
  name: %s
  tenant: %s
spec:
  select:
    network: net-%s
  containerPort: 80
  hostPort: %d
`, name, tenant, tenant, hostPort)
}

func manifestReq(files ...string) api.ManifestRequest {
	var r api.ManifestRequest
	for i := 0; i+1 < len(files); i += 2 {
		r.Files = append(r.Files, api.ManifestFile{Name: files[i], Data: files[i+1]})
	}
	return r
}

func tenantNames(ts []api.Tenant) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

// TestManifestsApplyDiffDelete: apply creates the documents and GET
// tenants shows them; diff changes nothing and says whether apply would;
// delete removes only the documents named; every change persists.
func TestManifestsApplyDiffDelete(t *testing.T) {
	td := startTestDaemon(t, manifestCfg, "")
	a := tenantDoc("a", 2000) + "---\n" + exposureDoc("a-web", "a", 20003)
	var res api.ManifestResult
	if code, e := td.call("POST", "/v1/manifests", manifestReq("a.yaml", a), &res); code != 200 {
		t.Fatalf("apply: %d %+v", code, e)
	}
	if !res.Changed || !slices.Equal(res.Documents, []string{"Tenant/a", "Exposure/a-web"}) {
		t.Fatalf("apply answered %+v", res)
	}
	var ts []api.Tenant
	td.call("GET", "/v1/tenants", nil, &ts)
	if !slices.Equal(tenantNames(ts), []string{"a", "default"}) {
		t.Fatalf("tenants %v, want a and default", tenantNames(ts))
	}
	if ta := ts[0]; ta.Source != api.SourceAPI || !slices.Equal(ta.Exposures, []string{"a-web"}) {
		t.Fatalf("tenant a: %+v", ta)
	}
	var fes []api.Frontend
	if code, _ := td.call("GET", "/v1/tenants/default", nil, nil); code != 200 {
		t.Fatalf("GET /v1/tenants/default: %d", code)
	}
	td.call("GET", "/v1/frontends", nil, &fes)

	// The same files again: nothing to do, and diff says so.
	res = api.ManifestResult{}
	if code, e := td.call("POST", "/v1/manifests/diff", manifestReq("a.yaml", a), &res); code != 200 || res.Changed || res.Diff != "" {
		t.Fatalf("diff of the applied files: %d %+v %+v", code, e, res)
	}
	// A changed file: diff says so and changes nothing.
	changed := tenantDoc("a", 2000) + "---\n" + exposureDoc("a-web", "a", 20004)
	before := readFile(t, td.state)
	if code, e := td.call("POST", "/v1/manifests/diff", manifestReq("a.yaml", changed), &res); code != 200 || !res.Changed || !strings.Contains(res.Diff, "Exposure/a-web") {
		t.Fatalf("diff of a change: %d %+v %+v", code, e, res)
	}
	if after := readFile(t, td.state); after != before {
		t.Fatalf("diff wrote the state file:\n%s", after)
	}
	st, _, _ := td.d.snapshotState()
	if st.Manifests.Exposures[0].Spec.HostPort != 20003 {
		t.Fatalf("diff changed the running manifests: %+v", st.Manifests.Exposures)
	}

	// A second tenant; then delete only the exposure of the first.
	if code, e := td.call("POST", "/v1/manifests", manifestReq("b.yaml", tenantDoc("b", 2001)), nil); code != 200 {
		t.Fatalf("apply b: %d %+v", code, e)
	}
	res = api.ManifestResult{}
	if code, e := td.call("POST", "/v1/manifests/delete", manifestReq("x.yaml", exposureDoc("a-web", "a", 1)), &res); code != 200 || !res.Changed {
		t.Fatalf("delete: %d %+v %+v", code, e, res)
	}
	st, _, _ = td.d.snapshotState()
	if len(st.Manifests.Exposures) != 0 || len(st.Manifests.Tenants) != 2 {
		t.Fatalf("after delete: %+v", st.Manifests)
	}
	// Deleting what is not there deletes nothing and says what is missing.
	code, e := td.call("POST", "/v1/manifests/delete", manifestReq("x.yaml", tenantDoc("b", 1)+"---\n"+exposureDoc("a-web", "a", 1)), nil)
	if code != 404 || !strings.Contains(e.Error, "Exposure/a-web") {
		t.Fatalf("delete of a missing document: %d %+v", code, e)
	}
	if st, _, _ := td.d.snapshotState(); len(st.Manifests.Tenants) != 2 {
		t.Fatalf("a refused delete removed something: %+v", st.Manifests.Tenants)
	}

	// Persisted: the state file holds both tenants, read back by a new daemon.
	var saved State
	if err := json.Unmarshal([]byte(readFile(t, td.state)), &saved); err != nil {
		t.Fatal(err)
	}
	if len(saved.Manifests.Tenants) != 2 {
		t.Fatalf("state file holds %+v", saved.Manifests)
	}
	td.stop()
	td2 := startTestDaemon(t, manifestCfg, td.state)
	td2.call("GET", "/v1/tenants", nil, &ts)
	if !slices.Equal(tenantNames(ts), []string{"a", "b", "default"}) {
		t.Fatalf("after a restart: tenants %v", tenantNames(ts))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestManifestsInvalidChangeNothing: a file that does not decode, or two
// files defining one document, is refused with FILE:LINE for each problem
// and changes neither the running manifests nor the state file.
func TestManifestsInvalidChangeNothing(t *testing.T) {
	td := startTestDaemon(t, manifestCfg, "")
	if code, e := td.call("POST", "/v1/manifests", manifestReq("a.yaml", tenantDoc("a", 2000)), nil); code != 200 {
		t.Fatalf("apply: %d %+v", code, e)
	}
	before := readFile(t, td.state)
	tests := []struct {
		name string
		req  api.ManifestRequest
		want []string // in the details
	}{
		{"bad apiVersion", manifestReq("bad.yaml", tenantDoc("c", 1)+"---\napiVersion: v9\nkind: Tenant\nmetadata:\n  name: d\n"),
			[]string{"bad.yaml:9:1"}},
		{"twice", manifestReq("one.yaml", tenantDoc("c", 1), "two.yaml", "\n"+tenantDoc("c", 2)),
			[]string{"two.yaml:2:1", "one.yaml:1:1", "Tenant/c"}},
		{"no documents", manifestReq("empty.yaml", "# nothing\n"), []string{"empty.yaml"}},
		// Valid YAML, but its frontend takes the files' address: the plan
		// refuses it, positioned in the user's file.
		{"bind taken", manifestReq("taken.yaml", `apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: c
spec:
  frontends:
  - name: c-web
    binds:
    - addr: 127.0.0.1:20001
    backend: c-app
  backends:
  - name: c-app
    servers:
    - name: s1
      addr: 127.0.0.1:20002
`), []string{"taken.yaml:9:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, e := td.call("POST", "/v1/manifests", tc.req, nil)
			all := e.Error + "\n" + strings.Join(e.Details, "\n")
			if code != 400 {
				t.Fatalf("code %d, want 400: %s", code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("answer lacks %q:\n%s", w, all)
				}
			}
			if after := readFile(t, td.state); after != before {
				t.Errorf("the state file changed:\n%s", after)
			}
			if st, _, _ := td.d.snapshotState(); len(st.Manifests.Tenants) != 1 {
				t.Errorf("running manifests changed: %+v", st.Manifests.Tenants)
			}
		})
	}
}

// asPeer serves one request through the control handler as a peer with
// these credentials (the handler reads them from the context, where
// ServeControl puts SO_PEERCRED and SO_PEERGROUPS).
func asPeer(t *testing.T, d *Daemon, uid, gid uint32, groups []uint32, method, path string, body any) (int, string) {
	t.Helper()
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, rd)
	ctx := context.WithValue(req.Context(), credKey{}, &unix.Ucred{Pid: 1, Uid: uid, Gid: gid})
	ctx = context.WithValue(ctx, groupsKey{}, groups)
	rec := httptest.NewRecorder()
	controlHandler(d, d.log, -1).ServeHTTP(rec, req.WithContext(ctx))
	return rec.Code, rec.Body.String()
}

// TestManifestsAccessPerTenant: a peer named by tenant a's spec.access
// (through a supplementary group, or its primary gid) may apply, diff and
// delete a's documents and see a only; b's documents, other endpoints and
// peers named by no tenant get 403 naming the tenant.
func TestManifestsAccessPerTenant(t *testing.T) {
	td := startTestDaemon(t, manifestCfg, "")
	if code, e := td.call("POST", "/v1/manifests", manifestReq("ab.yaml", tenantDoc("a", 2000)+"---\n"+tenantDoc("b", 2001)+"---\n"+exposureDoc("b-web", "b", 20004)), nil); code != 200 {
		t.Fatalf("apply as root: %d %+v", code, e)
	}
	member := func(method, path string, body any) (int, string) {
		return asPeer(t, td.d, 1000, 1000, []uint32{1000, 2000}, method, path, body)
	}
	expA := exposureDoc("a-web", "a", 20003)
	if code, body := member("POST", "/v1/manifests", manifestReq("a.yaml", expA)); code != 200 {
		t.Fatalf("member of a applying a: %d %s", code, body)
	}
	// Its own Tenant with the boundary as applied (access, namespaces,
	// select, limits): allowed.
	if code, body := member("POST", "/v1/manifests", manifestReq("a.yaml", tenantDoc("a", 2000)+"  proxy:\n    netnsTLV: false\n")); code != 200 {
		t.Fatalf("member of a changing a's proxy policy: %d %s", code, body)
	}
	if code, body := member("POST", "/v1/manifests/diff", manifestReq("a.yaml", expA)); code != 200 || strings.Contains(body, `"changed": true`) {
		t.Fatalf("member of a diffing a: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		want               string
	}{
		{"apply b's exposure", "POST", "/v1/manifests", manifestReq("b.yaml", exposureDoc("b-web", "b", 20004)), `tenant \"b\"`},
		{"apply b's tenant", "POST", "/v1/manifests", manifestReq("b.yaml", tenantDoc("b", 1000)), `tenant \"b\"`},
		{"mixed files", "POST", "/v1/manifests", manifestReq("a.yaml", expA, "b.yaml", exposureDoc("b-web", "b", 20004)), `tenant \"b\"`},
		{"diff b", "POST", "/v1/manifests/diff", manifestReq("b.yaml", tenantDoc("b", 2001)), `tenant \"b\"`},
		{"delete b", "POST", "/v1/manifests/delete", manifestReq("b.yaml", tenantDoc("b", 2001)), `tenant \"b\"`},
		{"create tenant c", "POST", "/v1/manifests", manifestReq("c.yaml", tenantDoc("c", 2000)), `tenant \"c\"`},
		{"change a's access", "POST", "/v1/manifests", manifestReq("a.yaml", tenantDoc("a", 1000)), "spec.access of Tenant"},
		{"claim a namespace", "POST", "/v1/manifests", manifestReq("a.yaml", tenantDoc("a", 2000)+"  namespaces:\n  - name: host\n    path: /proc/1/ns/net\n"), "spec.namespaces of Tenant"},
		{"take b's exposure over", "POST", "/v1/manifests", manifestReq("a.yaml", exposureDoc("b-web", "a", 20005)), `Exposure/b-web (applied now) belongs to tenant \"b\"`},
		{"delete b's exposure by naming a", "POST", "/v1/manifests/delete", manifestReq("a.yaml", exposureDoc("b-web", "a", 20005)), `Exposure/b-web (applied now) belongs to tenant \"b\"`},
		{"get tenant b", "GET", "/v1/tenants/b", nil, `not \"b\"`},
		{"frontends", "GET", "/v1/frontends", nil, "permission denied"},
		{"namespaces", "POST", "/v1/namespaces", api.Namespace{Name: "x"}, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := member(tc.method, tc.path, tc.body)
			if code != 403 || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want 403 with %s", code, body, tc.want)
			}
		})
	}
	st, _, _ := td.d.snapshotState()
	if len(st.Manifests.Tenants) != 2 || len(st.Manifests.Exposures) != 2 || st.Manifests.Exposures[0].Meta.Tenant != "b" {
		t.Fatalf("refused requests changed the manifests: %+v", st.Manifests)
	}
	code, body := member("GET", "/v1/tenants", nil)
	var ts []api.Tenant
	json.Unmarshal([]byte(body), &ts)
	if code != 200 || !slices.Equal(tenantNames(ts), []string{"a"}) {
		t.Fatalf("member's tenants: %d %s", code, body)
	}
	// The primary gid counts too.
	if code, body := asPeer(t, td.d, 1001, 2001, nil, "GET", "/v1/tenants/b", nil); code != 200 {
		t.Fatalf("primary gid of b: %d %s", code, body)
	}
	if code, body := member("POST", "/v1/manifests/delete", manifestReq("a.yaml", expA)); code != 200 {
		t.Fatalf("member of a deleting a's exposure: %d %s", code, body)
	}
	// Named by no tenant: nothing at all.
	if code, body := asPeer(t, td.d, 1002, 1002, nil, "GET", "/v1/tenants", nil); code != 403 || !strings.Contains(body, "no tenant") {
		t.Fatalf("stranger: %d %s", code, body)
	}
	// Root sees every tenant.
	if code, body := asPeer(t, td.d, 0, 0, nil, "GET", "/v1/tenants", nil); code != 200 || !strings.Contains(body, `"b"`) {
		t.Fatalf("root: %d %s", code, body)
	}
}

// TestManifestDir: --manifests DIR is applied at start, owned by the
// directory (the API gets 409 naming it), not written to the state file,
// reloaded on change (inotify) with an invalid edit changing nothing, and
// an invalid directory stops the start.
func TestManifestDir(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manifests")
	os.Mkdir(mdir, 0o755)
	mustWrite(t, filepath.Join(mdir, "a.yaml"), tenantDoc("a", 2000))
	mustWrite(t, filepath.Join(mdir, "ignored.txt"), "not yaml at all: [")
	state := filepath.Join(dir, "state.json")
	d, logBuf := manifestDirDaemon(t, dir, mdir)
	root := func() access { return access{all: true, who: "root"} }
	if ts := d.tenantViews(root()); len(ts) != 2 || ts[0].Source != api.SourceManifestDir || ts[0].Owner != mdir {
		t.Fatalf("tenants %+v", ts)
	}
	_, err := d.applyManifests(root(), manifestReq("mine.yaml", tenantDoc("a", 1)), opApply)
	if err == nil || !strings.Contains(err.Error(), mdir) || !strings.Contains(err.Error(), "mine.yaml:1:1") {
		t.Fatalf("API apply of a directory document: %v", err)
	}
	if code, _ := errorBody(err); code != 409 {
		t.Fatalf("code %d, want 409", code)
	}
	if _, err := d.applyManifests(root(), manifestReq("mine.yaml", tenantDoc("a", 1)), opDelete); err == nil || !strings.Contains(err.Error(), mdir) {
		t.Fatalf("API delete of a directory document: %v", err)
	}
	if _, err := d.applyManifests(root(), manifestReq("b.yaml", tenantDoc("b", 1)), opApply); err != nil {
		t.Fatalf("API apply of another tenant: %v", err)
	}
	var saved State
	json.Unmarshal([]byte(readFile(t, state)), &saved)
	if got := docRefs(saved.Manifests); len(got) != 1 || got[0].key != "Tenant/b" {
		t.Fatalf("state file holds %+v, want the API's Tenant/b only", got)
	}
	// With only the directory's documents left, the state file has no
	// manifests key at all (a daemon that predates manifests reads it).
	if _, err := d.applyManifests(root(), manifestReq("b.yaml", tenantDoc("b", 1)), opDelete); err != nil {
		t.Fatal(err)
	}
	if s := readFile(t, state); strings.Contains(s, "manifests") {
		t.Fatalf("state file with no API manifests:\n%s", s)
	}

	// An edit is picked up by inotify.
	mustWrite(t, filepath.Join(mdir, "c.yaml"), tenantDoc("c", 2002))
	testwait.For(t, 5*time.Second, "c.yaml applied", func() error {
		if ts := tenantNames(d.tenantViews(root())); !slices.Contains(ts, "c") {
			return fmt.Errorf("tenants %v", ts)
		}
		return nil
	})
	// An invalid edit changes nothing and logs FILE:LINE:COLUMN.
	mustWrite(t, filepath.Join(mdir, "c.yaml"), tenantDoc("c", 2002)+"---\napiVersion: nope\nkind: Tenant\nmetadata:\n  name: e\n")
	testwait.For(t, 5*time.Second, "the refused reload logged", func() error {
		if !strings.Contains(logBuf.String(), "c.yaml:9:1") {
			return fmt.Errorf("log:\n%s", logBuf)
		}
		return nil
	})
	if ts := tenantNames(d.tenantViews(root())); !slices.Equal(ts, []string{"a", "c", "default"}) {
		t.Fatalf("after an invalid edit: %v", ts)
	}
	// Removing a file deletes its documents (SIGHUP path: a direct reload).
	os.Remove(filepath.Join(mdir, "c.yaml"))
	if err := d.ReloadManifests(); err != nil {
		t.Fatal(err)
	}
	if ts := tenantNames(d.tenantViews(root())); !slices.Equal(ts, []string{"a", "default"}) {
		t.Fatalf("after removing c.yaml: %v", ts)
	}

	// The directory moved away and made anew (an operator's mv, a volume
	// swapped): the watch follows the old inode, so the name is watched
	// again and the new directory's edits are picked up by inotify, not
	// at the next resync (an hour here).
	if err := os.Rename(mdir, mdir+".old"); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(mdir, 0o755)
	mustWrite(t, filepath.Join(mdir, "a.yaml"), tenantDoc("a", 2000))
	time.Sleep(200 * time.Millisecond) // let the move's reload happen first
	mustWrite(t, filepath.Join(mdir, "d.yaml"), tenantDoc("d", 2003))
	testwait.For(t, 5*time.Second, "d.yaml of the new directory applied", func() error {
		if ts := tenantNames(d.tenantViews(root())); !slices.Contains(ts, "d") {
			return fmt.Errorf("tenants %v", ts)
		}
		return nil
	})
	os.Remove(filepath.Join(mdir, "d.yaml"))
	if err := d.ReloadManifests(); err != nil {
		t.Fatal(err)
	}

	// An empty directory is no error (it may be filled later); a missing
	// one is.
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	opt := Options{ConfigFiles: []string{filepath.Join(dir, "n.cfg")}, ManifestDir: empty,
		Logger: slog.New(slog.NewTextHandler(logBuf, nil))}
	if d2, err := New(opt); err != nil {
		t.Fatalf("New with an empty directory: %v", err)
	} else {
		d2.reg.Close()
	}
	opt.ManifestDir = filepath.Join(dir, "missing")
	if _, err := New(opt); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("New with a missing directory: %v", err)
	}
	// An invalid directory at start: New says which file and line.
	bad := filepath.Join(dir, "bad")
	os.Mkdir(bad, 0o755)
	mustWrite(t, filepath.Join(bad, "x.yml"), "apiVersion: nsproxy.io/v1alpha1\nkind: Nope\nmetadata:\n  name: x\n")
	opt.ManifestDir, opt.StateFile = bad, ""
	if _, err := New(opt); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "x.yml")+":") || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("New with an invalid directory: %v", err)
	}
}

// TestPeerGroups: SO_PEERGROUPS reads the peer's supplementary groups
// whole (x/sys's string reader stops at the first zero byte of a gid).
func TestPeerGroups(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	got, err := peerGroups(fds[0])
	if err != nil {
		t.Skipf("SO_PEERGROUPS: %v", err)
	}
	want, _ := os.Getgroups()
	g := make([]int, len(got))
	for i, x := range got {
		g[i] = int(x)
	}
	slices.Sort(g)
	slices.Sort(want)
	if !slices.Equal(g, want) {
		t.Fatalf("peer groups %v, want %v", g, want)
	}
}

func TestMemberOf(t *testing.T) {
	p := peerIdentity{uid: 1000, gid: 1000, groups: []uint32{1000, 2000}}
	for _, tc := range []struct {
		name string
		a    manifest.Access
		want bool
	}{
		{"supplementary gid", manifest.Access{Groups: []string{"2000"}}, true},
		{"primary gid", manifest.Access{Groups: []string{"1000"}}, true},
		{"uid", manifest.Access{Users: []string{"1000"}}, true},
		{"other gid", manifest.Access{Groups: []string{"2001"}}, false},
		{"other uid", manifest.Access{Users: []string{"0"}}, false},
		{"unknown names", manifest.Access{Groups: []string{"no-such-group-nsproxy"}, Users: []string{"no-such-user-nsproxy"}}, false},
		{"root by name is not the peer", manifest.Access{Users: []string{"root"}}, false},
		{"nothing", manifest.Access{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := memberOf(p, tc.a); got != tc.want {
				t.Fatalf("memberOf = %v, want %v", got, tc.want)
			}
		})
	}
	if !memberOf(peerIdentity{uid: 0, gid: 0}, manifest.Access{Users: []string{"root"}}) {
		t.Fatal("user name root did not resolve to uid 0")
	}
}

func TestWithDocs(t *testing.T) {
	tn := func(name string, gid string) manifest.Tenant {
		return manifest.Tenant{Meta: manifest.Meta{Name: name}, Spec: manifest.TenantSpec{Access: manifest.Access{Groups: []string{gid}}}}
	}
	cur := manifest.Set{Tenants: []manifest.Tenant{tn("a", "1"), tn("a.b", "2")},
		Positions: map[string]manifest.Pos{"Tenant/a": {Line: 1}, "Tenant/a.spec.access": {Line: 3}, "Tenant/a.b": {Line: 9}}}
	next := withDocs(cur, manifest.Set{Tenants: []manifest.Tenant{tn("a", "5"), tn("c", "6")},
		Positions: map[string]manifest.Pos{"Tenant/a": {File: "new", Line: 1}, "Tenant/c": {File: "new", Line: 7}}})
	if got := tenantNamesOf(next); !slices.Equal(got, []string{"a", "a.b", "c"}) || next.Tenants[0].Spec.Access.Groups[0] != "5" {
		t.Fatalf("withDocs: %+v", next.Tenants)
	}
	if _, ok := next.Positions["Tenant/a.spec.access"]; ok {
		t.Fatal("a replaced document kept its old positions")
	}
	if next.Positions["Tenant/a.b"].Line != 9 || next.Positions["Tenant/a"].File != "new" {
		t.Fatalf("positions %+v", next.Positions)
	}
	if cur.Tenants[0].Spec.Access.Groups[0] != "1" {
		t.Fatal("withDocs changed its input")
	}
	left := withoutDocs(next, []string{"Tenant/a"})
	if got := tenantNamesOf(left); !slices.Equal(got, []string{"a.b", "c"}) {
		t.Fatalf("withoutDocs: %v", got)
	}
	if _, ok := left.Positions["Tenant/a.b"]; !ok {
		t.Fatal("withoutDocs of Tenant/a dropped Tenant/a.b's position")
	}
	if got := tenantNamesOf(onlyDocs(next, []string{"Tenant/c"})); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("onlyDocs: %v", got)
	}
}

func tenantNamesOf(s manifest.Set) []string {
	var out []string
	for _, t := range s.Tenants {
		out = append(out, t.Meta.Name)
	}
	return out
}

// TestTenantAccessSocketMode: with TenantAccess the socket is mode 0666
// so that tenant members can connect (every request is still checked).
func TestTenantAccessSocketMode(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := ListenControl(ControlOptions{Socket: sock, Group: -1, TenantAccess: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o666 {
		t.Fatalf("mode %v, want 0666", fi.Mode().Perm())
	}
}

// FuzzDecodeManifests: any two files decode without a panic; accepted
// documents have unique KIND/NAMEs, each placed in one of the two files;
// every problem of a refused pair names one of the files.
func FuzzDecodeManifests(f *testing.F) {
	f.Add(tenantDoc("a", 1), exposureDoc("x", "a", 20003))
	f.Add(tenantDoc("a", 1), tenantDoc("a", 2))
	f.Add("apiVersion: v9\nkind: Tenant\n", "--- [\n")
	f.Add("", "# nothing\n---\n")
	f.Fuzz(func(t *testing.T, one, two string) {
		files := []api.ManifestFile{{Name: "one.yaml", Data: one}, {Name: "two.yaml", Data: two}}
		s, err := decodeManifests(files)
		if err != nil {
			for _, p := range flatten(err) {
				if !strings.HasPrefix(p, "one.yaml") && !strings.HasPrefix(p, "two.yaml") {
					t.Fatalf("problem names no file: %q", p)
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range docRefs(s) {
			if seen[r.key] {
				t.Fatalf("%s accepted twice", r.key)
			}
			seen[r.key] = true
			if r.pos.File != "one.yaml" && r.pos.File != "two.yaml" {
				t.Fatalf("%s placed in %q", r.key, r.pos.File)
			}
		}
	})
}

// TestManifestFilesSkipsDotFiles: -f DIR lists a directory as --manifests
// DIR does (manifest.Files): an editor's lock or backup file (".#a.yaml")
// and a subdirectory reached through a symlink are not sent.
func TestManifestFilesSkipsDotFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.yaml", ".#a.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("kind: Tenant\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "sub.yaml")); err != nil {
		t.Fatal(err)
	}
	fs, err := ManifestFiles(dir)
	if err != nil || len(fs) != 1 || fs[0].Name != filepath.Join(dir, "a.yaml") {
		t.Fatalf("ManifestFiles(%s) = %+v, %v; want a.yaml only", dir, fs, err)
	}
}

// manifestDirDaemon runs a daemon on manifestCfg (written to dir) with its
// state in dir and --manifests mdir, resynced only hourly (what a test sees
// came by inotify), until the test ends; it returns once the daemon is
// ready, with its log.
func manifestDirDaemon(t *testing.T, dir, mdir string) (*Daemon, *testlog.Buffer) {
	t.Helper()
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, manifestCfg)
	logBuf := &testlog.Buffer{}
	d, err := New(Options{ConfigFiles: []string{cfg}, StateFile: filepath.Join(dir, "state.json"), ManifestDir: mdir,
		ManifestResync: time.Hour, Logger: slog.New(slog.NewTextHandler(logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	testwait.For(t, 5*time.Second, "the daemon is ready", func() error {
		if !d.Ready() {
			return fmt.Errorf("not ready:\n%s", logBuf)
		}
		return nil
	})
	return d, logBuf
}
