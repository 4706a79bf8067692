package manifest

import (
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
)

func TestSelectorMatches(t *testing.T) {
	cni := hooks.Attachment{Source: hooks.SourceCNI, Metadata: map[string]string{
		hooks.MetaNetwork: "shop-net", hooks.MetaPodNamespace: "shop", hooks.MetaPodName: "web-1",
		"nsproxy.io/tier": "front", MetaContainerName: "nginx"}}
	oci := hooks.Attachment{Source: hooks.SourceOCI, Metadata: map[string]string{"nsproxy.io/tenant": "analytics", "bundle": "/b"}}
	tests := []struct {
		name string
		sel  Selector
		a    hooks.Attachment
		want bool
	}{
		{"empty matches all", Selector{}, oci, true},
		{"source", Selector{Source: "cni"}, cni, true},
		{"other source", Selector{Source: "cni"}, oci, false},
		{"network glob", Selector{Network: "shop-*"}, cni, true},
		{"network missing", Selector{Network: "shop-*"}, oci, false},
		{"every field", Selector{Source: "cni", Network: "shop-net", PodNamespace: "sh?p", PodName: "web-[0-9]", ContainerName: "nginx"}, cni, true},
		{"one field fails", Selector{Network: "shop-net", PodName: "db-*"}, cni, false},
		{"annotation", Selector{Annotations: map[string]string{"nsproxy.io/tenant": "analytics"}}, oci, true},
		{"annotation glob", Selector{Annotations: map[string]string{"nsproxy.io/tier": "f*"}}, cni, true},
		{"annotation missing", Selector{Annotations: map[string]string{"nsproxy.io/tier": "*"}}, oci, false},
		{"star needs the key", Selector{PodName: "*"}, oci, false},
		{"star", Selector{PodName: "*"}, cni, true},
		{"labels match nothing yet", Selector{Labels: map[string]string{"app": "*"}}, cni, false},
		{"malformed glob matches nothing", Selector{PodName: "[web"}, cni, false},
	}
	for _, tt := range tests {
		if got := tt.sel.Matches(tt.a); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
	}
}
