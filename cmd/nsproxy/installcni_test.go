package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/cniconf"
)

// The conflists of package cniconf's tests: package cniconf tests what
// happens to the files, these tests the commands' flags, output and exit
// codes.
const cniconfData = "../../cniconf/testdata"

// installCNIDir copies conflists into a new CNI config directory.
func installCNIDir(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(cniconfData, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runInstallCNI runs cmdInstallCNI or cmdUninstallCNI.
func runInstallCNI(cmd func([]string, io.Writer, io.Writer) int, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = cmd(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

var (
	installCNICmd   = cmdInstallCNI
	uninstallCNICmd = cmdUninstallCNI
)

// TestInstallCNIAll: --all reports each file, a broken one fails the
// command (exit 1) but not the others, single-plugin files are skipped
// with a hint; uninstall --all likewise.
func TestInstallCNIAll(t *testing.T) {
	dir := installCNIDir(t, "podman-bridge.conflist", "containerd.conflist", "broken.conflist", "single.conf")
	podman := filepath.Join(dir, "podman-bridge.conflist")
	containerd := filepath.Join(dir, "containerd.conflist")
	code, out, errOut := runInstallCNI(installCNICmd, "--all", "--dir", dir)
	if code != 1 || !strings.Contains(errOut, "nsproxy install-cni: "+filepath.Join(dir, "broken.conflist")+": not valid JSON") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{podman + ": installed nsproxy-cni (backup: " + podman + ".nsproxy-backup)",
		containerd + ": installed nsproxy-cni", "single.conf: skipped", "  note: portmap stays", "the runtime must find nsproxy-cni"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runInstallCNI(installCNICmd, "--conflist", podman, "--replace-portmap", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: would write:\n{") || !strings.Contains(out, cniconf.RemovedKey) {
		t.Errorf("dry run: exit %d, stdout %q", code, out)
	}
	code, out, errOut = runInstallCNI(uninstallCNICmd, "--all", "--dir", dir)
	if code != 1 || !strings.Contains(errOut, "broken.conflist") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, podman+": removed nsproxy-cni (removed the backup") {
		t.Errorf("stdout %q", out)
	}
	code, out, _ = runInstallCNI(uninstallCNICmd, "--conflist", podman)
	if code != 0 || !strings.Contains(out, podman+": not installed") {
		t.Errorf("second uninstall: exit %d, stdout %q", code, out)
	}
}

// TestInstallCNIBinDir: with --bin-dir, a missing plugin binary is
// refused (it would disable the whole network); --plugin-binary puts it
// there first.
func TestInstallCNIBinDir(t *testing.T) {
	path := filepath.Join(installCNIDir(t, "containerd.conflist"), "containerd.conflist")
	bin := t.TempDir()
	code, _, errOut := runInstallCNI(installCNICmd, "--conflist", path, "--bin-dir", bin)
	if code != 1 || !strings.Contains(errOut, "not an executable in "+bin) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	src := filepath.Join(t.TempDir(), "nsproxy-cni")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runInstallCNI(installCNICmd, "--conflist", path, "--bin-dir", bin, "--plugin-binary", src)
	if code != 0 || !strings.Contains(out, "copied from") || !strings.Contains(out, "installed nsproxy-cni") ||
		strings.Contains(out, "the runtime must find") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runInstallCNI(installCNICmd, "--conflist", path, "--bin-dir", bin, "--plugin-binary", src)
	if code != 0 || !strings.Contains(out, "up to date") || !strings.Contains(out, "already installed") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	code, _, errOut = runInstallCNI(installCNICmd, "--conflist", path, "--bin-dir", bin, "--plugin-binary", filepath.Join(bin, "nope"))
	if code != 1 || !strings.Contains(errOut, "--plugin-binary: open ") {
		t.Errorf("missing --plugin-binary: exit %d, stderr %q", code, errOut)
	}
}

func TestInstallCNIUsage(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name string
		cmd  func([]string, io.Writer, io.Writer) int
		args []string
		code int
		want string // in stderr, or in stdout for exit 0
	}{
		{"no target", installCNICmd, nil, 2, "give --conflist FILE or --all"},
		{"both targets", installCNICmd, []string{"--all", "--conflist", "x"}, 2, "not both"},
		{"argument", installCNICmd, []string{"--all", "extra"}, 2, `unexpected argument "extra"`},
		{"bad flag", installCNICmd, []string{"--bogus"}, 2, "flag provided but not defined"},
		{"bad plugin config", installCNICmd, []string{"--all", "--plugin-config", `{"type":"x"}`}, 2, `"type" can only be`},
		{"binary without dir", installCNICmd, []string{"--all", "--plugin-binary", "x"}, 2, "needs --bin-dir"},
		{"missing file", installCNICmd, []string{"--conflist", filepath.Join(empty, "nope.conflist")}, 1, "no such file"},
		{"missing dir", installCNICmd, []string{"--all", "--dir", filepath.Join(empty, "nope")}, 1, "no such file"},
		{"empty dir: install fails", installCNICmd, []string{"--all", "--dir", empty}, 1, "no *.conflist in"},
		{"empty dir: uninstall has nothing to do", uninstallCNICmd, []string{"--all", "--dir", empty}, 0, "nothing to do"},
		{"help", installCNICmd, []string{"-h"}, 0, "usage: nsproxy install-cni"},
		{"uninstall help", uninstallCNICmd, []string{"--help"}, 0, "usage: nsproxy uninstall-cni"},
		{"uninstall no target", uninstallCNICmd, nil, 2, "give --conflist FILE or --all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runInstallCNI(tt.cmd, tt.args...)
			where := errOut
			if tt.code == 0 {
				where = out
			}
			if code != tt.code || !strings.Contains(where, tt.want) {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q; want %q", code, tt.code, out, errOut, tt.want)
			}
		})
	}
	if !strings.Contains(installCNIUsage, "nsproxy install-cni") || !strings.Contains(installCNIUsage, "nsproxy uninstall-cni") {
		t.Error("installCNIUsage lacks a command")
	}
}

// TestInstallCNIWarnsMissingPlugins: a chained plugin (or IPAM plugin) that
// none of the CNI plugin directories holds makes the runtime drop the whole
// network, so install-cni warns on stderr, naming the plugin type and the
// conflist; it still installs (exit 0).
func TestInstallCNIWarnsMissingPlugins(t *testing.T) {
	stub := func(dir string, names ...string) {
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, b := t.TempDir(), t.TempDir()
	stub(a, "bridge", "nsproxy-cni")
	stub(b, "host-local", "tuning")
	if err := os.WriteFile(filepath.Join(b, "firewall"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		missing  []string // plugin types named in warnings
		present  []string // never named
		searched string
	}{
		{name: "colon list", args: []string{"--cni-bin-dir", a + ":" + b}, missing: []string{"portmap", "firewall"},
			present: []string{"bridge", "host-local", "tuning", "nsproxy-cni"}, searched: a + ", " + b},
		{name: "repeated", args: []string{"--cni-bin-dir", a, "--cni-bin-dir", b, "--replace-portmap"}, missing: []string{"firewall"},
			present: []string{"bridge", "host-local", "tuning", "portmap", "nsproxy-cni"}, searched: a + ", " + b},
		{name: "one dir", args: []string{"--cni-bin-dir", a}, missing: []string{"host-local", "portmap", "firewall", "tuning"},
			present: []string{"bridge", "nsproxy-cni"}, searched: a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := installCNIDir(t, "podman-network.conflist")
			path := filepath.Join(dir, "podman-network.conflist")
			code, out, errOut := runInstallCNI(installCNICmd, append([]string{"--conflist", path}, tt.args...)...)
			if code != 0 || !strings.Contains(out, "installed nsproxy-cni") {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			for _, p := range tt.missing {
				want := fmt.Sprintf("nsproxy install-cni: warning: %s chains plugin %q, found in none of the CNI plugin directories (%s)", path, p, tt.searched)
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			for _, p := range tt.present {
				if strings.Contains(errOut, fmt.Sprintf("plugin %q", p)) {
					t.Errorf("stderr warns about %s, which is there:\n%s", p, errOut)
				}
			}
			if n := strings.Count(errOut, "warning:"); n != len(tt.missing) {
				t.Errorf("%d warnings, want %d:\n%s", n, len(tt.missing), errOut)
			}
		})
	}
	// An already installed file is checked too.
	dir := installCNIDir(t, "podman-network.conflist")
	path := filepath.Join(dir, "podman-network.conflist")
	runInstallCNI(installCNICmd, "--conflist", path, "--cni-bin-dir", a+":"+b)
	_, out, errOut := runInstallCNI(installCNICmd, "--conflist", path, "--cni-bin-dir", a+":"+b)
	if !strings.Contains(out, "already installed") || !strings.Contains(errOut, `plugin "firewall"`) {
		t.Errorf("second run: stdout %q, stderr %q", out, errOut)
	}
}
