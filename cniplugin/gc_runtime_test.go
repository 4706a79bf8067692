package cniplugin_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
)

// TestGCSharedNetworkName: two runtimes on one host (podman and containerd,
// say) each have a network of the same name, and each GCs with the list of
// its own containers. A GC of one must not remove the other's live
// attachments, which are not in its list because that runtime never knew
// them; it still removes its own stale ones. The runtimes are told apart as
// the plugin sees them: runtime A runs the plugin itself, runtime B through
// another program (sh), so the plugin's parent differs as podman's and
// containerd's do.
func TestGCSharedNetworkName(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh to run the plugin as a second runtime")
	}
	bin := filepath.Join(buildPlugin(t), "nsproxy-cni")
	d := newFakeDaemon(t)
	records := filepath.Join(t.TempDir(), "attachments")
	conf := func(extra map[string]any) []byte {
		c := map[string]any{"cniVersion": "1.1.0", "name": "hhshared", "type": "nsproxy-cni",
			"socket": d.socket, "attachmentDir": records}
		for k, v := range extra {
			c[k] = v
		}
		b, _ := json.Marshal(c)
		return b
	}
	// run is one plugin call by runtime "a" (the plugin is its child) or
	// "b" (the plugin is a child of sh, which is the runtime's child).
	run := func(runtime, command, id string, stdin []byte) {
		t.Helper()
		var cmd *exec.Cmd
		if runtime == "a" {
			cmd = exec.Command(bin)
		} else {
			cmd = exec.Command(sh, "-c", `"$@"; exit $?`, "sh", bin) // not exec: sh stays the parent
		}
		cmd.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+id, "CNI_IFNAME=eth0",
			"CNI_NETNS=/proc/self/ns/net", "CNI_NETNS_OVERRIDE=1", "CNI_PATH=/opt/cni/bin", "CNI_ARGS=IgnoreUnknown=1")
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("runtime %s %s %s: %v\n%s%s", runtime, command, id, err, out, stderr.Bytes())
		}
	}
	add := conf(map[string]any{"prevResult": prevResult("1.1.0")})
	run("a", "ADD", "hh-a-live", add)
	run("a", "ADD", "hh-a-stale", add)
	run("b", "ADD", "hh-b-live", add)
	k := func(id string) hooks.AttachmentKey { return hooks.AttachmentKey{ContainerID: id, IfName: "eth0"} }
	valid := func(ids ...string) []byte {
		l := []any{}
		for _, id := range ids {
			l = append(l, map[string]string{"containerID": id, "ifname": "eth0"})
		}
		return conf(map[string]any{"cni.dev/valid-attachments": l})
	}
	has := func(id string) (daemon, record bool) {
		_, daemon = d.attachment(k(id))
		_, err := hooks.ReadRecord(records, k(id))
		return daemon, err == nil
	}

	run("a", "GC", "", valid("hh-a-live"))
	if daemon, record := has("hh-b-live"); !daemon || !record {
		t.Errorf("runtime a's GC removed runtime b's live attachment of the same network name (daemon kept it: %v, record kept: %v)", daemon, record)
	}
	if daemon, record := has("hh-a-stale"); daemon || record {
		t.Errorf("runtime a's GC kept its own stale attachment (daemon: %v, record: %v)", daemon, record)
	}
	if daemon, record := has("hh-a-live"); !daemon || !record {
		t.Errorf("runtime a's GC removed its own valid attachment (daemon: %v, record: %v)", daemon, record)
	}

	run("b", "GC", "", valid())
	if daemon, record := has("hh-b-live"); daemon || record {
		t.Errorf("runtime b's GC with an empty list kept its attachment (daemon: %v, record: %v)", daemon, record)
	}
	if daemon, record := has("hh-a-live"); !daemon || !record {
		t.Errorf("runtime b's GC removed runtime a's attachment (daemon: %v, record: %v)", daemon, record)
	}
}

// TestGCKeepsAttachmentsOfUnknownRuntime: an attachment ADDed by a plugin
// that did not record its runtime (older than hooks.MetaRuntime) may be
// any runtime's: GC keeps it, its record and the daemon's; DEL removes it
// as before.
func TestGCKeepsAttachmentsOfUnknownRuntime(t *testing.T) {
	e := newEnv(t)
	old := e.args(e.conf("1.1.0", nil))
	// As the older plugin's ADD left it: the network, no runtime.
	a := hooks.Attachment{AttachmentKey: key(old), Netns: old.Netns, Source: hooks.SourceCNI,
		Metadata: map[string]string{hooks.MetaNetwork: "testnet"}}
	e.d.put(a)
	if err := hooks.WriteRecord(e.dir, a); err != nil {
		t.Fatal(err)
	}
	if err := e.p.GC(with(old, e.conf("1.1.0", map[string]any{"prevResult": nil, "cni.dev/valid-attachments": []any{}}))); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, ok := e.d.attachment(key(old)); !ok {
		t.Error("GC removed the daemon's attachment of an unknown runtime")
	}
	if _, ok := e.record(old); !ok {
		t.Error("GC removed the record of an unknown runtime's attachment")
	}
	if !strings.Contains(e.stderr.String(), "kept") {
		t.Errorf("GC did not say what it kept:\n%s", e.stderr)
	}
	if err := e.p.Del(with(old, e.conf("1.1.0", map[string]any{"prevResult": nil}))); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.d.attachment(key(old)); ok {
		t.Error("DEL left the attachment")
	}
}
