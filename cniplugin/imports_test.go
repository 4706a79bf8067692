package cniplugin_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The plugin binary stays small and independent of the daemon: hooks and
// the CNI library only, besides the standard library.
func TestImportsHooksAndCNIOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
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
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if !strings.Contains(first, ".") || p == "github.com/nsproxy/nsproxy/hooks" ||
				strings.HasPrefix(p, "github.com/containernetworking/cni/") {
				continue
			}
			t.Errorf("%s imports %s: cniplugin may import hooks and github.com/containernetworking/cni only", f, p)
		}
	}
}
