package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

// TestRestartKeepsContendedPortWithItsHolder: two containers map the same
// host port; the first one added (zzz) holds it, the later one (aaa) gets a
// problem, and a name both asked for is given to zzz. A plain restart (no
// hand-over) replays the records: on baca3f3 in file-name order, so aaa's
// record came first and took the port and the name, and the host port led
// to the other container after the restart. The records now say when each
// attachment was first recorded, and are replayed in that order.
func TestRestartKeepsContendedPortWithItsHolder(t *testing.T) {
	attDir := t.TempDir()
	nsZ := testns.Add(t, fmt.Sprintf("mz%dz", os.Getpid()%10000))
	nsA := testns.Add(t, fmt.Sprintf("mz%da", os.Getpid()%10000))
	d, sock, stop := sharedDaemon(t, attDir)
	td := &testDaemon{t: t, d: d, socket: sock, http: unixClient(sock)}
	add := func(id, ns, ip string) api.Attachment {
		a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: id, IfName: "eth0"}, Source: api.SourceCNI,
			Name: "mzweb", Netns: filepath.Join("/var/run/netns", ns), IPs: []string{ip + "/24"},
			PortMappings: []api.PortMapping{{HostPort: 21295, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}}
		if err := hooks.WriteRecord(attDir, a); err != nil { // as the plugin does before its POST
			t.Fatal(err)
		}
		var got api.Attachment
		if code, e := td.call("POST", "/v1/attachments", a, &got); code != 201 {
			t.Fatalf("POST %s: %d %+v", id, code, e)
		}
		if got.Name != a.Name { // and again with the name given
			a.Name = got.Name
			if err := hooks.WriteRecord(attDir, a); err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	first := add("zzz", nsZ, "10.77.3.2")
	second := add("aaa", nsA, "10.77.3.3")
	if len(first.Exposed) != 1 || len(second.Exposed) != 0 || first.Name != "mzweb" {
		t.Fatalf("before: zzz %q exposed %v, aaa %q exposed %v problems %v",
			first.Name, first.Exposed, second.Name, second.Exposed, second.Problems)
	}
	stop()
	stopDaemon(d)

	b := startedDaemon(t, Options{StateFile: d.opt.StateFile, AttachmentDir: attDir})
	t.Cleanup(func() { stopDaemon(b) })
	holder, named := "", ""
	for _, a := range b.attachments() {
		st, _ := b.attachmentView(a.AttachmentKey)
		if len(st.Exposed) > 0 {
			holder = a.ContainerID
		}
		if b.attachmentName(a.AttachmentKey) == "mzweb" {
			named = a.ContainerID
		}
	}
	if holder != "zzz" {
		t.Errorf("after a restart host port 21295 belongs to %q, before to zzz", holder)
	}
	if named != "zzz" {
		t.Errorf("after a restart the name mzweb is %q's, before zzz's", named)
	}
}
