package sidecar

import (
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// TestControlRefusesOtherNamespaceTypes: a namespace file of another type
// (mnt, uts) is refused with 400 saying what it is and what to pass, for
// namespaces and for attachments, and nothing is saved.
func TestControlRefusesOtherNamespaceTypes(t *testing.T) {
	td := startTestDaemon(t, "", "")
	for _, tc := range []struct {
		name, path string
		body       any
		has        string
	}{
		{"ns mnt", "/v1/namespaces", api.Namespace{Name: "m", Path: "/proc/self/ns/mnt"}, "is a mnt namespace"},
		{"ns uts", "/v1/namespaces", api.Namespace{Name: "u", Path: "/proc/self/ns/uts"}, "is a uts namespace"},
		{"attachment mnt", "/v1/attachments", api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "c1", IfName: "eth0"},
			Netns: "/proc/self/ns/mnt"}, "is a mnt namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, e := td.call("POST", tc.path, tc.body, nil)
			msg := e.Error + " " + strings.Join(e.Details, "; ")
			if code != 400 || !strings.Contains(msg, tc.has) || !strings.Contains(msg, "/proc/PID/ns/net") {
				t.Fatalf("status %d %q, want 400 saying %q and what to pass instead", code, msg, tc.has)
			}
		})
	}
	var nss []api.Namespace
	td.call("GET", "/v1/namespaces", nil, &nss)
	var atts []api.Attachment
	td.call("GET", "/v1/attachments", nil, &atts)
	if len(nss) != 0 || len(atts) != 0 {
		t.Fatalf("refused objects were kept: namespaces %+v, attachments %+v", nss, atts)
	}
}
