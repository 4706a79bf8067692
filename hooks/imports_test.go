package hooks_test

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

// TestImports keeps the DESIGN rule of the runtimes' side of the contract:
// hooks, imported by the CNI plugin and the OCI hook, uses the standard
// library only (and internal/atomicfile, a package of its own because the
// daemon's state file and install-cni need the same atomic write as the
// records; it must itself use the standard library only); the plugin binary
// stays small and independent of the daemon, with hooks and the CNI library
// besides the standard library. golang.org/x/sys/unix is allowed in the
// plugin too: the CNI library's skel already links it into every plugin
// (skel -> cni/pkg/ns -> vishvananda/netns -> x/sys/unix; TestSkelLinksUnix),
// so it costs the binary nothing and spares hand-encoded ioctl numbers.
func TestImports(t *testing.T) {
	stdlib := func(p string) bool {
		first, _, _ := strings.Cut(p, "/")
		return !strings.Contains(first, ".")
	}
	const atomicfile = "github.com/nsproxy/nsproxy/internal/atomicfile"
	tests := []struct {
		dir   string
		allow func(string) bool
		rule  string
	}{
		{".", func(p string) bool { return stdlib(p) || p == atomicfile },
			"hooks must use the standard library (and internal/atomicfile) only"},
		{"../internal/atomicfile", stdlib, "atomicfile must use the standard library only: hooks imports it"},
		{"../cniplugin", func(p string) bool {
			return stdlib(p) || p == "github.com/nsproxy/nsproxy/hooks" || p == "golang.org/x/sys/unix" ||
				strings.HasPrefix(p, "github.com/containernetworking/cni/")
		}, "cniplugin may import hooks, github.com/containernetworking/cni and golang.org/x/sys/unix only"},
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

// The reason golang.org/x/sys/unix is allowed in cniplugin: skel brings it
// in anyway. Should a CNI release drop it, this fails and the allowance goes.
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

// TestPluginLinksNoNetHTTP: the CNI plugin and the OCI hook are started for
// every container, and net/http's package tree (crypto/tls, x509, http2)
// costs each start more CPU than the request itself; the client speaks
// HTTP/1.0 by hand (wire.go). Nothing the plugin links may bring it back.
func TestPluginLinksNoNetHTTP(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/nsproxy/nsproxy/cmd/nsproxy-cni").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "net/http" || p == "crypto/tls" {
			t.Errorf("cmd/nsproxy-cni links %s", p)
		}
	}
}
