package manifest

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// TestDiffGolden: testdata/diff/CASE/{old,new}.yaml give diff.golden.
// go test ./sidecar/manifest/ -run TestDiffGolden -update rewrites them.
func TestDiffGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/diff/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			old, err := Load(filepath.Join(dir, "old.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			new, err := Load(filepath.Join(dir, "new.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			text, changed := Diff(old, new)
			if changed != (text != "") {
				t.Errorf("changed = %v with text %q", changed, text)
			}
			golden := filepath.Join(dir, "diff.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if text != string(want) {
				t.Errorf("Diff:\n%s\nwant (%s):\n%s", text, golden, want)
			}
			if again, _ := Diff(old, new); again != text {
				t.Errorf("Diff is not stable:\n%s\nthen\n%s", text, again)
			}
			if back, changed := Diff(new, new); changed {
				t.Errorf("Diff(new, new):\n%s", back)
			}
		})
	}
}

// Status fields (what get reports), fields implied by where an object is
// listed, and positions are no change: a Set built from get's output
// diffs clean against the decoded manifest.
func TestDiffIgnoresStatus(t *testing.T) {
	mk := func(current int64, line int, tenant, backend string) Set {
		return Set{Tenants: []Tenant{{Meta: Meta{Name: "a", Pos: Pos{Line: line}}, Spec: TenantSpec{
			Frontends: []api.Frontend{{Name: "f", Tenant: tenant, Current: current, Binds: []api.Bind{{Addr: ":1"}}, Backend: "b"}},
			Backends:  []api.Backend{{Name: "b", Tenant: tenant, Servers: []api.Server{{Name: "s", Backend: backend, Addr: ":1", Up: current > 0}}}},
		}}}, Positions: map[string]Pos{"Tenant/a": {Line: line}}}
	}
	got := mk(5, 9, "a", "b")
	if text, changed := Diff(mk(0, 1, "", ""), got); changed || text != "" {
		t.Errorf("Diff = %q, %v; want no change", text, changed)
	}
	out, err := Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "tenant:") || strings.Count(string(out), "backend:") != 1 || strings.Contains(string(out), "current") {
		t.Errorf("Encode printed status or implied fields:\n%s", out)
	}
	if back, err := Decode("x.yaml", out); err != nil || !equalSets(back, mk(0, 0, "", "")) {
		t.Errorf("Decode(Encode(get's Set)) = %v, %+v", err, stripped(back))
	}
}
