package hooks_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// stdlibOnly are the packages of this module that hooks may import. Each
// of them must itself use the standard library only, so that hooks, and
// the CNI plugin that imports it, stay as small as if hooks had the code:
// atomicfile is a package of its own because the daemon's state file and
// install-cni need the same atomic write as the attachment records.
var stdlibOnly = map[string]string{
	"github.com/nsproxy/nsproxy/internal/atomicfile": "../internal/atomicfile",
}

// hooks is imported by the CNI plugin and the OCI hook: it must stay on
// the standard library (and the stdlibOnly packages).
func TestStandardLibraryOnly(t *testing.T) {
	for _, dir := range []string{"."} {
		checkImports(t, dir, true)
	}
	for _, dir := range stdlibOnly {
		checkImports(t, dir, false)
	}
}

// checkImports fails for every import of a non-test file in dir that is
// outside the standard library (the stdlibOnly packages allowed when
// withModule is set).
func checkImports(t *testing.T, dir string, withModule bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
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
			if _, ok := stdlibOnly[p]; ok && withModule {
				continue
			}
			if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: hooks and the packages it imports must use the standard library only", f, p)
			}
		}
	}
}
