package proxyproto

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// parserOutcome is what a Parser made of data split into pieces, then end
// of stream: the header, the error and how many bytes it took.
type parserOutcome struct {
	h        *Header
	err      error
	reason   string
	consumed int
}

// parseSplit feeds data to a fresh Parser in pieces of the given sizes
// (cycled; a size of 0 feeds an empty piece, and the rest goes in one piece
// when sizes is empty), then reports end of stream if it is not done.
func parseSplit(t *testing.T, data []byte, sizes []int, opt ReadOptions) parserOutcome {
	t.Helper()
	p := NewParser(opt)
	off, i := 0, 0
	for off < len(data) {
		k := len(data) - off
		if len(sizes) > 0 {
			k = min(sizes[i%len(sizes)], k)
			i++
			if i > 4*len(data)+len(sizes) { // only empty pieces: end them
				k = len(data) - off
			}
		}
		n, done, h, err := p.Feed(data[off : off+k])
		if n < 0 || n > k {
			t.Fatalf("Feed of %d bytes took %d", k, n)
		}
		if !done && n != k {
			t.Fatalf("Feed of %d bytes took %d without being done", k, n)
		}
		off += n
		if done {
			return parserOutcome{h: h, err: err, reason: Reason(err), consumed: off}
		}
	}
	err := p.EOF()
	return parserOutcome{err: err, reason: Reason(err), consumed: off}
}

// splits the tests try on every input: whole, byte by byte, and uneven
// pieces that cut the v2 fixed part, a v1 line and TLVs in odd places.
var splits = [][]int{nil, {1}, {2}, {3, 5}, {12, 1, 3}, {16}, {7, 0, 11}, {100}}

// TestParserMatchesReadHeader runs every ReadHeader case through the
// Parser, split in every way, with a payload behind successful headers:
// the reason, the header and the bytes taken match the case.
func TestParserMatchesReadHeader(t *testing.T) {
	for _, tc := range allReadCases() {
		for _, sz := range splits {
			in := tc.in
			consumed := tc.want.reason == "" || tc.want.reason == "bad_namespace" || tc.want.reason == "multiple_namespaces"
			if consumed {
				in = cat(tc.in, payload)
			}
			o := parseSplit(t, in, sz, tc.opt)
			if o.reason != tc.want.reason {
				t.Fatalf("%s split %v: Reason = %q (err %v), want %q", tc.name, sz, o.reason, o.err, tc.want.reason)
			}
			if !consumed {
				if o.h != nil {
					t.Fatalf("%s split %v: header %+v returned with %v", tc.name, sz, o.h, o.err)
				}
				continue
			}
			if o.h == nil {
				t.Fatalf("%s split %v: no header with err %v", tc.name, sz, o.err)
			}
			checkHeader(t, o.h, tc)
			if o.consumed != len(tc.in) || o.h.Size != len(tc.in) {
				t.Fatalf("%s split %v: took %d bytes (Size %d), want %d", tc.name, sz, o.consumed, o.h.Size, len(tc.in))
			}
		}
	}
}

// TestParserEdges: end of stream inside and after the signature, the
// caller's timeout, and a Parser that is done takes nothing more.
func TestParserEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nothing", nil, ErrNoHeader},
		{"v1 signature cut", []byte("PROX"), ErrNoHeader},
		{"v1 after signature", []byte("PROXY TCP4"), ErrMalformed},
		{"v2 signature cut", sigV2[:7], ErrNoHeader},
		{"v2 fixed part cut", cat(sigV2, []byte{0x21}), ErrMalformed},
		{"v2 body cut", cat(sigV2, []byte{0x21, 0x11, 0x00, 0x0c}, make([]byte, 5)), ErrMalformed},
	} {
		p := NewParser(ReadOptions{})
		if n, done, _, err := p.Feed(tc.in); done || n != len(tc.in) {
			t.Fatalf("%s: Feed = %d, done %v, err %v", tc.name, n, done, err)
		}
		if err := p.EOF(); !errors.Is(err, tc.want) {
			t.Fatalf("%s: EOF() = %v, want %v", tc.name, err, tc.want)
		}
		if err := p.Timeout(); Reason(err) != "timeout" {
			t.Fatalf("%s: Timeout() = %v, reason %q", tc.name, err, Reason(err))
		}
	}
	p := NewParser(ReadOptions{})
	in := cat([]byte("PROXY UNKNOWN\r\n"), payload)
	n, done, h, err := p.Feed(in)
	if !done || err != nil || h == nil || n != len("PROXY UNKNOWN\r\n") {
		t.Fatalf("Feed = %d, %v, %+v, %v", n, done, h, err)
	}
	if n, done, h, err := p.Feed(payload); n != 0 || !done || h != nil || err == nil {
		t.Fatalf("Feed after done = %d, %v, %+v, %v; want nothing taken and an error", n, done, h, err)
	}
}

// FuzzParser: on any bytes split in any way, the Parser and ReadHeader
// (byte-wise over a net.Pipe, then end of stream) agree on the reason, the
// header, and, on success, the number of bytes the header took.
func FuzzParser(f *testing.F) {
	for _, tc := range allReadCases() {
		f.Add(tc.in, uint16(tc.opt.MaxSize), []byte{1})
		f.Add(cat(tc.in, payload), uint16(tc.opt.MaxSize), []byte{3, 13, 0, 7})
	}
	f.Add(cat(sigV2, []byte{0x21, 0x11, 0x00, 0x0f}, make([]byte, 12), []byte{0x30}), uint16(0), []byte{12, 4, 1})
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"), uint16(0), []byte{6, 6})
	f.Add(cat(haproxyHxA, haproxyHxA), uint16(0), []byte{})
	pipe := transport{"pipe", pipePair}
	f.Fuzz(func(t *testing.T, data []byte, maxSize uint16, split []byte) {
		opt := ReadOptions{Timeout: 2 * time.Second, MaxSize: int(maxSize)}
		sizes := make([]int, len(split))
		for i, b := range split {
			sizes[i] = int(b)
		}
		got := parseSplit(t, data, sizes, opt)
		want := readVia(t, pipe, data, opt)
		if got.reason != want.reason || !reflect.DeepEqual(got.h, want.h) {
			t.Fatalf("Parser and ReadHeader disagree on %q split %v:\nParser:     %+v %v\nReadHeader: %+v %v",
				data, sizes, got.h, got.err, want.h, want.err)
		}
		if want.err == nil && !bytes.Equal(data[got.consumed:], want.rest) {
			t.Fatalf("Parser took %d bytes of %q; ReadHeader left %q", got.consumed, data, want.rest)
		}
	})
}

// TestParserV1Limit: v1 lines around the limit (MaxV1Size, or a smaller
// MaxSize), their LF on the last allowed byte or one past it, get the same
// answer from the Parser, split in every way, as from ReadHeader.
func TestParserV1Limit(t *testing.T) {
	pipe := transport{"pipe", pipePair}
	for _, maxSize := range []int{0, MinMaxSize, 40, MaxV1Size} {
		limit := min(MaxV1Size, ReadOptions{MaxSize: maxSize}.maxSize())
		for _, size := range []int{limit - 1, limit, limit + 1} {
			line := cat([]byte("PROXY UNKNOWN"), bytes.Repeat([]byte{' '}, size-len("PROXY UNKNOWN")-2), []byte("\r\n"))
			opt := ReadOptions{Timeout: 2 * time.Second, MaxSize: maxSize}
			want := readVia(t, pipe, cat(line, payload), opt)
			wantReason := ""
			if size > limit {
				wantReason = "too_large"
				if limit == MaxV1Size {
					wantReason = "malformed"
				}
			}
			if want.reason != wantReason {
				t.Fatalf("max %d, %d-byte line: ReadHeader reason %q (%v), want %q", maxSize, size, want.reason, want.err, wantReason)
			}
			for _, sz := range splits {
				got := parseSplit(t, cat(line, payload), sz, opt)
				if got.reason != want.reason || !reflect.DeepEqual(got.h, want.h) {
					t.Fatalf("max %d, %d-byte line, split %v: Parser %+v %v, ReadHeader %+v %v",
						maxSize, size, sz, got.h, got.err, want.h, want.err)
				}
			}
		}
	}
}
