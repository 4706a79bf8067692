package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Review of operator-facing behaviour (rev-ops): each test below fails on
// baca3f3.

// TestReviewOpsValidateIgnoresExtraFiles: `nsproxy validate -f a.cfg
// b.cfg` (a natural way to check two files, and what `run` refuses with
// "configuration files go after -f") reads a.cfg only, says "configuration
// valid" and exits 0: b.cfg, never read, may be broken. A CI step or a
// pre-reload check built on it passes a file the daemon will refuse.
func TestReviewOpsValidateIgnoresExtraFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cfg")
	bad := filepath.Join(dir, "bad.cfg")
	os.WriteFile(good, []byte("namespace_list\n    namespace n1\n"), 0o644)
	os.WriteFile(bad, []byte("frontend f\n    bind 127.0.0.1:80\n    default_backend missing\n    bogus 1\n"), 0o644)
	var out, errOut bytes.Buffer
	code := run([]string{"validate", "-f", good, bad}, &out, &errOut)
	if code == 0 {
		t.Fatalf("validate -f good.cfg bad.cfg: exit 0, stdout %q, stderr %q: bad.cfg was never read",
			out.String(), errOut.String())
	}
}

// TestReviewOpsGlobalFlagsBeforeUpgrade: the README says the global flags
// --socket and --timeout "go before or after the command, as in kubectl and
// podman", and `nsproxy upgrade` takes both (its usage: "nsproxy upgrade
// [--binary PATH] [--socket PATH] [--timeout 5m]"). Before the command they
// are refused for upgrade: globalFlags (main.go) does not list it.
func TestReviewOpsGlobalFlagsBeforeUpgrade(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock") // no daemon: upgrade must say it cannot reach it
	for _, args := range [][]string{
		{"--socket", sock, "upgrade"},
		{"--timeout", "5s", "upgrade", "--socket", sock},
	} {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		if strings.Contains(errOut.String(), "is not a flag of upgrade") || !strings.Contains(errOut.String(), sock) {
			t.Errorf("nsproxy %s: exit %d, stderr %q; want upgrade to run and report it cannot reach %s",
				strings.Join(args, " "), code, strings.TrimSpace(errOut.String()), sock)
		}
	}
}
