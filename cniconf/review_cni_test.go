package cniconf

import (
	"encoding/json"
	"testing"

	"github.com/nsproxy/nsproxy/cniplugin"
)

// TestReviewPluginConfigTheCNIPluginRefuses: install-cni writes a
// --plugin-config that the plugin itself refuses on every ADD (a typo
// such as "strict": "true", or "target": "IP"). The runtime then fails
// every container of the network (podman drops the whole network), and
// nothing said so at install time although cniconf imports cniplugin.
func TestReviewPluginConfigTheCNIPluginRefuses(t *testing.T) {
	for _, extra := range []string{
		`{"strict": "true"}`,
		`{"target": "IP"}`,
		`{"socket": "run/nsproxy.sock"}`,
		`{"nameTemplate": "{{.Namespace}}_{{.PodName}}"}`,
	} {
		t.Run(extra, func(t *testing.T) {
			pc, err := ParsePluginConfig(extra)
			if err != nil {
				return // refused at install time: fine
			}
			res, err := Install(readData(t, "containerd.conflist"), Options{PluginConfig: pc})
			if err != nil {
				return // refused at install time: fine
			}
			// What libcni hands the plugin: its entry plus name and cniVersion.
			var list struct {
				CNIVersion string                       `json:"cniVersion"`
				Name       string                       `json:"name"`
				Plugins    []map[string]json.RawMessage `json:"plugins"`
			}
			if err := json.Unmarshal(res.Out, &list); err != nil {
				t.Fatal(err)
			}
			entry := list.Plugins[len(list.Plugins)-1]
			entry["name"], _ = json.Marshal(list.Name)
			entry["cniVersion"], _ = json.Marshal(list.CNIVersion)
			stdin, _ := json.Marshal(entry)
			if _, err := cniplugin.ParseConfig(stdin); err != nil {
				t.Errorf("install-cni accepted --plugin-config %s and wrote an entry on which every ADD fails: %v", extra, err)
			}
		})
	}
}
