package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/nsproxy/nsproxy/sidecar/config"
)

var updateInstallCNIGolden = flag.Bool("update-installcni-golden", false, "rewrite cmd/nsproxy/testdata/installcni/*.golden")

const installCNIData = "testdata/installcni"

func readInstallCNIData(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(installCNIData, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// installCNIGolden compares got with testdata/installcni/name, or rewrites
// it with -update-installcni-golden.
func installCNIGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(installCNIData, name)
	if *updateInstallCNIGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update-installcni-golden to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update-installcni-golden rewrites it)\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// pluginTypes lists the "type" of each plugin of a conflist.
func pluginTypes(t testing.TB, data []byte) []string {
	t.Helper()
	c, err := parseConflist(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return c.types
}

func TestInstallConflist(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		opt     cniInstallOptions
		golden  string // "": the file must stay as it is
		summary string
		note    string // a note that must be printed
		types   []string
	}{
		{
			name: "podman default network keeps portmap", file: "podman-bridge.conflist",
			golden: "podman-bridge.install.golden", summary: "installed nsproxy-cni", note: "portmap stays in the chain",
			types: []string{"bridge", "portmap", "firewall", "tuning", "nsproxy-cni"},
		},
		{
			name: "podman default network replaces portmap", file: "podman-bridge.conflist", opt: cniInstallOptions{ReplacePortmap: true},
			golden: "podman-bridge.replace-portmap.golden", summary: "removed portmap", note: "UDP and SCTP mappings are no longer forwarded",
			types: []string{"bridge", "firewall", "tuning", "nsproxy-cni"},
		},
		{
			name: "podman network create output", file: "podman-network.conflist",
			golden: "podman-network.install.golden", summary: "installed nsproxy-cni",
			types: []string{"bridge", "portmap", "firewall", "tuning", "nsproxy-cni"},
		},
		{
			name: "containerd", file: "containerd.conflist",
			golden: "containerd.install.golden", summary: "installed nsproxy-cni",
			types: []string{"bridge", "portmap", "nsproxy-cni"},
		},
		{
			name: "containerd replaces portmap, with plugin config", file: "containerd.conflist",
			opt: cniInstallOptions{ReplacePortmap: true, PluginConfig: mustPluginConfig(t,
				`{"nameTemplate": "{{.PodNamespace}}-{{.PodName}}", "capabilities": {"aliases": true}, "strict": true}`)},
			golden: "containerd.replace-portmap.golden", summary: "removed portmap",
			types: []string{"bridge", "nsproxy-cni"},
		},
		{
			name: "already installed", file: "already-installed.conflist",
			summary: "already installed", types: []string{"bridge", "nsproxy-cni"},
		},
		{
			name: "already installed, new plugin config updates in place", file: "already-installed.conflist",
			opt:    cniInstallOptions{PluginConfig: mustPluginConfig(t, `{"tenant": "web", "socket": "/run/other.sock"}`)},
			golden: "already-installed.update.golden", summary: "updated the nsproxy-cni entry",
			types: []string{"bridge", "nsproxy-cni"},
		},
		{
			name: "unknown fields, order, numbers and HTML characters are preserved", file: "unknown-fields.conflist",
			golden: "unknown-fields.install.golden", summary: "installed nsproxy-cni",
			types: []string{"ptp", "tuning", "firewall", "nsproxy-cni"},
		},
		{
			name: "a lone portmap is something to chain after", file: "portmap-only.conflist",
			golden: "portmap-only.install.golden", summary: "installed nsproxy-cni",
			types: []string{"portmap", "nsproxy-cni"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := readInstallCNIData(t, tt.file)
			res, err := installConflist(in, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res.summary, tt.summary) {
				t.Errorf("summary %q, want %q in it", res.summary, tt.summary)
			}
			if tt.note != "" && !slices.ContainsFunc(res.notes, func(n string) bool { return strings.Contains(n, tt.note) }) {
				t.Errorf("notes %q, want one with %q", res.notes, tt.note)
			}
			out := res.out
			if tt.golden == "" {
				if out != nil {
					t.Fatalf("the file would change:\n%s", out)
				}
				out = in
			} else {
				installCNIGolden(t, tt.golden, out)
			}
			if got := pluginTypes(t, out); !slices.Equal(got, tt.types) {
				t.Errorf("plugins %q, want %q", got, tt.types)
			}
			// install∘install == install.
			again, err := installConflist(out, tt.opt)
			if err != nil || again.out != nil || again.summary != "already installed" {
				t.Errorf("second install: %v, summary %q, changes:\n%s", err, again.summary, again.out)
			}
			if tt.golden == "" {
				return
			}
			// The other keys of the document are untouched.
			inDoc, _ := parseJSONObject(in)
			outDoc, _ := parseJSONObject(out)
			for _, m := range inDoc {
				if m.Key == "plugins" {
					continue
				}
				v, ok := outDoc.get(m.Key)
				if !ok || !jsonEqual(v, m.Value) {
					t.Errorf("key %q: %s, want %s", m.Key, v, m.Value)
				}
			}
			if slices.Contains(pluginTypes(t, in), cniPluginType) {
				return // uninstall removes the entry that was there
			}
			// uninstall∘install == identity, modulo formatting.
			un, err := uninstallConflist(out)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(un.out, in) {
				t.Errorf("uninstall does not restore the original:\n%s", un.out)
			}
			if got, want := jsonKeyOrder(t, un.out), jsonKeyOrder(t, in); !slices.Equal(got, want) {
				t.Errorf("key order after uninstall %q, want %q", got, want)
			}
		})
	}
}

func jsonKeyOrder(t *testing.T, b []byte) []string {
	t.Helper()
	o, err := parseJSONObject(b)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range o {
		keys = append(keys, m.Key)
	}
	return keys
}

func mustPluginConfig(t *testing.T, s string) jsonObject {
	t.Helper()
	o, err := parsePluginConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestInstallConflistRefuses(t *testing.T) {
	tests := []struct {
		file string
		opt  cniInstallOptions
		want error
		msg  string
	}{
		{"broken.conflist", cniInstallOptions{}, errConfNotJSON, "invalid character"},
		{"no-plugins.conflist", cniInstallOptions{}, errNotConflist, `no "plugins" list`},
		{"plugins-not-list.conflist", cniInstallOptions{}, errNotConflist, `"plugins" is not a list`},
		{"single.conf", cniInstallOptions{}, errNotConflist, "convert it into a .conflist"},
		{"duplicate-key.conflist", cniInstallOptions{}, errNotConflist, `duplicate key "plugins"`},
		{"old-version.conflist", cniInstallOptions{}, errCNIVersion, `"0.3.1"`},
		{"empty-plugins.conflist", cniInstallOptions{}, errNothingToWrap, "chained plugin"},
		{"portmap-only.conflist", cniInstallOptions{ReplacePortmap: true}, errNothingToWrap, "chained plugin"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := installConflist(readInstallCNIData(t, tt.file), tt.opt)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want %v with %q", err, tt.want, tt.msg)
			}
		})
	}
	deep := `{"cniVersion": "1.0.0", "plugins": [{"type": "a", "d": ` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}]}`
	if _, err := installConflist([]byte(deep), cniInstallOptions{}); !errors.Is(err, errNotConflist) || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("deep nesting: %v", err)
	}
	big := `{"cniVersion": "1.0.0", "plugins": [{"type": "a", "d": "` + strings.Repeat("x", cniMaxSize) + `"}]}`
	if _, err := installConflist([]byte(big), cniInstallOptions{}); !errors.Is(err, errNotConflist) || !strings.Contains(err.Error(), "larger") {
		t.Errorf("large file: %v", err)
	}
	for _, doc := range []string{``, `[]`, `"x"`, `{"plugins": [1]}`, `{"plugins": [{"type": 1}]}`, `{"plugins": [{}]}`,
		`{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]} {}`, `{"cniVersion": "1.0.0", "plugins": [{"type": "a", "type": "b"}]}`} {
		if _, err := installConflist([]byte(doc), cniInstallOptions{}); err == nil {
			t.Errorf("%s: installed", doc)
		}
	}
}

func TestJSONDepth(t *testing.T) {
	for doc, want := range map[string]int{`1`: 0, `{}`: 1, `[[], {"a": [1]}]`: 3, `{"a": "[[[{{\"]]"}`: 1, `["\\", [0]]`: 2} {
		if got := jsonDepth([]byte(doc)); got != want {
			t.Errorf("jsonDepth(%s) = %d, want %d", doc, got, want)
		}
	}
}

func TestUninstallConflist(t *testing.T) {
	replaced := func(t *testing.T, file string) []byte {
		res, err := installConflist(readInstallCNIData(t, file), cniInstallOptions{ReplacePortmap: true})
		if err != nil {
			t.Fatal(err)
		}
		return res.out
	}
	t.Run("restores portmap at its place", func(t *testing.T) {
		un, err := uninstallConflist(replaced(t, "podman-bridge.conflist"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, un.out), []string{"bridge", "portmap", "firewall", "tuning"}; !slices.Equal(got, want) {
			t.Errorf("plugins %q, want %q", got, want)
		}
		if !strings.Contains(un.summary, "restored portmap") {
			t.Errorf("summary %q", un.summary)
		}
		if bytes.Contains(un.out, []byte(cniRemovedKey)) {
			t.Errorf("the record stays:\n%s", un.out)
		}
	})
	t.Run("nsproxy-cni placed before portmap by hand", func(t *testing.T) {
		in := []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "nsproxy-cni"},
			{"type": "portmap", "capabilities": {"portMappings": true}}, {"type": "tuning"}]}`)
		res, err := installConflist(in, cniInstallOptions{ReplacePortmap: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, res.out), []string{"bridge", "nsproxy-cni", "tuning"}; !slices.Equal(got, want) {
			t.Fatalf("plugins %q, want %q", got, want)
		}
		un, err := uninstallConflist(res.out)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, un.out), []string{"bridge", "portmap", "tuning"}; !slices.Equal(got, want) {
			t.Errorf("plugins %q, want %q", got, want)
		}
	})
	t.Run("two portmaps come back in order", func(t *testing.T) {
		in := []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "portmap", "n": 1},
			{"type": "portmap", "n": 2}, {"type": "tuning"}]}`)
		res, err := installConflist(in, cniInstallOptions{ReplacePortmap: true})
		if err != nil {
			t.Fatal(err)
		}
		un, err := uninstallConflist(res.out)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(un.out, in) {
			t.Errorf("got\n%s", un.out)
		}
	})
	t.Run("portmap added again by hand is not doubled", func(t *testing.T) {
		out := replaced(t, "containerd.conflist")
		c, _ := parseConflist(out)
		plugins := slices.Insert(slices.Clone(c.plugins), 1, json.RawMessage(`{"type":"portmap","by":"hand"}`))
		edited, err := c.encode(plugins, mustRemovedPlugins(t, c))
		if err != nil {
			t.Fatal(err)
		}
		// A second replace drops the new portmap but keeps the first record.
		res, err := installConflist(edited, cniInstallOptions{ReplacePortmap: true})
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(res.out, []byte(`"portmap"`)); n != 1 {
			t.Errorf("%d portmaps recorded:\n%s", n, res.out)
		}
		un, err := uninstallConflist(res.out)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(un.out, readInstallCNIData(t, "containerd.conflist")) {
			t.Errorf("got\n%s", un.out)
		}
		// Uninstall while the hand-made portmap is there: it stays, the
		// record is not restored next to it.
		un, err = uninstallConflist(edited)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, un.out), []string{"bridge", "portmap"}; !slices.Equal(got, want) || !bytes.Contains(un.out, []byte(`"hand"`)) {
			t.Errorf("plugins %q, want %q (the hand-made one):\n%s", got, want, un.out)
		}
		if len(un.notes) == 0 {
			t.Error("no note about the record that was not restored")
		}
	})
	t.Run("not installed", func(t *testing.T) {
		un, err := uninstallConflist(readInstallCNIData(t, "podman-bridge.conflist"))
		if err != nil || un.out != nil || un.summary != "not installed" {
			t.Errorf("%v, summary %q, changes:\n%s", err, un.summary, un.out)
		}
	})
	t.Run("entry added by hand", func(t *testing.T) {
		un, err := uninstallConflist(readInstallCNIData(t, "already-installed.conflist"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, un.out), []string{"bridge"}; !slices.Equal(got, want) {
			t.Errorf("plugins %q, want %q", got, want)
		}
	})
	t.Run("malformed record is refused", func(t *testing.T) {
		in := []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "nsproxy-cni"}],
			"nsproxyRemovedPlugins": [{"index": "one"}]}`)
		if _, err := uninstallConflist(in); err == nil || !strings.Contains(err.Error(), "backup") {
			t.Errorf("error %v, want one that points to the backup", err)
		}
	})
	for _, file := range []string{"broken.conflist", "no-plugins.conflist", "single.conf"} {
		t.Run("refuses "+file, func(t *testing.T) {
			if _, err := uninstallConflist(readInstallCNIData(t, file)); !errors.Is(err, errConfNotJSON) && !errors.Is(err, errNotConflist) {
				t.Errorf("error %v", err)
			}
		})
	}
}

func mustRemovedPlugins(t *testing.T, c *conflist) []removedPlugin {
	t.Helper()
	r, err := c.removedPlugins()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParsePluginConfig(t *testing.T) {
	for _, ok := range []string{``, `{}`, `{"type": "nsproxy-cni"}`, `{"strict": true, "capabilities": {"portMappings": false}}`} {
		if _, err := parsePluginConfig(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{`[]`, `{`, `{"type": "portmap"}`, `{"capabilities": true}`, `{"cniVersion": "1.0.0"}`,
		`{"name": "x"}`, `{"a": 1, "a": 2}`} {
		if _, err := parsePluginConfig(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	// Capabilities of --plugin-config override the defaults.
	res, err := installConflist(readInstallCNIData(t, "containerd.conflist"),
		cniInstallOptions{PluginConfig: mustPluginConfig(t, `{"capabilities": {"io.kubernetes.cri.pod-annotations": false}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.out, []byte(`"io.kubernetes.cri.pod-annotations": false`)) {
		t.Errorf("capability not overridden:\n%s", res.out)
	}
}

// installCNIDir copies testdata files into a new CNI config directory.
func installCNIDir(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), readInstallCNIData(t, f), 0o644); err != nil {
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

func TestInstallCNIFiles(t *testing.T) {
	dir := installCNIDir(t, "podman-bridge.conflist", "containerd.conflist", "broken.conflist", "single.conf", "unknown-fields.conflist")
	if err := os.WriteFile(filepath.Join(dir, cniLockName), nil, 0o644); err != nil {
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
		original[f], _ = os.ReadFile(f)
	}

	// --all: the broken file fails (exit 1) and is named, the others are
	// installed, the single-plugin file is skipped with a hint.
	code, out, errOut := runInstallCNI(installCNICmd, "--all", "--dir", dir)
	if code != 1 || !strings.Contains(errOut, "broken.conflist: not valid JSON") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{podman + ": installed nsproxy-cni (backup: " + podman + ".nsproxy-backup)",
		containerd + ": installed nsproxy-cni", "single.conf: skipped", "note: portmap stays", "the runtime must find nsproxy-cni"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "broken.conflist")); !bytes.Equal(b, readInstallCNIData(t, "broken.conflist")) {
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
	checkFile(podman+cniBackupSuffix, 0o600, 0, 0)
	checkFile(containerd, 0o644, 1234, 5678)
	checkFile(containerd+cniBackupSuffix, 0o644, 1234, 5678)
	for f, b := range original {
		if got, _ := os.ReadFile(f + cniBackupSuffix); !bytes.Equal(got, b) {
			t.Errorf("%s: backup is not the original", f)
		}
	}
	checkNoTemp := func() {
		t.Helper()
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), "nsproxy-tmp") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	}
	checkNoTemp()

	// Again: nothing changes, not even the inode.
	before, _ := os.Stat(podman)
	code, out, _ = runInstallCNI(installCNICmd, "--conflist", podman)
	if code != 0 || !strings.Contains(out, podman+": already installed") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	if after, _ := os.Stat(podman); !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("an install that changes nothing rewrote the file")
	}

	// --dry-run prints, writes nothing.
	installed, _ := os.ReadFile(podman)
	code, out, _ = runInstallCNI(installCNICmd, "--conflist", podman, "--replace-portmap", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: would write") || !strings.Contains(out, cniRemovedKey) {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	if b, _ := os.ReadFile(podman); !bytes.Equal(b, installed) {
		t.Error("--dry-run wrote the file")
	}

	// A later install does not overwrite the backup.
	code, out, _ = runInstallCNI(installCNICmd, "--conflist", podman, "--replace-portmap")
	if code != 0 || !strings.Contains(out, "removed portmap") || strings.Contains(out, "backup:") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	if got, _ := os.ReadFile(podman + cniBackupSuffix); !bytes.Equal(got, original[podman]) {
		t.Error("the backup was overwritten")
	}
	checkFile(podman, 0o600, 0, 0)

	// uninstall --all: portmap is back, the backups go (the files are back
	// to their content), the broken file still fails.
	code, out, errOut = runInstallCNI(uninstallCNICmd, "--all", "--dir", dir)
	if code != 1 || !strings.Contains(errOut, "broken.conflist") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	for f, b := range original {
		got, _ := os.ReadFile(f)
		if !jsonEqual(got, b) {
			t.Errorf("%s after uninstall:\n%s", f, got)
		}
		if _, err := os.Stat(f + cniBackupSuffix); err == nil {
			t.Errorf("%s: backup left after a complete uninstall", f)
		}
	}
	if !strings.Contains(out, podman+": removed nsproxy-cni; restored portmap (removed the backup") {
		t.Errorf("stdout %q", out)
	}
	checkFile(podman, 0o600, 0, 0)
	checkFile(containerd, 0o644, 1234, 5678)
	checkNoTemp()
	code, out, _ = runInstallCNI(uninstallCNICmd, "--conflist", podman)
	if code != 0 || !strings.Contains(out, "not installed") {
		t.Errorf("second uninstall: exit %d, stdout %q", code, out)
	}
}

func TestInstallCNISymlinkAndBinary(t *testing.T) {
	dir := installCNIDir(t, "containerd.conflist")
	real := filepath.Join(dir, "containerd.conflist")
	link := filepath.Join(t.TempDir(), "10-net.conflist")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	// A missing plugin would disable the whole network: refused.
	code, _, errOut := runInstallCNI(installCNICmd, "--conflist", link, "--bin-dir", bin)
	if code != 1 || !strings.Contains(errOut, "not an executable in "+bin) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	src := filepath.Join(t.TempDir(), "nsproxy-cni")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runInstallCNI(installCNICmd, "--conflist", link, "--bin-dir", bin, "--plugin-binary", src)
	if code != 0 || !strings.Contains(out, "copied from") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if fi, err := os.Stat(filepath.Join(bin, "nsproxy-cni")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("plugin binary: %v %v", fi, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link is no longer a link: %v %v", fi, err)
	}
	if got := pluginTypes(t, readFileT(t, real)); !slices.Contains(got, "nsproxy-cni") {
		t.Errorf("the link's target was not changed: %q", got)
	}
	if _, err := os.Stat(real + cniBackupSuffix); err != nil {
		t.Errorf("no backup next to the target: %v", err)
	}
	code, out, _ = runInstallCNI(installCNICmd, "--conflist", link, "--bin-dir", bin, "--plugin-binary", src)
	if code != 0 || !strings.Contains(out, "up to date") || !strings.Contains(out, "already installed") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func readFileT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
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

// FuzzInstallConflist: never panic; install∘install == install;
// uninstall∘install restores the original document modulo formatting.
func FuzzInstallConflist(f *testing.F) {
	entries, err := os.ReadDir(installCNIData)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".golden") {
			f.Add(readInstallCNIData(f, e.Name()), false)
			f.Add(readInstallCNIData(f, e.Name()), true)
		}
	}
	for _, s := range []string{``, `{}`, `null`, `{"plugins": null}`, `{"cniVersion": "1.0.0", "plugins": [{"type": "portmap"}]}`,
		`{"cniVersion": "1.0.0", "plugins": [{"type": "a"}, {"type": "portmap", "x": "<&>"}, {"type": "portmap"}]}`,
		`{"cniVersion": "1.0.0", "plugins": [{"type": "a"}], "nsproxyRemovedPlugins": [{"index": 99, "plugin": {"type": "portmap"}}]}`,
		`{"cniVersion": "1.0.0", "plugins": [{"type": "a", "capabilities": 7}, {"type": "nsproxy-cni", "capabilities": []}]}`,
		"{\"cniVersion\": \"1.1.0\", \"plugins\": [{\"type\": \"a\", \"s\": \"\xff\\u00e9\", \"n\": 1e999}]}"} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, replace bool) {
		opt := cniInstallOptions{ReplacePortmap: replace}
		uninstallConflist(data) // must not panic
		res, err := installConflist(data, opt)
		if err != nil {
			return
		}
		cur := data
		if res.out != nil {
			cur = res.out
		}
		again, err := installConflist(cur, opt)
		if err != nil || again.out != nil {
			t.Fatalf("second install: %v\nfirst:\n%s\nsecond:\n%s", err, cur, again.out)
		}
		c, _ := parseConflist(data)
		if slices.Contains(c.types, cniPluginType) {
			return // uninstall removes entries that were there before
		}
		if _, ok := c.doc.get(cniRemovedKey); ok {
			return
		}
		un, err := uninstallConflist(cur)
		if err != nil {
			t.Fatalf("uninstall: %v\n%s", err, cur)
		}
		if !jsonEqual(un.out, data) {
			t.Fatalf("uninstall∘install changed the document\nbefore:\n%s\nafter:\n%s", data, un.out)
		}
		if got := pluginTypes(t, un.out); !slices.Equal(got, c.types) {
			t.Fatalf("plugins %q, want %q", got, c.types)
		}
	})
}

// TestManifests checks that what manifests/ ships parses and says what
// the documentation promises.
func TestManifests(t *testing.T) {
	root := filepath.Join("..", "..", "manifests")
	t.Run("conflists", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(root, "cni", "*.conflist"))
		if len(files) < 2 {
			t.Fatalf("conflists: %q", files)
		}
		for _, f := range files {
			data := readFileT(t, f)
			types := pluginTypes(t, data)
			if types[len(types)-1] != cniPluginType || slices.Contains(types, cniPortmapType) {
				t.Errorf("%s: plugins %q: want nsproxy-cni last, instead of portmap", f, types)
			}
			res, err := installConflist(data, cniInstallOptions{})
			if err != nil || res.out != nil {
				t.Errorf("%s: install-cni would change it: %v\n%s", f, err, res.out)
			}
			if !bytes.Contains(data, []byte(`"portMappings": true`)) || !bytes.Contains(data, []byte(`"io.kubernetes.cri.pod-annotations": true`)) {
				t.Errorf("%s: capabilities missing", f)
			}
		}
	})
	t.Run("kubernetes", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(root, "kubernetes", "*.yaml"))
		if len(files) == 0 {
			t.Fatal("no kubernetes manifests")
		}
		kinds := map[string]map[string]any{}
		for _, f := range files {
			dec := yaml.NewDecoder(bytes.NewReader(readFileT(t, f)))
			for {
				var doc map[string]any
				if err := dec.Decode(&doc); err != nil {
					if errors.Is(err, io.EOF) {
						break
					}
					t.Fatalf("%s: %v", f, err)
				}
				if doc == nil {
					continue
				}
				kind, _ := doc["kind"].(string)
				kinds[kind] = doc
				if kind != "Namespace" {
					if ns := yamlDig(doc, "metadata", "namespace"); ns != "nsproxy-system" {
						t.Errorf("%s %v: namespace %v", kind, yamlDig(doc, "metadata", "name"), ns)
					}
				}
			}
		}
		for _, k := range []string{"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"} {
			if kinds[k] == nil {
				t.Errorf("no %s", k)
			}
		}
		ds := kinds["DaemonSet"]
		spec := yamlDig(ds, "spec", "template", "spec")
		for _, k := range []string{"hostNetwork", "hostPID"} {
			if yamlDig(spec, k) != true {
				t.Errorf("DaemonSet %s = %v, want true", k, yamlDig(spec, k))
			}
		}
		volumes := map[string]string{} // name -> hostPath
		for _, v := range yamlList(yamlDig(spec, "volumes")) {
			if p, ok := yamlDig(v, "hostPath", "path").(string); ok {
				volumes[yamlDig(v, "name").(string)] = p
			}
		}
		for _, p := range []string{"/var/run/netns", "/etc/cni/net.d", "/opt/cni/bin", "/run/nsproxy", "/var/lib/nsproxy"} {
			if !slices.Contains(slices.Collect(maps.Values(volumes)), p) {
				t.Errorf("no hostPath volume %s", p)
			}
		}
		var daemonC, initC map[string]any
		for _, c := range yamlList(yamlDig(spec, "containers")) {
			if slices.Contains(strings.Fields(containerArgs(c)), "run") {
				daemonC = c
			}
		}
		for _, c := range yamlList(yamlDig(spec, "initContainers")) {
			if strings.Contains(containerArgs(c), "install-cni --all --dir /host/etc/cni/net.d") {
				initC = c
			}
		}
		if daemonC == nil || initC == nil {
			t.Fatalf("want a main container running `nsproxy run` and an install-cni init container")
		}
		// A surge rollout: the new pod takes the sockets over, the old one
		// waits for its deletion instead of being restarted.
		if yamlDig(ds, "spec", "updateStrategy", "rollingUpdate", "maxSurge") != 1 ||
			yamlDig(ds, "spec", "updateStrategy", "rollingUpdate", "maxUnavailable") != 0 {
			t.Errorf("DaemonSet updateStrategy %v, want maxSurge 1, maxUnavailable 0", yamlDig(ds, "spec", "updateStrategy"))
		}
		for _, want := range []string{"run -f /etc/nsproxy/nsproxy.cfg", "--socket /run/nsproxy/nsproxy.sock", "--metrics-addr 127.0.0.1:9101",
			"--takeover", "--after-handover wait"} {
			if !strings.Contains(containerArgs(daemonC), want) {
				t.Errorf("main container args %q lack %q", containerArgs(daemonC), want)
			}
		}
		if !strings.Contains(containerArgs(initC), "--bin-dir /host/opt/cni/bin") {
			t.Errorf("init container args %q do not install the plugin binary", containerArgs(initC))
		}
		for _, c := range []map[string]any{daemonC, initC} {
			if yamlDig(c, "securityContext", "privileged") != true {
				t.Errorf("container %v is not privileged", yamlDig(c, "name"))
			}
		}
		netnsMounted := false
		for _, m := range yamlList(yamlDig(daemonC, "volumeMounts")) {
			if volumes[yamlDig(m, "name").(string)] == "/var/run/netns" && yamlDig(m, "mountPath") == "/var/run/netns" {
				netnsMounted = true
				if yamlDig(m, "mountPropagation") != "HostToContainer" {
					t.Errorf("netns mount propagation %v, want HostToContainer", yamlDig(m, "mountPropagation"))
				}
			}
		}
		if !netnsMounted {
			t.Error("the main container does not mount /var/run/netns")
		}
		for _, probe := range []string{"readinessProbe", "livenessProbe"} {
			cmd, _ := yamlDig(daemonC, probe, "exec", "command").([]any)
			if len(cmd) < 2 || cmd[1] != "stats" {
				t.Errorf("%s: %v, want an exec of nsproxy stats", probe, cmd)
			}
		}
		// The ConfigMap's configuration is valid.
		cfg, _ := yamlDig(kinds["ConfigMap"], "data", "nsproxy.cfg").(string)
		p := filepath.Join(t.TempDir(), "nsproxy.cfg")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(p); err != nil {
			t.Errorf("ConfigMap nsproxy.cfg: %v", err)
		}
	})
	t.Run("systemd", func(t *testing.T) {
		unit := string(readFileT(t, filepath.Join(root, "systemd", "nsproxy.service")))
		for _, want := range []string{"Type=notify", "NotifyAccess=all", "ExecStart=/usr/local/bin/nsproxy run -f /etc/nsproxy/nsproxy.cfg",
			"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "StateDirectory=nsproxy", "RuntimeDirectory=nsproxy",
			"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"} {
			if !strings.Contains(unit, want) {
				t.Errorf("nsproxy.service lacks %q", want)
			}
		}
	})
	t.Run("Dockerfile", func(t *testing.T) {
		df := string(readFileT(t, filepath.Join("..", "..", "Dockerfile")))
		for _, want := range []string{"FROM scratch", "bin/nsproxy", "nsproxy-cni", "ENTRYPOINT"} {
			if !strings.Contains(df, want) {
				t.Errorf("Dockerfile lacks %q", want)
			}
		}
	})
}

// yamlDig walks nested YAML maps; nil when a key is missing.
func yamlDig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func yamlList(v any) []map[string]any {
	var out []map[string]any
	l, _ := v.([]any)
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// containerArgs joins a container's command and args.
func containerArgs(c map[string]any) string {
	var parts []string
	for _, k := range []string{"command", "args"} {
		l, _ := c[k].([]any)
		for _, x := range l {
			parts = append(parts, strings.TrimSpace(yamlString(x)))
		}
	}
	return strings.Join(parts, " ")
}

func yamlString(x any) string {
	s, _ := x.(string)
	return s
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
		got := missingPlugins(data, []string{dir})
		seen := map[string]bool{}
		for _, p := range got {
			if seen[p] || p == "" || p == "bridge" {
				t.Fatalf("missing %q from %q", got, data)
			}
			seen[p] = true
		}
	})
}
