//go:build e2e

package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValidate runs `nsproxy validate` on good and bad files: exit 0 for
// the reference snippets, exit 1 with file:line for each kind of mistake.
func TestValidate(t *testing.T) {
	bin := nsproxyBin(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, cfg string
		wantOK    bool
		want      []string // each must appear in the output
	}{
		{"reference-namespace-list", "namespace_list\n    namespace netns1\n    namespace netns2\n", true, nil},
		{"reference-accept-proxy", `
frontend f_example
	bind 192.168.1.1:9990 accept-proxy
	default_backend b_example

backend b_example
	mode tcp
	source 0.0.0.0 usesrc clientip
	server snodes * namespace *
`, true, nil},
		{"unknown-keyword", "backend b\n    server s 127.0.0.1:80\n    optoin tcplog\n", false, []string{"bad.cfg:3", "optoin"}},
		{"mode-http", "defaults\n    mode http\n", false, []string{"bad.cfg:2", "tcp"}},
		{"hostname", "backend b\n    server s example.com:80\n", false, []string{"bad.cfg:2"}},
		{"bad-port", "frontend f\n    bind 127.0.0.1:99999\n    default_backend b\nbackend b\n", false, []string{"bad.cfg:2"}},
		{"missing-backend", "frontend f\n    bind 127.0.0.1:80\n    default_backend nope\n", false, []string{"bad.cfg:", "nope"}},
		{"path-namespace", "backend b\n    server s 10.0.0.1:80 namespace ../../proc/1/ns/net\n", false, []string{"bad.cfg:2"}},
		{"bad-timeout", "defaults\n    timeout connect soon\n", false, []string{"bad.cfg:2", "soon"}},
		{"unterminated-quote", "backend \"b\n", false, []string{"bad.cfg:1"}},
		{"outside-section", "server s 127.0.0.1:80\n", false, []string{"bad.cfg:1"}},
		{"two-errors", "defaults\n    mode http\n    timeout client never\n", false, []string{"bad.cfg:2", "bad.cfg:3"}},
		{"duplicate-bind", "frontend a\n    bind 127.0.0.1:80\n    default_backend b\nfrontend c\n    bind 127.0.0.1:80\n    default_backend b\nbackend b\n", false, []string{"bad.cfg:5", "bad.cfg:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := "good.cfg"
			if !tc.wantOK {
				file = "bad.cfg"
			}
			p := writeFile(t, dir, file, tc.cfg)
			out, err := exec.Command(bin, "validate", "-f", p).CombinedOutput()
			text := strings.ReplaceAll(string(out), filepath.Dir(p)+"/", "")
			if tc.wantOK {
				if err != nil {
					t.Fatalf("valid config rejected: %v\n%s", err, out)
				}
				return
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("want exit 1, got %v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
			if !regexp.MustCompile(`(?m)^\S*bad\.cfg:\d+: `).MatchString(string(out)) {
				t.Errorf("errors are not in FILE:LINE: form:\n%s", out)
			}
		})
	}
}

// TestRunRefusesBadConfig: the daemon does not start on a bad file.
func TestRunRefusesBadConfig(t *testing.T) {
	bin := nsproxyBin(t)
	p := writeFile(t, t.TempDir(), "bad.cfg", "frontend f\n    bind 127.0.0.1:80\n")
	out, err := exec.Command(bin, "run", "-f", p).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad.cfg:1") {
		t.Fatalf("run on a bad config: %v\n%s", err, out)
	}
}
