package dirwatch

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// record is one inotify_event as the kernel writes it: the name padded
// with NULs to pad bytes (0: no name).
func record(mask uint32, name string, pad int) []byte {
	b := make([]byte, eventHeader+pad)
	binary.NativeEndian.PutUint32(b[0:], 1) // wd
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(pad))
	copy(b[eventHeader:], name)
	return b
}

func TestDecode(t *testing.T) {
	cat := func(bs ...[]byte) []byte { return slices.Concat(bs...) }
	tests := []struct {
		name string
		buf  []byte
		want []Event
		bad  bool
	}{
		{"empty", nil, nil, false},
		{"one", record(unix.IN_CREATE, "ns1", 16), []Event{{unix.IN_CREATE, "ns1"}}, false},
		{"name fills its space", record(unix.IN_DELETE, "0123456789abcdef", 16), []Event{{unix.IN_DELETE, "0123456789abcdef"}}, false},
		{"overflow has no name", record(unix.IN_Q_OVERFLOW, "", 0), []Event{{unix.IN_Q_OVERFLOW, ""}}, false},
		{"several", cat(record(unix.IN_CREATE, "a", 16), record(unix.IN_ATTRIB, "b", 32), record(unix.IN_IGNORED, "", 0)),
			[]Event{{unix.IN_CREATE, "a"}, {unix.IN_ATTRIB, "b"}, {unix.IN_IGNORED, ""}}, false},
		{"short header", record(unix.IN_CREATE, "a", 16)[:10], nil, true},
		{"name past the end", record(unix.IN_CREATE, "a", 16)[:20], nil, true},
		{"good then truncated", cat(record(unix.IN_CREATE, "a", 16), record(unix.IN_DELETE, "b", 16)[:eventHeader+3]),
			[]Event{{unix.IN_CREATE, "a"}}, true},
		{"huge length", func() []byte {
			b := record(unix.IN_CREATE, "", 0)
			binary.NativeEndian.PutUint32(b[12:], 0xffffffff)
			return b
		}(), nil, true},
		{"path in a name", record(unix.IN_CREATE, "a/b", 16), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.buf)
			if tt.bad != (err != nil) || (err != nil && !errors.Is(err, ErrBadEvent)) {
				t.Fatalf("err = %v, want bad=%v (ErrBadEvent)", err, tt.bad)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("events %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzDecode: any bytes decode without panic into events whose names hold
// no NUL and no slash, and re-encoding the events gives back the bytes
// they came from (names padded as they were).
func FuzzDecode(f *testing.F) {
	f.Add(record(unix.IN_CREATE, "ns1", 16))
	f.Add(slices.Concat(record(unix.IN_CREATE, "a", 16), record(unix.IN_Q_OVERFLOW, "", 0)))
	f.Add(record(unix.IN_CREATE, "a", 16)[:20])
	f.Add([]byte{1, 2, 3})
	huge := record(unix.IN_CREATE, "", 0)
	binary.NativeEndian.PutUint32(huge[12:], 0x7fffffff)
	f.Add(huge)
	f.Fuzz(func(t *testing.T, buf []byte) {
		evs, err := Decode(buf)
		if err != nil && !errors.Is(err, ErrBadEvent) {
			t.Fatalf("error %v is not ErrBadEvent", err)
		}
		off := 0
		for _, ev := range evs {
			if slices.Contains([]byte(ev.Name), 0) || slices.Contains([]byte(ev.Name), '/') {
				t.Fatalf("name %q holds a NUL or a slash", ev.Name)
			}
			n := int(binary.NativeEndian.Uint32(buf[off+12:]))
			if binary.NativeEndian.Uint32(buf[off+4:]) != ev.Mask || len(ev.Name) > n ||
				string(buf[off+eventHeader:off+eventHeader+len(ev.Name)]) != ev.Name {
				t.Fatalf("event %+v does not match its record at %d", ev, off)
			}
			off += eventHeader + n
		}
		if (off == len(buf)) != (err == nil) {
			t.Fatalf("decoded %d of %d bytes, err %v", off, len(buf), err)
		}
	})
}
