package cniplugin_test

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The plugin binary stays small and independent of the daemon: hooks and
// the CNI library only, besides the standard library. golang.org/x/sys/unix
// is allowed too: the CNI library's skel already links it into every plugin
// (skel -> cni/pkg/ns -> vishvananda/netns -> x/sys/unix), so it costs the
// binary nothing and spares hand-encoded ioctl numbers and magic constants.
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
			if !strings.Contains(first, ".") || p == "github.com/nsproxy/nsproxy/hooks" || p == "golang.org/x/sys/unix" ||
				strings.HasPrefix(p, "github.com/containernetworking/cni/") {
				continue
			}
			t.Errorf("%s imports %s: cniplugin may import hooks, github.com/containernetworking/cni and golang.org/x/sys/unix only", f, p)
		}
	}
}

// The reason golang.org/x/sys/unix is allowed above: skel brings it in
// anyway. Should a CNI release drop it, this fails and the allowance goes.
func TestSkelLinksUnix(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/containernetworking/cni/pkg/skel").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !slices.Contains(strings.Fields(string(out)), "golang.org/x/sys/unix") {
		t.Fatal("skel no longer links golang.org/x/sys/unix: drop it from cniplugin's allowed imports")
	}
}
