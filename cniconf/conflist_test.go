package cniconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite cniconf/testdata/*.golden")

const testData = "testdata"

func readData(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testData, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkGolden compares got with testdata/name, or rewrites
// it with -update-golden.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(testData, name)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update-golden to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update-golden rewrites it)\n got:\n%s\nwant:\n%s", name, got, want)
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

func TestInstall(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		opt     Options
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
			name: "podman default network replaces portmap", file: "podman-bridge.conflist", opt: Options{ReplacePortmap: true},
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
			opt: Options{ReplacePortmap: true, PluginConfig: mustPluginConfig(t,
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
			opt:    Options{PluginConfig: mustPluginConfig(t, `{"tenant": "web", "socket": "/run/other.sock"}`)},
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
			in := readData(t, tt.file)
			res, err := Install(in, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res.Summary, tt.summary) {
				t.Errorf("summary %q, want %q in it", res.Summary, tt.summary)
			}
			if tt.note != "" && !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, tt.note) }) {
				t.Errorf("notes %q, want one with %q", res.Notes, tt.note)
			}
			out := res.Out
			if tt.golden == "" {
				if out != nil {
					t.Fatalf("the file would change:\n%s", out)
				}
				out = in
			} else {
				checkGolden(t, tt.golden, out)
			}
			if got := pluginTypes(t, out); !slices.Equal(got, tt.types) {
				t.Errorf("plugins %q, want %q", got, tt.types)
			}
			// install∘install == install.
			again, err := Install(out, tt.opt)
			if err != nil || again.Out != nil || again.Summary != "already installed" {
				t.Errorf("second install: %v, summary %q, changes:\n%s", err, again.Summary, again.Out)
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
			if slices.Contains(pluginTypes(t, in), PluginType) {
				return // uninstall removes the entry that was there
			}
			// uninstall∘install == identity, modulo formatting.
			un, err := Uninstall(out)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(un.Out, in) {
				t.Errorf("uninstall does not restore the original:\n%s", un.Out)
			}
			if got, want := jsonKeyOrder(t, un.Out), jsonKeyOrder(t, in); !slices.Equal(got, want) {
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

func mustPluginConfig(t *testing.T, s string) PluginConfig {
	t.Helper()
	o, err := ParsePluginConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestInstallRefuses(t *testing.T) {
	tests := []struct {
		file string
		opt  Options
		want error
		msg  string
	}{
		{"broken.conflist", Options{}, ErrNotJSON, "invalid character"},
		{"no-plugins.conflist", Options{}, ErrNotConflist, `no "plugins" list`},
		{"plugins-not-list.conflist", Options{}, ErrNotConflist, `"plugins" is not a list`},
		{"single.conf", Options{}, ErrNotConflist, "convert it into a .conflist"},
		{"duplicate-key.conflist", Options{}, ErrNotConflist, `duplicate key "plugins"`},
		{"old-version.conflist", Options{}, ErrCNIVersion, `"0.3.1"`},
		{"empty-plugins.conflist", Options{}, ErrNothingToWrap, "chained plugin"},
		{"portmap-only.conflist", Options{ReplacePortmap: true}, ErrNothingToWrap, "chained plugin"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Install(readData(t, tt.file), tt.opt)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want %v with %q", err, tt.want, tt.msg)
			}
		})
	}
	deep := `{"cniVersion": "1.0.0", "plugins": [{"type": "a", "d": ` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}]}`
	if _, err := Install([]byte(deep), Options{}); !errors.Is(err, ErrNotConflist) || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("deep nesting: %v", err)
	}
	big := `{"cniVersion": "1.0.0", "plugins": [{"type": "a", "d": "` + strings.Repeat("x", maxSize) + `"}]}`
	if _, err := Install([]byte(big), Options{}); !errors.Is(err, ErrNotConflist) || !strings.Contains(err.Error(), "larger") {
		t.Errorf("large file: %v", err)
	}
	for _, doc := range []string{``, `[]`, `"x"`, `{"plugins": [1]}`, `{"plugins": [{"type": 1}]}`, `{"plugins": [{}]}`,
		`{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]} {}`, `{"cniVersion": "1.0.0", "plugins": [{"type": "a", "type": "b"}]}`} {
		if _, err := Install([]byte(doc), Options{}); err == nil {
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

func TestUnInstall(t *testing.T) {
	replaced := func(t *testing.T, file string) []byte {
		res, err := Install(readData(t, file), Options{ReplacePortmap: true})
		if err != nil {
			t.Fatal(err)
		}
		return res.Out
	}
	t.Run("restores portmap at its place", func(t *testing.T) {
		un, err := Uninstall(replaced(t, "podman-bridge.conflist"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, un.Out), []string{"bridge", "portmap", "firewall", "tuning"}; !slices.Equal(got, want) {
			t.Errorf("plugins %q, want %q", got, want)
		}
		if !strings.Contains(un.Summary, "restored portmap") {
			t.Errorf("summary %q", un.Summary)
		}
		if bytes.Contains(un.Out, []byte(RemovedKey)) {
			t.Errorf("the record stays:\n%s", un.Out)
		}
	})
	t.Run("nsproxy-cni placed before portmap by hand", func(t *testing.T) {
		in := []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "nsproxy-cni"},
			{"type": "portmap", "capabilities": {"portMappings": true}}, {"type": "tuning"}]}`)
		res, err := Install(in, Options{ReplacePortmap: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, res.Out), []string{"bridge", "nsproxy-cni", "tuning"}; !slices.Equal(got, want) {
			t.Fatalf("plugins %q, want %q", got, want)
		}
		un, err := Uninstall(res.Out)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, un.Out), []string{"bridge", "portmap", "tuning"}; !slices.Equal(got, want) {
			t.Errorf("plugins %q, want %q", got, want)
		}
	})
	t.Run("two portmaps come back in order", func(t *testing.T) {
		in := []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "portmap", "n": 1},
			{"type": "portmap", "n": 2}, {"type": "tuning"}]}`)
		res, err := Install(in, Options{ReplacePortmap: true})
		if err != nil {
			t.Fatal(err)
		}
		un, err := Uninstall(res.Out)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(un.Out, in) {
			t.Errorf("got\n%s", un.Out)
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
		res, err := Install(edited, Options{ReplacePortmap: true})
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(res.Out, []byte(`"portmap"`)); n != 1 {
			t.Errorf("%d portmaps recorded:\n%s", n, res.Out)
		}
		un, err := Uninstall(res.Out)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(un.Out, readData(t, "containerd.conflist")) {
			t.Errorf("got\n%s", un.Out)
		}
		// Uninstall while the hand-made portmap is there: it stays, the
		// record is not restored next to it.
		un, err = Uninstall(edited)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, un.Out), []string{"bridge", "portmap"}; !slices.Equal(got, want) || !bytes.Contains(un.Out, []byte(`"hand"`)) {
			t.Errorf("plugins %q, want %q (the hand-made one):\n%s", got, want, un.Out)
		}
		if len(un.Notes) == 0 {
			t.Error("no note about the record that was not restored")
		}
	})
	t.Run("not installed", func(t *testing.T) {
		un, err := Uninstall(readData(t, "podman-bridge.conflist"))
		if err != nil || un.Out != nil || un.Summary != "not installed" {
			t.Errorf("%v, summary %q, changes:\n%s", err, un.Summary, un.Out)
		}
	})
	t.Run("entry added by hand", func(t *testing.T) {
		un, err := Uninstall(readData(t, "already-installed.conflist"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pluginTypes(t, un.Out), []string{"bridge"}; !slices.Equal(got, want) {
			t.Errorf("plugins %q, want %q", got, want)
		}
	})
	t.Run("malformed record is refused", func(t *testing.T) {
		in := []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "nsproxy-cni"}],
			"nsproxyRemovedPlugins": [{"index": "one"}]}`)
		if _, err := Uninstall(in); err == nil || !strings.Contains(err.Error(), "backup") {
			t.Errorf("error %v, want one that points to the backup", err)
		}
	})
	for _, file := range []string{"broken.conflist", "no-plugins.conflist", "single.conf"} {
		t.Run("refuses "+file, func(t *testing.T) {
			if _, err := Uninstall(readData(t, file)); !errors.Is(err, ErrNotJSON) && !errors.Is(err, ErrNotConflist) {
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
		if _, err := ParsePluginConfig(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{`[]`, `{`, `{"type": "portmap"}`, `{"capabilities": true}`, `{"cniVersion": "1.0.0"}`,
		`{"name": "x"}`, `{"a": 1, "a": 2}`} {
		if _, err := ParsePluginConfig(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	// Capabilities of --plugin-config override the defaults.
	res, err := Install(readData(t, "containerd.conflist"),
		Options{PluginConfig: mustPluginConfig(t, `{"capabilities": {"io.kubernetes.cri.pod-annotations": false}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.Out, []byte(`"io.kubernetes.cri.pod-annotations": false`)) {
		t.Errorf("capability not overridden:\n%s", res.Out)
	}
}

// FuzzInstall: never panic; install∘install == install;
// uninstall∘install restores the original document modulo formatting.
func FuzzInstall(f *testing.F) {
	entries, err := os.ReadDir(testData)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && !strings.HasSuffix(e.Name(), ".golden") { // testdata/fuzz is a directory
			f.Add(readData(f, e.Name()), false)
			f.Add(readData(f, e.Name()), true)
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
		opt := Options{ReplacePortmap: replace}
		Uninstall(data) // must not panic
		res, err := Install(data, opt)
		if err != nil {
			return
		}
		cur := data
		if res.Out != nil {
			cur = res.Out
		}
		again, err := Install(cur, opt)
		if err != nil || again.Out != nil {
			t.Fatalf("second install: %v\nfirst:\n%s\nsecond:\n%s", err, cur, again.Out)
		}
		c, _ := parseConflist(data)
		if slices.Contains(c.types, PluginType) {
			return // uninstall removes entries that were there before
		}
		if _, ok := c.doc.get(RemovedKey); ok {
			return
		}
		un, err := Uninstall(cur)
		if err != nil {
			t.Fatalf("uninstall: %v\n%s", err, cur)
		}
		if !jsonEqual(un.Out, data) {
			t.Fatalf("uninstall∘install changed the document\nbefore:\n%s\nafter:\n%s", data, un.Out)
		}
		if got := pluginTypes(t, un.Out); !slices.Equal(got, c.types) {
			t.Fatalf("plugins %q, want %q", got, c.types)
		}
	})
}

// TestManifests checks that what manifests/ ships parses and says what
