package hooks_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the DESIGN rule of the runtimes' side of the contract:
// hooks, imported by the CNI plugin and the OCI hook, uses the standard
// library only; the plugin binary stays small and independent of the
// daemon, with hooks and the CNI library besides the standard library.
func TestImports(t *testing.T) {
	stdlib := func(p string) bool {
		first, _, _ := strings.Cut(p, "/")
		return !strings.Contains(first, ".")
	}
	tests := []struct {
		dir   string
		allow func(string) bool
		rule  string
	}{
		{".", stdlib, "hooks must use the standard library only"},
		{"../cniplugin", func(p string) bool {
			return stdlib(p) || p == "github.com/nsproxy/nsproxy/hooks" || strings.HasPrefix(p, "github.com/containernetworking/cni/")
		}, "cniplugin may import hooks and github.com/containernetworking/cni only"},
	}
	for _, tt := range tests {
		files, err := filepath.Glob(filepath.Join(tt.dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", tt.dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range ast.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); !tt.allow(p) {
					t.Errorf("%s imports %s: %s", f, p, tt.rule)
				}
			}
		}
	}
}
