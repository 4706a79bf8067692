package manifest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// Values YAML would read as something else unless quoted, pointers set to
// zero values, and every kind survive Encode then Decode.
func TestEncodeRoundTrip(t *testing.T) {
	no, zero := false, 0
	awkward := []string{"123", "true", "null", "~", "", " lead", "trail ", "a: b", "#x", "- x", "0x10", "1e3",
		"yes", "ünï\u2028", "two\nlines", "tab\there", "*", "&a", "!tag", "'q'", `"dq"`, "{}", "[x]", "%"}
	labels := map[string]string{}
	for i, s := range awkward {
		labels[strings.Repeat("k", i+1)+s] = s
	}
	in := Set{
		Tenants: []Tenant{{Meta: Meta{Name: "a", Labels: labels, Annotations: map[string]string{"nsproxy.io/x": "1"}}, Spec: TenantSpec{
			Namespaces: []StaticNamespace{{Name: "n"}},
			Select:     []Selector{{Annotations: map[string]string{"nsproxy.io/tenant": "*"}}},
			Access:     Access{Users: []string{"0", "1001"}},
			Proxy:      ProxyPolicy{NetnsTLV: &no},
			Frontends:  []api.Frontend{{Name: "f", Binds: []api.Bind{{Addr: "[::]:80", V6Only: true}}, Backend: "b", ClientTimeout: "1m30s"}},
			Backends:   []api.Backend{{Name: "b", Servers: []api.Server{{Name: "s", Addr: "*", Namespace: "*", Weight: &zero}}}},
		}}, {Meta: Meta{Name: "empty"}}},
		Exposures: []Exposure{{Meta: Meta{Name: "x", Tenant: "a"}, Spec: ExposureSpec{ContainerPort: 1, HostPort: 65535}}},
		Services:  []Service{{Meta: Meta{Name: "s", Tenant: "a"}, Spec: ServiceSpec{Listen: "[::1]:1", Target: Endpoint{Addr: "10.0.0.1:2"}}}},
	}
	out, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode("enc.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !equalSets(in, back) {
		t.Fatalf("round trip changed the Set:\n%s\n%#v", out, back)
	}
	again, _ := Encode(back)
	if !bytes.Equal(out, again) {
		t.Errorf("not stable:\n%s\nthen\n%s", out, again)
	}
	if text, changed := Diff(in, back); changed {
		t.Errorf("Diff after a round trip:\n%s", text)
	}
	for _, want := range []string{"netnsTLV: false\n", "weight: 0\n", "namespace: '*'\n", "\n---\n"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if empty, err := Encode(Set{}); err != nil || len(empty) != 0 {
		t.Errorf("Encode(Set{}) = %q, %v", empty, err)
	}
}
