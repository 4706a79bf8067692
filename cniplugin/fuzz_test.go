package cniplugin_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/nsproxy/nsproxy/cniplugin"
)

// FuzzParseConfig: any stdin gives a config or a CNI error (6 or 7), never
// a panic; an accepted config has a valid target and sendProxy, lowercase
// protocols, a prevResult that converts to its version, and names that
// the daemon accepts.
func FuzzParseConfig(f *testing.F) {
	seeds := []string{
		`{"cniVersion":"1.1.0","name":"n","type":"nsproxy-cni"}`,
		`{"cniVersion":"1.0.0","name":"n","nameTemplate":"{{.PodNamespace}}-{{.PodName}}","target":"loopback","sendProxy":"v2","strict":true}`,
		`{"cniVersion":"1.1.0","name":"n","runtimeConfig":{"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"TCP","HostIP":""}],"io.kubernetes.cri.pod-annotations":{"nsproxy.io/target":"loopback"}}}`,
		`{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],"cni.dev/attachments":[]}`,
		`{"cniVersion":"0.4.0","name":"n","prevResult":{"interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"version":"4","address":"10.0.0.2/24","interface":0}]}}`,
		`{"cniVersion":"1.1.0","name":"n","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24","interface":-1}]}}`,
		`{"cniVersion":"9.9.9","name":"n","prevResult":{}}`,
		`{"cniVersion":"1.1.0","name":"n","nameTemplate":"{{"}`,
		`{"cniVersion":"1.1.0","name":"n","nameTemplate":"{{range 99999999}}{{end}}"}`,
		`{"name":"","target":"x","sendProxy":"v9","socket":"rel"}`,
		`{"cniVersion":"1.1.0","name":"n","runtimeConfig":{"portMappings":[{"hostPort":1e99}]}}`,
		`[]`, `null`, ``,
	}
	for _, s := range seeds {
		f.Add([]byte(s), "c0123456789abcdef", "eth0", "web-0", "default")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, id, ifname, pod, podNS string) {
		c, err := cniplugin.ParseConfig(stdin)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) || te.Code != types.ErrDecodingFailure && te.Code != types.ErrInvalidNetworkConfig {
				t.Fatalf("error %v is not a CNI error 6 or 7", err)
			}
			return
		}
		switch c.Target {
		case "", cniplugin.TargetIP, cniplugin.TargetLoopback:
		default:
			t.Fatalf("accepted target %q", c.Target)
		}
		switch c.SendProxy {
		case "", "v1", "v2":
		default:
			t.Fatalf("accepted sendProxy %q", c.SendProxy)
		}
		for _, pm := range c.RuntimeConfig.PortMappings {
			if pm.Protocol != strings.ToLower(pm.Protocol) {
				t.Fatalf("protocol %q not lowercased", pm.Protocol)
			}
		}
		if c.PrevResult != nil {
			if _, err := c.PrevResult.GetAsVersion(c.CNIVersion); err != nil {
				t.Logf("prevResult does not convert: %v", err) // reported by ADD, not a panic
			}
		}
		c.Valid()
		n := c.NamespaceName(cniplugin.NameFields{ContainerID: id, IfName: ifname, PodName: pod, PodNamespace: podNS})
		if len(n) > 180 || n == "." || n == ".." {
			t.Fatalf("name %q", n)
		}
		for i := 0; i < len(n); i++ {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-", rune(n[i])) {
				t.Fatalf("name %q has %q", n, n[i])
			}
		}
	})
}

// FuzzParseCNIArgs: never panics; a value without ";" that follows a key
// comes back whole, whatever surrounds it.
func FuzzParseCNIArgs(f *testing.F) {
	for _, s := range []string{
		"", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
		"IgnoreUnknown=1;K8S_POD_NAME=box;IP=;MAC=", ";;=;==;a", "K8S_POD_UID=a=b=c", "IgnoreUnknown=TRUE",
	} {
		f.Add(s, "web-0")
	}
	f.Fuzz(func(t *testing.T, s, name string) {
		a := cniplugin.ParseCNIArgs(s)
		for _, v := range []string{a.PodName, a.PodNamespace, a.PodUID, a.PodInfraContainerID} {
			if strings.Contains(v, ";") {
				t.Fatalf("value %q holds a separator", v)
			}
		}
		if strings.Contains(name, ";") {
			return
		}
		if got := cniplugin.ParseCNIArgs(s + ";K8S_POD_NAME=" + name).PodName; got != name {
			t.Fatalf("appended K8S_POD_NAME=%q parsed as %q", name, got)
		}
		rest := s
		for strings.Contains(rest, "K8S_POD_NAMESPACE") {
			rest = strings.ReplaceAll(rest, "K8S_POD_NAMESPACE", "")
		}
		if got := cniplugin.ParseCNIArgs("K8S_POD_NAMESPACE=" + name + ";" + rest).PodNamespace; got != name {
			t.Fatalf("leading K8S_POD_NAMESPACE=%q parsed as %q", name, got)
		}
	})
}
