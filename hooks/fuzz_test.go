package hooks_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
)

// FuzzRecord: decoding never panics, a decoded record survives an
// encode/decode round trip, and every key gets a file name that is one
// safe path element, distinct for distinct keys.
func FuzzRecord(f *testing.F) {
	good, _ := hooks.EncodeRecord(fullAttachment())
	f.Add(good, "abc", "eth0")
	f.Add([]byte(`{"version":1,"attachment":{"containerID":"c","ifname":"eth0"}}`), "..", ".")
	f.Add([]byte(`{"version":1,"attachment":{"containerID":"c","ifname":"eth0","portMappings":[{"hostPort":1e3}]}}`), "a/b", "x+y")
	f.Add([]byte(`{"version":1,"attachment":{"containerID":"","ifname":""}}`), "", "")
	f.Add([]byte(`{"version":2}`), strings.Repeat("z", 250), "eth0")
	f.Add([]byte(`[`), "%41", "A")
	f.Add([]byte(`{"version":1,"added":-1,"attachment":{"containerID":"c","ifname":"eth0"}}`), "c", "eth0")
	f.Add([]byte(`{"version":1,"added":1e30,"attachment":{"containerID":"c","ifname":"eth0"}}`), "c", "eth0")
	f.Add([]byte(`{"version":1,"attachment":{"containerID":"c","ifname":"e","metadata":{"a":null}}}`), "a", "%2B")
	f.Fuzz(func(t *testing.T, b []byte, id, ifname string) {
		if a, err := hooks.DecodeRecord(b); err == nil {
			if a.ContainerID == "" || a.IfName == "" {
				t.Fatalf("decoded a record without a key: %+v", a)
			}
			enc, err := hooks.EncodeRecord(a)
			if err != nil {
				t.Fatalf("cannot encode a decoded record %+v: %v", a, err)
			}
			back, err := hooks.DecodeRecord(enc)
			if err != nil {
				t.Fatalf("cannot decode %s: %v", enc, err)
			}
			if !reflect.DeepEqual(normalize(back), normalize(a)) {
				t.Fatalf("round trip\n got %+v\nwant %+v", back, a)
			}
		}

		k := hooks.AttachmentKey{ContainerID: id, IfName: ifname}
		n := hooks.RecordName(k)
		if n == "" || len(n) > 200 || strings.ContainsAny(n, "/\x00") || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") {
			t.Fatalf("RecordName(%q) = %q", k, n)
		}
		// Distinct keys, distinct names: swapping or shifting the "+" must
		// not collide.
		for _, other := range []hooks.AttachmentKey{
			{ContainerID: ifname, IfName: id},
			{ContainerID: id + "+" + ifname, IfName: ""},
			{ContainerID: id + ifname, IfName: ""},
		} {
			if other != k && hooks.RecordName(other) == n {
				t.Fatalf("RecordName(%q) = RecordName(%q) = %q", k, other, n)
			}
		}
	})
}

// normalize makes empty and nil slices and maps equal: JSON cannot tell
// an omitted empty list from a missing one.
func normalize(a hooks.Attachment) hooks.Attachment {
	if len(a.IPs) == 0 {
		a.IPs = nil
	}
	if len(a.PortMappings) == 0 {
		a.PortMappings = nil
	}
	if len(a.Metadata) == 0 {
		a.Metadata = nil
	}
	return a
}
