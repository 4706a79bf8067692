package cniconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nsproxy/nsproxy/internal/atomicfile"
)

// confDir copies testdata files into a new CNI config directory.
func confDir(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), readData(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// content is what path holds; nil when it cannot be read, which the
// comparisons report.
func content(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func TestConflists(t *testing.T) {
	dir := confDir(t, "podman-bridge.conflist", "containerd.conflist", "single.conf")
	// What a crash of an earlier install leaves is not a conflist.
	os.WriteFile(filepath.Join(dir, ".containerd.conflist"+atomicfile.TempInfix+"1"), []byte(`{"half`), 0o644)
	files, notes, err := Conflists(dir)
	want := []string{filepath.Join(dir, "containerd.conflist"), filepath.Join(dir, "podman-bridge.conflist")}
	if err != nil || !slices.Equal(files, want) {
		t.Errorf("Conflists = %q, %v; want %q", files, err, want)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "single.conf: skipped") {
		t.Errorf("notes %q", notes)
	}
	if _, _, err := Conflists(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
}

// TestInstallFile: mode, owner, backup, idempotence, dry run and the
// round trip through UninstallFile, on files in a directory with podman's
// lock.
func TestInstallFile(t *testing.T) {
	dir := confDir(t, "podman-bridge.conflist", "containerd.conflist", "broken.conflist")
	if err := os.WriteFile(filepath.Join(dir, lockName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	podman := filepath.Join(dir, "podman-bridge.conflist")
	containerd := filepath.Join(dir, "containerd.conflist")
	if err := os.Chmod(podman, 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(containerd, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	original := map[string][]byte{}
	for _, f := range []string{podman, containerd} {
		original[f] = content(f)
	}
	for _, f := range []string{podman, containerd} {
		res, err := InstallFile(f, Options{}, false)
		if err != nil || !strings.HasPrefix(res.Summary, "installed nsproxy-cni (backup: "+f+BackupSuffix+")") {
			t.Fatalf("%s: %+v, %v", f, res, err)
		}
	}
	broken := filepath.Join(dir, "broken.conflist")
	if _, err := InstallFile(broken, Options{}, false); !errors.Is(err, ErrNotJSON) {
		t.Errorf("broken file: %v", err)
	}
	if !bytes.Equal(content(broken), readData(t, "broken.conflist")) {
		t.Error("the broken file was changed")
	}
	checkFile := func(path string, mode os.FileMode, uid, gid int) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (int(st.Uid) != uid || int(st.Gid) != gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", path, st.Uid, st.Gid, uid, gid)
		}
	}
	checkFile(podman, 0o600, 0, 0)
	checkFile(podman+BackupSuffix, 0o600, 0, 0)
	checkFile(containerd, 0o644, 1234, 5678)
	checkFile(containerd+BackupSuffix, 0o644, 1234, 5678)
	for f, b := range original {
		if got := content(f + BackupSuffix); !bytes.Equal(got, b) {
			t.Errorf("%s: backup is not the original", f)
		}
	}
	checkNoTemp := func() {
		t.Helper()
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), atomicfile.TempInfix) {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	}
	checkNoTemp()

	// Again: nothing changes, not even the inode.
	before, _ := os.Stat(podman)
	if res, err := InstallFile(podman, Options{}, false); err != nil || res.Summary != "already installed" || res.Out != nil {
		t.Errorf("%+v, %v", res, err)
	}
	if after, _ := os.Stat(podman); !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("an install that changes nothing rewrote the file")
	}

	// A dry run says what it would write, writes nothing.
	installed := content(podman)
	res, err := InstallFile(podman, Options{ReplacePortmap: true}, true)
	if err != nil || !bytes.Contains(res.Out, []byte(RemovedKey)) {
		t.Errorf("dry run: %+v, %v", res, err)
	}
	if !bytes.Equal(content(podman), installed) {
		t.Error("a dry run wrote the file")
	}

	// A later install does not overwrite the backup.
	res, err = InstallFile(podman, Options{ReplacePortmap: true}, false)
	if err != nil || !strings.Contains(res.Summary, "removed portmap") || strings.Contains(res.Summary, "backup:") {
		t.Errorf("%+v, %v", res, err)
	}
	if got := content(podman + BackupSuffix); !bytes.Equal(got, original[podman]) {
		t.Error("the backup was overwritten")
	}
	checkFile(podman, 0o600, 0, 0)

	// Uninstall: portmap is back, the backups go (the files are back to
	// their content), modes and owners stay.
	for f, b := range original {
		if _, err := UninstallFile(f, true); err != nil || !bytes.Equal(content(f+BackupSuffix), b) {
			t.Errorf("%s: a dry run of uninstall changed something: %v", f, err)
		}
		res, err := UninstallFile(f, false)
		if err != nil || !strings.Contains(res.Summary, "(removed the backup") {
			t.Errorf("%s: %+v, %v", f, res, err)
		}
		if got := content(f); !jsonEqual(got, b) {
			t.Errorf("%s after uninstall:\n%s", f, got)
		}
		if _, err := os.Stat(f + BackupSuffix); err == nil {
			t.Errorf("%s: backup left after a complete uninstall", f)
		}
	}
	checkFile(podman, 0o600, 0, 0)
	checkFile(containerd, 0o644, 1234, 5678)
	checkNoTemp()
	if res, err := UninstallFile(podman, false); err != nil || res.Summary != "not installed" {
		t.Errorf("second uninstall: %+v, %v", res, err)
	}
}

// TestInstallFileSymlink: the link's target changes, the link stays.
func TestInstallFileSymlink(t *testing.T) {
	real := filepath.Join(confDir(t, "containerd.conflist"), "containerd.conflist")
	link := filepath.Join(t.TempDir(), "10-net.conflist")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallFile(link, Options{}, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link is no longer a link: %v %v", fi, err)
	}
	if got := pluginTypes(t, content(real)); !slices.Contains(got, PluginType) {
		t.Errorf("the link's target was not changed: %q", got)
	}
	if _, err := os.Stat(real + BackupSuffix); err != nil {
		t.Errorf("no backup next to the target: %v", err)
	}
}

// TestShippedConflists: what manifests/cni ships is what install-cni
// makes of it.
func TestShippedConflists(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "manifests", "cni", "*.conflist"))
	if len(files) < 2 {
		t.Fatalf("conflists: %q", files)
	}
	for _, f := range files {
		data := content(f)
		types := pluginTypes(t, data)
		if types[len(types)-1] != PluginType || slices.Contains(types, portmapType) {
			t.Errorf("%s: plugins %q: want nsproxy-cni last, instead of portmap", f, types)
		}
		res, err := Install(data, Options{})
		if err != nil || res.Out != nil {
			t.Errorf("%s: install-cni would change it: %v\n%s", f, err, res.Out)
		}
		if !bytes.Contains(data, []byte(`"portMappings": true`)) || !bytes.Contains(data, []byte(`"io.kubernetes.cri.pod-annotations": true`)) {
			t.Errorf("%s: capabilities missing", f)
		}
	}
}
