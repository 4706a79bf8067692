package hooks_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

func fullAttachment() hooks.Attachment {
	return hooks.Attachment{
		AttachmentKey: hooks.AttachmentKey{ContainerID: "c1", IfName: "eth0"},
		Netns:         "/run/netns/x",
		Name:          "pod",
		Source:        hooks.SourceCNI,
		Tenant:        "t",
		IPs:           []string{"10.0.0.2/24"},
		PortMappings:  []hooks.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}},
		Metadata:      map[string]string{hooks.MetaTarget: "loopback"},
		State:         hooks.StateAvailable,
		Exposed:       []string{"pod-8080"},
		Problems:      []string{"p"},
	}
}

// keys lists the keys of a JSON object and of the objects inside it,
// as paths.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				out = append(out, prefix+k)
				walk(prefix+k+".", y)
			}
		case []any:
			for _, y := range x {
				walk(prefix+"[].", y)
			}
		}
	}
	walk("", v)
	slices.Sort(out)
	return slices.Compact(out)
}

func TestAttachmentJSONKeys(t *testing.T) {
	b, err := json.Marshal(fullAttachment())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"containerID", "exposed", "ifname", "ips", "metadata", "metadata.nsproxy.io/target", "name", "netns",
		"portMappings", "portMappings.[].containerPort", "portMappings.[].hostIP", "portMappings.[].hostPort",
		"portMappings.[].protocol", "problems", "source", "state", "tenant",
	}
	if got := keys(t, b); !slices.Equal(got, want) {
		t.Errorf("keys\n got %q\nwant %q", got, want)
	}
	// The zero value keeps only the keys without omitempty.
	b, _ = json.Marshal(hooks.Attachment{})
	if got, want := string(b), `{"containerID":"","ifname":"","netns":""}`; got != want {
		t.Errorf("zero value %s, want %s", got, want)
	}
}

// The daemon's API types and these must be the same on the wire.
func TestAttachmentMatchesAPI(t *testing.T) {
	tests := []struct {
		name string
		in   hooks.Attachment
	}{
		{"full", fullAttachment()},
		{"zero", hooks.Attachment{}},
		{"key only", hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "a", IfName: "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var a api.Attachment
			if err := json.Unmarshal(hb, &a); err != nil {
				t.Fatal(err)
			}
			ab, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			if string(ab) != string(hb) {
				t.Errorf("api round trip\n got %s\nwant %s", ab, hb)
			}
			var back hooks.Attachment
			if err := json.Unmarshal(ab, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tt.in) {
				t.Errorf("hooks round trip %+v, want %+v", back, tt.in)
			}
		})
	}
	// Same fields, in the same order, with the same tags.
	for _, pair := range [][2]reflect.Type{
		{reflect.TypeFor[hooks.Attachment](), reflect.TypeFor[api.Attachment]()},
		{reflect.TypeFor[hooks.AttachmentKey](), reflect.TypeFor[api.AttachmentKey]()},
		{reflect.TypeFor[hooks.PortMapping](), reflect.TypeFor[api.PortMapping]()},
	} {
		h, a := pair[0], pair[1]
		if h.NumField() != a.NumField() {
			t.Errorf("%v has %d fields, %v %d", h, h.NumField(), a, a.NumField())
			continue
		}
		for i := range h.NumField() {
			hf, af := h.Field(i), a.Field(i)
			if hf.Name != af.Name || hf.Tag != af.Tag || hf.Type.Kind() != af.Type.Kind() {
				t.Errorf("%v field %d: %s %s %q, api has %s %s %q", h, i, hf.Name, hf.Type, hf.Tag, af.Name, af.Type, af.Tag)
			}
		}
	}
}
