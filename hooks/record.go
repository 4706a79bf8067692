package hooks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/nsproxy/nsproxy/internal/atomicfile"
)

// RecordDir is the default directory of attachment records.
const RecordDir = "/var/lib/nsproxy/attachments"

// RecordVersion is the version of the record format that WriteRecord
// writes and DecodeRecord accepts. A record is one JSON file per
// attachment, named by RecordName, holding
//
//	{"version": 1, "boot": "<boot id>", "added": <ns>, "attachment": {<Attachment without its status>}}
//
// "boot" (added later; a record without it counts as of this boot) is the
// kernel's boot id when the record was written. "added" (added later
// still) is when the attachment was first recorded in this boot, in
// nanoseconds of the kernel's boot clock (CLOCK_BOOTTIME, which no clock
// setting moves): ListRecords orders records by it, so that a restarted
// daemon gives a contended host port or name to the container that had it.
const RecordVersion = 1

// recordSuffix ends every record's file name; files without it (and hidden
// files, such as the temporary files of WriteRecord) are not records.
const recordSuffix = ".json"

// MaxAttachmentSize bounds an attachment wherever it travels: its record
// (EncodeRecord and WriteRecord refuse a larger one, DecodeRecord and the
// readers skip it) and every request body of the daemon's control socket
// (413 above it). A record is the attachment's JSON wrapped and indented,
// always longer than the compact request body, so an attachment whose
// record fits is never cut by the daemon. A record is usually a few hundred
// bytes; the bound keeps the daemon from buffering a huge file or body.
const MaxAttachmentSize = 1 << 20

// ErrTooLarge: an attachment's record would exceed MaxAttachmentSize.
var ErrTooLarge = errors.New("nsproxy: attachment too large")

// maxNameLen bounds a record's file name; longer keys are hashed. Most
// file systems allow 255 bytes.
const maxNameLen = 200

// ErrBadRecord matches (errors.Is) every error of DecodeRecord and the
// per-file errors of ListRecords.
var ErrBadRecord = errors.New("nsproxy: bad attachment record")

// ErrEarlierBoot matches (errors.Is) the error of ReadRecord and ListRecords
// for a record written before the kernel last booted: every network
// namespace it could name died with that kernel, and a path it names may
// belong to another namespace now. Readers remove such records.
var ErrEarlierBoot = errors.New("nsproxy: attachment record of an earlier boot")

// record is the file format: a version, so that a future format is
// refused instead of misread, the boot it belongs to, and the attachment
// without its status.
type record struct {
	Version    int        `json:"version"`
	Boot       string     `json:"boot,omitempty"`
	Added      int64      `json:"added,omitempty"`
	Attachment Attachment `json:"attachment"`
}

// bootClock is now on CLOCK_BOOTTIME, in nanoseconds: one clock for every
// process of this boot, never set back. 0 if it cannot be read.
func bootClock() int64 {
	const clockBoottime = 7 // CLOCK_BOOTTIME, linux/time.h
	var ts syscall.Timespec
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockBoottime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return ts.Nano()
}

// bootIDFile holds the kernel's random id of the current boot, the same in
// every namespace and container.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return "" // no /proc: records carry no boot and count as this boot's
	}
	return strings.TrimSpace(string(b))
})

// RecordName is the file name of the record of k: the escaped container
// ID and interface name joined by "+", or, when that would be too long,
// "sha256-" and a hash of both. It is always a single, non-hidden path
// element, and different keys get different names.
func RecordName(k AttachmentKey) string {
	n := escapeName(k.ContainerID) + "+" + escapeName(k.IfName) + recordSuffix
	if len(n) <= maxNameLen {
		return n
	}
	// Hash the escaped name: escaping never yields "+", so the join is
	// unambiguous for any bytes (a NUL in an id is unusual, not impossible:
	// the fuzzer found two keys that collided when the raw parts were
	// joined with NUL).
	sum := sha256.Sum256([]byte(n))
	return "sha256-" + hex.EncodeToString(sum[:]) + recordSuffix
}

// escapeName keeps [A-Za-z0-9_-] and non-leading dots, and writes every
// other byte as %XX, so that "+" only ever separates and no name is "."
// or "..", hidden or contains "/".
func escapeName(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// RecordPath is the path of the record of k in dir.
func RecordPath(dir string, k AttachmentKey) string {
	return filepath.Join(dir, RecordName(k))
}

// EncodeRecord is the content of the record of a (without its status);
// ErrTooLarge when it would exceed MaxAttachmentSize.
func EncodeRecord(a Attachment) ([]byte, error) {
	return encodeRecord(a, bootClock())
}

// encodeRecord is EncodeRecord with the time the attachment was first
// recorded.
func encodeRecord(a Attachment, added int64) ([]byte, error) {
	if err := checkKey(a.AttachmentKey); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(record{Version: RecordVersion, Boot: bootID(), Added: added, Attachment: a.WithoutStatus()}, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if len(b) > MaxAttachmentSize {
		return nil, fmt.Errorf("%w: its record is %d bytes, the limit is %d", ErrTooLarge, len(b), MaxAttachmentSize)
	}
	return b, nil
}

// DecodeRecord parses the content of a record. Unknown fields are ignored
// (a newer writer may add some); an unknown version is an error, a record
// of an earlier boot is ErrEarlierBoot.
func DecodeRecord(b []byte) (Attachment, error) {
	a, _, err := decodeRecord(b)
	return a, err
}

// decodeRecord is DecodeRecord, also returning when the attachment was
// first recorded (0: not said, a record of an older writer).
func decodeRecord(b []byte) (Attachment, int64, error) {
	if len(b) > MaxAttachmentSize {
		return Attachment{}, 0, fmt.Errorf("%w: larger than %d bytes", ErrBadRecord, MaxAttachmentSize)
	}
	var r record
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&r); err != nil {
		return Attachment{}, 0, fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return Attachment{}, 0, fmt.Errorf("%w: data after the record", ErrBadRecord)
	}
	if r.Version != RecordVersion {
		return Attachment{}, 0, fmt.Errorf("%w: version %d, want %d", ErrBadRecord, r.Version, RecordVersion)
	}
	if err := checkKey(r.Attachment.AttachmentKey); err != nil {
		return Attachment{}, 0, err
	}
	if r.Boot != "" && bootID() != "" && r.Boot != bootID() {
		return Attachment{}, 0, fmt.Errorf("%w (%s/%s, boot %s)", ErrEarlierBoot, r.Attachment.ContainerID, r.Attachment.IfName, r.Boot)
	}
	return r.Attachment.WithoutStatus(), r.Added, nil
}

// checkKey refuses keys that cannot name an attachment.
func checkKey(k AttachmentKey) error {
	if k.ContainerID == "" || k.IfName == "" {
		return fmt.Errorf("%w: containerID and ifname are required", ErrBadRecord)
	}
	if strings.ContainsRune(k.ContainerID, 0) || strings.ContainsRune(k.IfName, 0) {
		return fmt.Errorf("%w: NUL in containerID or ifname", ErrBadRecord)
	}
	return nil
}

// WriteRecord writes the record of a into dir (created if needed),
// replacing any record with the same key. The write is atomic
// (atomicfile.Write): a crash leaves the old record or the new one, never
// a torn file, and ListRecords skips the hidden temporary file it may
// leave. It is not fsynced (atomicfile.NoSync): once WriteRecord returns,
// the record survives the crash of any process, the daemon's included, and
// only a crash of the kernel can lose it, which also ends every network
// namespace it could name; a record that outlives its boot anyway (the
// file system kept it) is refused as ErrEarlierBoot. The two fsyncs (file
// and directory) were most of what the plugin added to a container's start.
//
// A record that replaces one of the same key (the plugin writing it again
// with the name the daemon gave) keeps the time the attachment was first
// recorded, which orders ListRecords.
func WriteRecord(dir string, a Attachment) error {
	added := int64(0)
	if old, when, err := readRecordFile(RecordPath(dir, a.AttachmentKey)); err == nil && old.AttachmentKey == a.AttachmentKey {
		added = when
	}
	if added == 0 {
		added = bootClock()
	}
	b, err := encodeRecord(a, added)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("attachment records: %w", err)
	}
	if err := atomicfile.Write(RecordPath(dir, a.AttachmentKey), b, atomicfile.WithMode(0o640), atomicfile.NoSync()); err != nil {
		return fmt.Errorf("attachment records: %w", err)
	}
	return nil
}

// RemoveRecord removes the record of k from dir; a missing record (or
// directory) is not an error. Like WriteRecord, it does not wait for the
// disk.
func RemoveRecord(dir string, k AttachmentKey) error {
	return removeRecordFile(RecordPath(dir, k))
}

// RemoveRecordFile removes the record file p that ListRecords or
// ReadRecord reported in a RecordError (ErrEarlierBoot); a missing file is
// not an error.
func RemoveRecordFile(p string) error {
	if !strings.HasSuffix(p, recordSuffix) {
		return fmt.Errorf("attachment records: %s is not a record", p)
	}
	return removeRecordFile(p)
}

// RemoveEarlierBoot removes the file of a record that ListRecords or
// ReadRecord refused as ErrEarlierBoot: ok reports whether err was one,
// path names its file. Every reader of records does this with them: its
// namespace died with that kernel, and its path may name another
// container's namespace now.
func RemoveEarlierBoot(err error) (path string, ok bool, rmErr error) {
	var re *RecordError
	if !errors.Is(err, ErrEarlierBoot) || !errors.As(err, &re) {
		return "", false, nil
	}
	return re.Path, true, RemoveRecordFile(re.Path)
}

func removeRecordFile(p string) error {
	if err := atomicfile.Remove(p, atomicfile.NoSync()); err != nil {
		return fmt.Errorf("attachment records: %w", err)
	}
	return nil
}

// ReadRecord reads the record of k from dir; errors.Is(err,
// fs.ErrNotExist) when there is none.
func ReadRecord(dir string, k AttachmentKey) (Attachment, error) {
	a, _, err := readRecordFile(RecordPath(dir, k))
	if err != nil {
		return Attachment{}, err
	}
	if a.AttachmentKey != k {
		return Attachment{}, fmt.Errorf("%w: %s holds %s/%s", ErrBadRecord, RecordPath(dir, k), a.ContainerID, a.IfName)
	}
	return a, nil
}

// ListRecords reads every record in dir, in the order their attachments
// were first recorded (records that do not say, of older writers, first),
// then by file name. A missing
// directory has no records. A file that cannot be read or parsed, or whose
// name does not match its key, is reported in the errors (one per file,
// naming it) and skipped: one bad file must not hide the others.
func ListRecords(dir string) ([]Attachment, []error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("attachment records: %w", err)}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []Attachment
	var added []int64
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, recordSuffix) || e.IsDir() {
			continue
		}
		p := filepath.Join(dir, name)
		a, when, err := readRecordFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if want := RecordName(a.AttachmentKey); want != name {
			errs = append(errs, fmt.Errorf("%w: %s holds %s/%s, whose record is %s", ErrBadRecord, p, a.ContainerID, a.IfName, want))
			continue
		}
		out = append(out, a)
		added = append(added, when)
	}
	sort.Stable(byAdded{out, added})
	return out, errs
}

// byAdded sorts records by when they were first recorded; sort.Stable
// keeps the file-name order among equal times.
type byAdded struct {
	atts  []Attachment
	added []int64
}

func (r byAdded) Len() int           { return len(r.atts) }
func (r byAdded) Less(i, j int) bool { return r.added[i] < r.added[j] }
func (r byAdded) Swap(i, j int) {
	r.atts[i], r.atts[j] = r.atts[j], r.atts[i]
	r.added[i], r.added[j] = r.added[j], r.added[i]
}

// readRecordFile reads and decodes one regular file.
func readRecordFile(p string) (Attachment, int64, error) {
	b, err := readRegular(p, MaxAttachmentSize+1)
	if errors.Is(err, errNotRegular) {
		return Attachment{}, 0, fmt.Errorf("%w: %s is not a regular file", ErrBadRecord, p)
	}
	if err != nil {
		return Attachment{}, 0, fmt.Errorf("attachment record: %w", err)
	}
	a, added, err := decodeRecord(b)
	if err != nil {
		return Attachment{}, 0, &RecordError{Path: p, Err: err}
	}
	return a, added, nil
}

var errNotRegular = errors.New("not a regular file")

// readRegular reads at most limit bytes of the regular file p with plain
// system calls: the daemon reads thousands of records at start, and an
// os.File would register each with the runtime's poller (an epoll_ctl that
// fails for a regular file, a finalizer, a poll descriptor). O_NONBLOCK:
// opening a FIFO planted in the directory must not wait for a writer.
func readRegular(p string, limit int) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, errNotRegular
	}
	// One byte more than the size, to see the end in the same read.
	buf := make([]byte, 0, min(max(int(st.Size)+1, 512), limit))
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), limit-len(buf)))
		}
		n, err := syscall.Read(fd, buf[len(buf):min(cap(buf), limit)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}

// RecordError is the error of a record file whose content was refused:
// its path and why (ErrBadRecord, ErrEarlierBoot).
type RecordError struct {
	Path string
	Err  error
}

func (e *RecordError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }
