package main

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/nsproxy/nsproxy/sidecar/config"
)

func TestManifests(t *testing.T) {
	root := filepath.Join("..", "..", "manifests")
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

func readFileT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
