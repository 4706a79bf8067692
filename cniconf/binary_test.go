package cniconf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMissingPlugins(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for dir, names := range map[string][]string{a: {"bridge", "nsproxy-cni"}, b: {"host-local"}} {
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(b, "firewall"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(b, "tuning"), 0o755); err != nil {
		t.Fatal(err)
	}
	chain := `{"plugins": [{"type": "bridge", "ipam": {"type": "host-local"}}, {"type": "firewall"}, {"type": "tuning"},
		{"type": "portmap"}, {"type": "../` + filepath.Base(a) + `/bridge"}, {"type": "nsproxy-cni"}]}`
	tests := []struct {
		name string
		dirs []string
		want []string
	}{
		{"both", []string{a, b}, []string{"firewall", "tuning", "portmap", "../" + filepath.Base(a) + "/bridge"}},
		{"one", []string{a}, []string{"host-local", "firewall", "tuning", "portmap", "../" + filepath.Base(a) + "/bridge"}},
		{"none", nil, []string{"bridge", "host-local", "firewall", "tuning", "portmap", "../" + filepath.Base(a) + "/bridge", "nsproxy-cni"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MissingPlugins([]byte(chain), tt.dirs); !slices.Equal(got, tt.want) {
				t.Errorf("MissingPlugins = %q, want %q", got, tt.want)
			}
		})
	}
	if got := MissingPlugins([]byte("{not json"), []string{a}); got != nil {
		t.Errorf("not JSON: %q", got)
	}
}

func TestInstallPluginBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin") // created by the install
	if err := CheckPluginBinary(bin); err == nil || !strings.Contains(err.Error(), "not an executable in "+bin) {
		t.Errorf("CheckPluginBinary before: %v", err)
	}
	src := filepath.Join(t.TempDir(), "nsproxy-cni")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := InstallPluginBinary(src, bin, true); err != nil || !strings.Contains(msg, "dry run: would copy") {
		t.Errorf("dry run: %q, %v", msg, err)
	}
	if _, err := os.Stat(bin); err == nil {
		t.Error("a dry run created the directory")
	}
	if msg, err := InstallPluginBinary(src, bin, false); err != nil || !strings.Contains(msg, "copied from "+src) {
		t.Fatalf("%q, %v", msg, err)
	}
	if fi, err := os.Stat(filepath.Join(bin, PluginType)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("plugin binary: %v %v", fi, err)
	}
	if err := CheckPluginBinary(bin); err != nil {
		t.Errorf("CheckPluginBinary after: %v", err)
	}
	if msg, err := InstallPluginBinary(src, bin, false); err != nil || !strings.HasSuffix(msg, "up to date") {
		t.Errorf("again: %q, %v", msg, err)
	}
	if _, err := InstallPluginBinary(filepath.Join(t.TempDir(), "nope"), bin, false); !os.IsNotExist(err) {
		t.Errorf("missing source: %v", err)
	}
}

// FuzzMissingPlugins: never panics, names each type at most once, never an
// empty type or one that is there.
func FuzzMissingPlugins(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"plugins": null}`, `{"plugins": [{"type": "bridge", "ipam": {"type": "host-local"}}]}`,
		`{"plugins": [{"type": "../../bin/sh"}, {"type": ""}, {"type": "x", "ipam": 7}]}`,
		`{"plugins": [{"type": "a"}, {"type": "a", "ipam": {"type": "a"}}]}`, `{"plugins": [1, "x", {"type": 2}]}`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bridge"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := MissingPlugins(data, []string{dir})
		seen := map[string]bool{}
		for _, p := range got {
			if seen[p] || p == "" || p == "bridge" {
				t.Fatalf("missing %q from %q", got, data)
			}
			seen[p] = true
		}
	})
}
