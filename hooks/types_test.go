package hooks_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
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
		Exposures: []hooks.Exposure{{Frontend: "pod-8080",
			PortMapping: hooks.PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}},
		Exposed:  []string{"pod-8080"},
		Problems: []string{"p"},
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
		"containerID", "exposed", "exposures", "exposures.[].containerPort", "exposures.[].frontend",
		"exposures.[].hostIP", "exposures.[].hostPort", "exposures.[].protocol", "ifname", "ips", "metadata", "metadata.nsproxy.io/target", "name", "netns",
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

// TestPreviousVersion: what the previous version wrote, before Exposures,
// is still read the same: its records replay, and its daemon's answers
// decode (with Exposed only). The fixtures are that version's output.
func TestPreviousVersion(t *testing.T) {
	want := fullAttachment()
	want.Exposures = nil

	b, err := os.ReadFile("testdata/answer-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var got hooks.Attachment
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("answer\n got %+v\nwant %+v", got, want)
	}
	// Written again, it is the same bytes: nothing was renamed.
	if again, _ := json.Marshal(got); string(again) != strings.TrimSpace(string(b)) {
		t.Errorf("re-encoded\n got %s\nwant %s", again, b)
	}

	recs, errs := hooks.ListRecords("testdata/records-v1")
	if len(errs) > 0 || len(recs) != 1 {
		t.Fatalf("ListRecords: %v %v", recs, errs)
	}
	if w := want.WithoutStatus(); !reflect.DeepEqual(recs[0], w) {
		t.Errorf("record\n got %+v\nwant %+v", recs[0], w)
	}
	enc, err := hooks.EncodeRecord(want)
	if err != nil {
		t.Fatal(err)
	}
	// Fields are only added: without its "boot" and "added" lines (added
	// since), a record written now is the previous version's, byte for byte.
	var r struct {
		Boot  string
		Added int64
	}
	if err := json.Unmarshal(enc, &r); err != nil || r.Boot == "" || r.Added == 0 {
		t.Fatalf("a record written now has no boot or no time added: %v", err)
	}
	enc = []byte(strings.Replace(string(enc), "  \"boot\": \""+r.Boot+"\",\n", "", 1))
	enc = []byte(strings.Replace(string(enc), fmt.Sprintf("  \"added\": %d,\n", r.Added), "", 1))
	if old, _ := os.ReadFile("testdata/records-v1/" + hooks.RecordName(want.AttachmentKey)); string(enc) != string(old) {
		t.Errorf("a record written now differs from the previous version's\n got %s\nwant %s", enc, old)
	}
}

func TestAttachmentExposes(t *testing.T) {
	pm := func(host, ctr int, ip string) hooks.PortMapping {
		return hooks.PortMapping{HostPort: host, ContainerPort: ctr, Protocol: "tcp", HostIP: ip}
	}
	a := hooks.Attachment{Exposures: []hooks.Exposure{
		{PortMapping: pm(8080, 80, ""), Frontend: "pod-8080"},
		{PortMapping: pm(8443, 443, "127.0.0.1"), Frontend: "pod-8443"},
	}}
	tests := []struct {
		name string
		pm   hooks.PortMapping
		want bool
	}{
		{"exposed", pm(8080, 80, ""), true},
		{"protocol case ignored", hooks.PortMapping{HostPort: 8080, ContainerPort: 80}, true},
		{"exposed on an address", pm(8443, 443, "127.0.0.1"), true},
		{"other host port", pm(9080, 80, ""), false},
		{"other container port", pm(8080, 81, ""), false},
		{"other host address", pm(8443, 443, "10.0.0.1"), false},
		// The old rule matched the frontend name's "-<port>" suffix: a
		// namespace named "x-8080" made port 8080 look exposed.
		{"suffix alone is not enough", pm(80, 8080, ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.Exposes(tt.pm); got != tt.want {
				t.Errorf("Exposes(%+v) = %v, want %v", tt.pm, got, tt.want)
			}
		})
	}
	if (hooks.Attachment{Exposed: []string{"pod-8080"}}).Exposes(pm(8080, 80, "")) {
		t.Error("names alone count as an exposure")
	}
}

func TestStatusError(t *testing.T) {
	tests := []struct {
		name               string
		err                error
		text, msg          string
		notFound, rejected bool
	}{
		{"message", &hooks.StatusError{Code: 400, Message: "bad server"}, "bad server", "nsproxy: bad server", false, true},
		{"details", &hooks.StatusError{Code: 409, Message: "in use", Details: []string{"a", "b"}}, "in use", "nsproxy: in use: a; b", false, true},
		{"no message", &hooks.StatusError{Code: 503}, "503 Service Unavailable", "nsproxy: 503 Service Unavailable", false, false},
		{"404", &hooks.StatusError{Code: 404, Message: "no x"}, "no x", "nsproxy: no x", true, true},
		{"wrapped 404", fmt.Errorf("get: %w", &hooks.StatusError{Code: 404}), "404 Not Found", "get: nsproxy: 404 Not Found", true, true},
		{"other error", fs.ErrNotExist, "", "file does not exist", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.msg {
				t.Errorf("Error() = %q, want %q", got, tt.msg)
			}
			var se *hooks.StatusError
			if errors.As(tt.err, &se) && se.Text() != tt.text {
				t.Errorf("Text() = %q, want %q", se.Text(), tt.text)
			}
			if hooks.IsNotFound(tt.err) != tt.notFound || hooks.IsRejected(tt.err) != tt.rejected {
				t.Errorf("IsNotFound %v IsRejected %v, want %v %v", hooks.IsNotFound(tt.err), hooks.IsRejected(tt.err), tt.notFound, tt.rejected)
			}
		})
	}
}
