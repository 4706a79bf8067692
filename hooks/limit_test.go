package hooks_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
)

// withMetadata is an attachment padded with one metadata value of n bytes.
func withMetadata(n int) hooks.Attachment {
	return hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "c1", IfName: "eth0"},
		Netns: "/proc/1/ns/net", Metadata: map[string]string{"nsproxy.io/pad": strings.Repeat("x", n)}}
}

// TestRecordSizeLimit: one limit, MaxAttachmentSize, for the record the
// writer makes and the reader accepts; an attachment whose record fits
// also fits the daemon's request body (its compact JSON is smaller).
func TestRecordSizeLimit(t *testing.T) {
	dir := t.TempDir()
	big := withMetadata(2 << 20)
	if err := hooks.WriteRecord(dir, big); !errors.Is(err, hooks.ErrTooLarge) {
		t.Fatalf("WriteRecord of a 2 MiB attachment: %v, want ErrTooLarge", err)
	}
	if _, err := hooks.EncodeRecord(big); err == nil || !strings.Contains(err.Error(), "1048576") {
		t.Fatalf("EncodeRecord error %v does not name the limit", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a refused record left %v", left)
	}

	// The largest attachment that fits: its record is exactly the limit.
	base, err := hooks.EncodeRecord(withMetadata(0))
	if err != nil {
		t.Fatal(err)
	}
	fits := withMetadata(hooks.MaxAttachmentSize - len(base))
	if err := hooks.WriteRecord(dir, fits); err != nil {
		t.Fatalf("WriteRecord at the limit: %v", err)
	}
	got, err := hooks.ReadRecord(dir, fits.AttachmentKey)
	if err != nil || got.Metadata["nsproxy.io/pad"] != fits.Metadata["nsproxy.io/pad"] {
		t.Fatalf("ReadRecord at the limit: %v", err)
	}
	if body, _ := json.Marshal(fits); len(body) > hooks.MaxAttachmentSize {
		t.Fatalf("request body %d bytes > record limit: the daemon would refuse what the plugin recorded", len(body))
	}
	over := withMetadata(hooks.MaxAttachmentSize - len(base) + 1)
	if err := hooks.WriteRecord(dir, over); !errors.Is(err, hooks.ErrTooLarge) {
		t.Fatalf("WriteRecord one byte over the limit: %v, want ErrTooLarge", err)
	}
	b, _ := json.Marshal(map[string]any{"version": 1, "attachment": over})
	if _, err := hooks.DecodeRecord(append(b, make([]byte, hooks.MaxAttachmentSize)...)); !errors.Is(err, hooks.ErrBadRecord) {
		t.Fatalf("DecodeRecord over the limit: %v, want ErrBadRecord", err)
	}
}
