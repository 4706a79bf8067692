package cniplugin_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/nsproxy/nsproxy/hooks"
)

// TestAddRefusesTooLargeAttachment: an attachment over the limit of the
// record reader and the daemon fails ADD with a clear error before
// anything is written or sent, and an earlier record of the same key is
// gone (the daemon would skip it at replay anyway).
func TestAddRefusesTooLargeAttachment(t *testing.T) {
	e := newEnv(t)
	a := e.args(e.conf("1.1.0", nil))
	if err := e.p.Add(a); err != nil {
		t.Fatalf("small ADD: %v", err)
	}
	if _, ok := e.record(a); !ok {
		t.Fatal("small ADD wrote no record")
	}
	pad := strings.Repeat("x", 2<<20)
	big := with(a, e.conf("1.1.0", map[string]any{"runtimeConfig": map[string]any{
		"io.kubernetes.cri.pod-annotations": map[string]string{"nsproxy.io/pad": pad}}}))
	calls, printed := len(e.d.callList()), e.stdout.Len()
	err := e.p.Add(big)
	if code(err) != int(types.ErrInvalidNetworkConfig) {
		t.Fatalf("ADD of a 2 MiB attachment: %v (code %d), want error %d", err, code(err), types.ErrInvalidNetworkConfig)
	}
	msg := err.Error()
	if te, ok := err.(*types.Error); ok {
		msg = te.Msg + ": " + te.Details
	}
	for _, want := range []string{"too large", strconv.Itoa(hooks.MaxAttachmentSize)} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q lacks %q", msg, want)
		}
	}
	if _, ok := e.record(a); ok {
		t.Fatal("a too-large ADD left a record")
	}
	if got := e.d.callList()[calls:]; slices.Contains(got, "POST /v1/attachments") {
		t.Fatalf("a too-large attachment was sent to the daemon: %v", got)
	}
	if e.stdout.Len() != printed {
		t.Fatalf("a failed ADD printed a result:\n%s", e.stdout.String()[printed:])
	}
}
