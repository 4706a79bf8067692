package hooks_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/atomicfile"
)

func TestRecordName(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		key  hooks.AttachmentKey
		want string
	}{
		{hooks.AttachmentKey{ContainerID: "abc123", IfName: "eth0"}, "abc123+eth0.json"},
		{hooks.AttachmentKey{ContainerID: "cnitool-0123456789abcdef0123", IfName: "net1"}, "cnitool-0123456789abcdef0123+net1.json"},
		{hooks.AttachmentKey{ContainerID: "a.b_c-d", IfName: "e.0"}, "a.b_c-d+e.0.json"},
		{hooks.AttachmentKey{ContainerID: "..", IfName: "."}, "%2E.+%2E.json"},
		{hooks.AttachmentKey{ContainerID: "a/b", IfName: "x+y"}, "a%2Fb+x%2By.json"},
		{hooks.AttachmentKey{ContainerID: "a%2Fb", IfName: "é"}, "a%252Fb+%C3%A9.json"},
		{hooks.AttachmentKey{ContainerID: long, IfName: "eth0"}, ""}, // hashed
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := hooks.RecordName(tt.key)
		if tt.want != "" && got != tt.want {
			t.Errorf("RecordName(%q) = %q, want %q", tt.key, got, tt.want)
		}
		if tt.want == "" && (!strings.HasPrefix(got, "sha256-") || len(got) > 200) {
			t.Errorf("RecordName(long) = %q, want a hash", got)
		}
		if seen[got] {
			t.Errorf("RecordName(%q) = %q twice", tt.key, got)
		}
		seen[got] = true
	}
}

func TestRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "attachments") // created on first write
	a := fullAttachment()
	b := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "c2", IfName: "eth0"}, Netns: "/proc/1/ns/net"}

	if l, errs := hooks.ListRecords(dir); l != nil || errs != nil {
		t.Fatalf("missing dir: %v %v", l, errs)
	}
	for _, x := range []hooks.Attachment{a, b} {
		if err := hooks.WriteRecord(dir, x); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(hooks.RecordPath(dir, a.AttachmentKey))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("record %v %v", st, err)
	}
	wantA := a
	wantA.State, wantA.Exposures, wantA.Exposed, wantA.Problems = "", nil, nil, nil // status is never recorded

	got, err := hooks.ReadRecord(dir, a.AttachmentKey)
	if err != nil || !reflect.DeepEqual(got, wantA) {
		t.Fatalf("ReadRecord = %+v, %v; want %+v", got, err, wantA)
	}
	if _, err := hooks.ReadRecord(dir, hooks.AttachmentKey{ContainerID: "x", IfName: "y"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing record: %v", err)
	}

	// An update replaces the record.
	a2 := wantA
	a2.IPs = []string{"10.0.0.3/24"}
	if err := hooks.WriteRecord(dir, a2); err != nil {
		t.Fatal(err)
	}

	// Files that are not records, bad records and a misplaced record.
	stray := "." + hooks.RecordName(a.AttachmentKey) + atomicfile.TempInfix + "123" // left by a crash
	os.WriteFile(filepath.Join(dir, stray), []byte("{"), 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o600)
	os.Mkdir(filepath.Join(dir, "sub.json"), 0o700)
	os.WriteFile(filepath.Join(dir, "garbage.json"), []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(dir, "future.json"), []byte(`{"version":2,"attachment":{"containerID":"f","ifname":"eth0"}}`), 0o600)
	os.WriteFile(filepath.Join(dir, "nokey.json"), []byte(`{"version":1,"attachment":{"netns":"/x"}}`), 0o600)
	moved, _ := hooks.EncodeRecord(hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "m", IfName: "eth0"}})
	os.WriteFile(filepath.Join(dir, "elsewhere.json"), moved, 0o600)

	list, errs := hooks.ListRecords(dir)
	if len(list) != 2 || !reflect.DeepEqual(list[0], a2) || !reflect.DeepEqual(list[1], b) {
		t.Errorf("ListRecords = %+v", list)
	}
	if len(errs) != 4 {
		t.Errorf("errors %v, want 4 (garbage, future, nokey, elsewhere)", errs)
	}
	for _, e := range errs {
		if !errors.Is(e, hooks.ErrBadRecord) {
			t.Errorf("%v is not ErrBadRecord", e)
		}
		if !strings.Contains(e.Error(), dir) {
			t.Errorf("%v does not name the file", e)
		}
	}

	for range 2 { // removing twice is fine
		if err := hooks.RemoveRecord(dir, a.AttachmentKey); err != nil {
			t.Fatal(err)
		}
	}
	if err := hooks.RemoveRecord(filepath.Join(dir, "none"), a.AttachmentKey); err != nil {
		t.Errorf("remove from a missing dir: %v", err)
	}
	if list, _ := hooks.ListRecords(dir); len(list) != 1 || list[0].ContainerID != "c2" {
		t.Errorf("after remove: %+v", list)
	}
	if err := hooks.WriteRecord(dir, hooks.Attachment{}); !errors.Is(err, hooks.ErrBadRecord) {
		t.Errorf("write without key: %v", err)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), atomicfile.TempInfix) && e.Name() != stray {
			t.Errorf("left %s", e.Name())
		}
	}
}

func TestDecodeRecord(t *testing.T) {
	boot := currentBoot(t)
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"this boot", `{"version":1,"boot":"` + boot + `","attachment":{"containerID":"c","ifname":"eth0"}}`, true},
		{"earlier boot", `{"version":1,"boot":"00000000-0000-0000-0000-000000000000","attachment":{"containerID":"c","ifname":"eth0"}}`, false},
		{"minimal", `{"version":1,"attachment":{"containerID":"c","ifname":"eth0","netns":"/x"}}`, true},
		{"unknown fields", `{"version":1,"writer":"x","attachment":{"containerID":"c","ifname":"eth0","future":1}}`, true},
		{"status dropped", `{"version":1,"attachment":{"containerID":"c","ifname":"eth0","state":"available"}}`, true},
		{"empty", ``, false},
		{"null", `null`, false},
		{"no version", `{"attachment":{"containerID":"c","ifname":"eth0"}}`, false},
		{"trailing", `{"version":1,"attachment":{"containerID":"c","ifname":"eth0"}} {}`, false},
		{"no ifname", `{"version":1,"attachment":{"containerID":"c"}}`, false},
		{"NUL", `{"version":1,"attachment":{"containerID":"c\u0000","ifname":"eth0"}}`, false},
		{"wrong type", `{"version":1,"attachment":{"containerID":1,"ifname":"eth0"}}`, false},
		{"huge", `{"version":1,"attachment":{"containerID":"c","ifname":"eth0","name":"` + strings.Repeat("x", 1<<20) + `"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := hooks.DecodeRecord([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			want := hooks.ErrBadRecord
			if strings.Contains(tt.in, "00000000-") {
				want = hooks.ErrEarlierBoot
			}
			if err != nil && !errors.Is(err, want) {
				t.Errorf("%v is not %v", err, want)
			}
			if err == nil && a.State != "" {
				t.Errorf("status kept: %+v", a)
			}
		})
	}
}

func currentBoot(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot id:", err)
	}
	return strings.TrimSpace(string(b))
}

// TestRecordsOfAnEarlierBoot: a record carries the boot it was written in;
// one of an earlier boot (its namespace died with that kernel, its path may
// name another namespace now) is reported with its path, apart from bad
// records, and RemoveRecordFile removes it. A record without a boot (an
// older writer) counts as this boot's.
func TestRecordsOfAnEarlierBoot(t *testing.T) {
	boot := currentBoot(t)
	dir := t.TempDir()
	now := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "now", IfName: "eth0"}, Netns: "/proc/1/ns/net"}
	if err := hooks.WriteRecord(dir, now); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(hooks.RecordPath(dir, now.AttachmentKey)); !strings.Contains(string(b), `"boot": "`+boot+`"`) {
		t.Fatalf("record without this boot's id:\n%s", b)
	}
	old := hooks.AttachmentKey{ContainerID: "old", IfName: "eth0"}
	oldPath := hooks.RecordPath(dir, old)
	write := func(p, content string) {
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write(oldPath, `{"version":1,"boot":"00000000-0000-0000-0000-000000000000","attachment":{"containerID":"old","ifname":"eth0","netns":"/run/netns/x"}}`)
	older := hooks.AttachmentKey{ContainerID: "older", IfName: "eth0"}
	write(hooks.RecordPath(dir, older), `{"version":1,"attachment":{"containerID":"older","ifname":"eth0","netns":"/run/netns/y"}}`)

	recs, errs := hooks.ListRecords(dir)
	// older's record does not say when it was added (an older writer): it
	// was written before any record that does.
	if len(recs) != 2 || recs[0].AttachmentKey != older || recs[1].AttachmentKey != now.AttachmentKey {
		t.Errorf("records %+v, want older and now", recs)
	}
	if len(errs) != 1 || !errors.Is(errs[0], hooks.ErrEarlierBoot) || errors.Is(errs[0], hooks.ErrBadRecord) {
		t.Fatalf("errors %v, want one ErrEarlierBoot", errs)
	}
	var re *hooks.RecordError
	if !errors.As(errs[0], &re) || re.Path != oldPath {
		t.Fatalf("%v names no path %s", errs[0], oldPath)
	}
	if _, err := hooks.ReadRecord(dir, old); !errors.Is(err, hooks.ErrEarlierBoot) {
		t.Errorf("ReadRecord: %v, want ErrEarlierBoot", err)
	}
	if err := hooks.RemoveRecordFile(re.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("still there: %v", err)
	}
	if err := hooks.RemoveRecordFile(filepath.Join(dir, "state.txt")); err == nil {
		t.Error("RemoveRecordFile removed a file that is no record")
	}
}

// TestListRecordsSkipsFIFO: a FIFO named like a record is reported as not
// a regular file, and the records beside it are read. Opening it without
// O_NONBLOCK waited for a writer, and with it the daemon's start.
func TestListRecordsSkipsFIFO(t *testing.T) {
	dir := t.TempDir()
	a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "c1", IfName: "eth0"}, Netns: "/proc/1/ns/net"}
	if err := hooks.WriteRecord(dir, a); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo+eth0.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	type result struct {
		list []hooks.Attachment
		errs []error
	}
	done := make(chan result, 1)
	go func() {
		l, errs := hooks.ListRecords(dir)
		done <- result{l, errs}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second): // a hang, not a duration being measured
		// Unblock the reader (a writer opens the FIFO) so the test ends.
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		<-done
		t.Fatal("ListRecords waited for a writer of a FIFO in the directory")
	}
	if len(r.list) != 1 || r.list[0].ContainerID != "c1" {
		t.Errorf("records %+v, want c1's", r.list)
	}
	if len(r.errs) != 1 || !errors.Is(r.errs[0], hooks.ErrBadRecord) || !strings.Contains(r.errs[0].Error(), "not a regular file") {
		t.Errorf("errors %v, want one: the FIFO is not a regular file", r.errs)
	}
}

// TestListRecordsOrder: records come back sorted by file name, and the bad
// ones' errors in the same order, one each, the others still read.
func TestListRecordsOrder(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 300 {
		id := fmt.Sprintf("c%03d", i)
		if i%50 == 7 {
			os.WriteFile(filepath.Join(dir, id+"+eth0.json"), []byte("{bad"), 0o600)
			continue
		}
		if err := hooks.WriteRecord(dir, hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: id, IfName: "eth0"},
			Netns: "/proc/1/ns/net"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	list, errs := hooks.ListRecords(dir)
	var got []string
	for _, a := range list {
		got = append(got, a.ContainerID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
	if len(errs) != 6 {
		t.Fatalf("%d errors, want 6: %v", len(errs), errs)
	}
	for i, e := range errs {
		if w := fmt.Sprintf("c%03d+eth0.json", 50*i+7); !strings.Contains(e.Error(), w) {
			t.Errorf("error %d is %v, want %s's", i, e, w)
		}
	}
}

// BenchmarkListRecords: reading 5,000 records, as a restart does.
//
//	go test -run '^$' -bench BenchmarkListRecords -benchtime 5x ./hooks/
func BenchmarkListRecords(b *testing.B) {
	dir := b.TempDir()
	for i := range 5000 {
		a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: fmt.Sprintf("rec%d", i), IfName: "eth0"},
			Netns: "/var/run/netns/x", PortMappings: []hooks.PortMapping{{HostPort: 20500 + i%100, ContainerPort: 8080,
				Protocol: "tcp", HostIP: "127.0.0.1"}}}
		if err := hooks.WriteRecord(dir, a); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if l, _ := hooks.ListRecords(dir); len(l) != 5000 {
			b.Fatalf("%d records", len(l))
		}
	}
}

// TestListRecordsInTheOrderAdded: records are listed in the order their
// attachments were first recorded, not by file name (a restarted daemon
// gives a contended port to the first), and writing a record again (the
// plugin does, with the name the daemon gave) keeps its place.
func TestListRecordsInTheOrderAdded(t *testing.T) {
	dir := t.TempDir()
	att := func(id string) hooks.Attachment {
		return hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: id, IfName: "eth0"}, Netns: "/proc/1/ns/net"}
	}
	for _, id := range []string{"zz", "mm", "aa"} {
		if err := hooks.WriteRecord(dir, att(id)); err != nil {
			t.Fatal(err)
		}
	}
	again := att("zz")
	again.Name = "given"
	if err := hooks.WriteRecord(dir, again); err != nil {
		t.Fatal(err)
	}
	// A record of an older writer says nothing: it was written before.
	if err := os.WriteFile(hooks.RecordPath(dir, hooks.AttachmentKey{ContainerID: "yy", IfName: "eth0"}),
		[]byte(`{"version":1,"attachment":{"containerID":"yy","ifname":"eth0","netns":"/run/netns/y"}}`), 0o640); err != nil {
		t.Fatal(err)
	}
	recs, errs := hooks.ListRecords(dir)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ContainerID)
	}
	if len(errs) > 0 || strings.Join(ids, ",") != "yy,zz,mm,aa" {
		t.Fatalf("ListRecords: %v %v, want yy,zz,mm,aa", ids, errs)
	}
	if recs[1].Name != "given" {
		t.Errorf("the record written again holds %+v", recs[1])
	}
}
