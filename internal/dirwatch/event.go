package dirwatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrBadEvent: a read from inotify that is not a whole sequence of
// inotify_event records (never seen from a kernel; the watcher then looks
// at every entry).
var ErrBadEvent = errors.New("dirwatch: malformed inotify event")

// eventHeader is sizeof(struct inotify_event) without its name: wd, mask,
// cookie, len (4 bytes each).
const eventHeader = 16

// Event is one inotify event: what happened, to which entry ("" for the
// directory itself or no entry, as IN_Q_OVERFLOW).
type Event struct {
	Mask uint32
	Name string
}

// Decode parses the inotify_event records of one read(2): each a 16-byte
// header in the machine's byte order (wd, mask, cookie, len) and len bytes
// of name, NUL-padded. It returns the events before the first record that
// does not fit, and ErrBadEvent for that record.
func Decode(buf []byte) ([]Event, error) {
	var out []Event
	for off := 0; off < len(buf); {
		if len(buf)-off < eventHeader {
			return out, fmt.Errorf("%w: %d bytes left at offset %d, a header is %d", ErrBadEvent, len(buf)-off, off, eventHeader)
		}
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		n := binary.NativeEndian.Uint32(buf[off+12:])
		if uint64(n) > uint64(len(buf)-off-eventHeader) {
			return out, fmt.Errorf("%w: name of %d bytes at offset %d, %d left", ErrBadEvent, n, off, len(buf)-off-eventHeader)
		}
		name := buf[off+eventHeader : off+eventHeader+int(n)]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if bytes.IndexByte(name, '/') >= 0 {
			return out, fmt.Errorf("%w: name %q at offset %d is a path", ErrBadEvent, name, off)
		}
		out = append(out, Event{Mask: mask, Name: string(name)})
		off += eventHeader + int(n)
	}
	return out, nil
}
