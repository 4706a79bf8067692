package proxyproto

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	pp "github.com/pires/go-proxyproto"
)

// readOutcome is what one ReadHeader call produced, plus what was left in
// the stream after it.
type readOutcome struct {
	h      *Header
	reason string
	err    error
	rest   []byte
}

// readVia feeds data (then end of stream) through a fresh pair of tr and
// reads one header from it.
func readVia(t *testing.T, tr transport, data []byte, opt ReadOptions) readOutcome {
	server, client := tr.pair(t)
	feed(t, client, data, true)
	h, err := ReadHeader(server, opt)
	o := readOutcome{h: h, err: err, reason: Reason(err)}
	if err == nil {
		o.rest = readRest(t, server)
	}
	return o
}

// FuzzReadHeader feeds arbitrary bytes to ReadHeader over a unix socketpair
// (MSG_PEEK path) and a net.Pipe (byte-wise path). Neither may panic or hang;
// both must agree; a success must leave exactly the bytes after the header.
func FuzzReadHeader(f *testing.F) {
	for _, tc := range allReadCases() {
		f.Add(tc.in, uint16(tc.opt.MaxSize))
		f.Add(cat(tc.in, payload), uint16(tc.opt.MaxSize))
	}
	// Known-bad shapes from PROXY parsers' history.
	f.Add(cat(sigV2, []byte{0x21, 0x13, 0x00, 0x0c}, make([]byte, 12)), uint16(0))               // family with unassigned protocol
	f.Add(cat(sigV2, []byte{0x20, 0x11, 0x00, 0x00}), uint16(0))                                 // LOCAL, TCP4, no addresses
	f.Add(cat(sigV2, []byte{0x21, 0x11, 0x00, 0x0f}, make([]byte, 12), []byte{0x30}), uint16(0)) // dangling TLV byte
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"), uint16(0))
	f.Add([]byte("PROXY TCP6 ::1.2.3.4 ::ffff:1.2.3.4 1 2\r\n"), uint16(0))
	f.Add([]byte("PROXY UNKNOWN\n\r\n"), uint16(0))
	f.Add([]byte("PROXY "+strings.Repeat(" ", 101)+"\r\n"), uint16(0))
	f.Add(cat(haproxyHxA, haproxyHxA), uint16(0))
	f.Add(cat(haproxyHxA, []byte("PROXY UNKNOWN\r\n")), uint16(36))

	transportsByName := map[string]transport{}
	for _, tr := range transports {
		transportsByName[tr.name] = tr
	}
	f.Fuzz(func(t *testing.T, data []byte, maxSize uint16) {
		// Every input ends with end of stream, so nothing may wait for the
		// deadline; keep it well under the fuzz worker's 10s per-input limit
		// so that a hang shows up as a "timeout" failure with its input.
		opt := ReadOptions{Timeout: 2 * time.Second, MaxSize: int(maxSize)}
		viaSocket := readVia(t, transportsByName["unix"], data, opt)
		viaPipe := readVia(t, transportsByName["pipe"], data, opt)

		for name, o := range map[string]readOutcome{"socket": viaSocket, "pipe": viaPipe} {
			switch o.reason {
			case "", "no_header", "malformed", "too_large", "bad_namespace", "multiple_namespaces":
			default:
				t.Fatalf("%s: unexpected error %v for %q", name, o.err, data)
			}
			if o.err != nil && o.reason != "bad_namespace" && o.reason != "multiple_namespaces" {
				if o.h != nil {
					t.Fatalf("%s: header with %v", name, o.err)
				}
				continue
			}
			h := o.h
			if h == nil {
				t.Fatalf("%s: no header with err %v", name, o.err)
			}
			if h.Version != 1 && h.Version != 2 {
				t.Fatalf("%s: version %d", name, h.Version)
			}
			if h.Namespace != "" && !hooks.ValidName(h.Namespace) {
				t.Fatalf("%s: invalid namespace %q accepted", name, h.Namespace)
			}
			if (o.err != nil || h.Namespace != "") && !h.HasNamespace {
				t.Fatalf("%s: HasNamespace false with namespace %q, err %v", name, h.Namespace, o.err)
			}
			if h.Local == h.Source.IsValid() || h.Local == h.Destination.IsValid() {
				t.Fatalf("%s: local=%v with %v -> %v", name, h.Local, h.Source, h.Destination)
			}
			if h.Size > len(data) || h.Size > opt.maxSize() {
				t.Fatalf("%s: size %d of %d bytes, max %d", name, h.Size, len(data), opt.maxSize())
			}
			if o.err == nil && !bytes.Equal(o.rest, data[h.Size:]) {
				t.Fatalf("%s: after a %d-byte header the stream holds %q, want %q", name, h.Size, o.rest, data[h.Size:])
			}
		}

		if viaSocket.reason != viaPipe.reason || !reflect.DeepEqual(viaSocket.h, viaPipe.h) {
			t.Fatalf("framings disagree on %q:\nsocket: %+v %v\npipe:   %+v %v",
				data, viaSocket.h, viaSocket.err, viaPipe.h, viaPipe.err)
		}
	})
}

// FuzzAppendV2RoundTrip builds headers with AppendV2 and reads them back
// (byte-wise framing over the header, then payload): what was written is
// what is read, and the payload is untouched.
func FuzzAppendV2RoundTrip(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(40001), []byte{127, 0, 0, 1}, uint16(8082), "hxA")
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), uint16(1), []byte{10, 0, 0, 1}, uint16(2), "")
	f.Add([]byte{}, uint16(0), []byte{1, 2, 3, 4}, uint16(0), "hxB")
	f.Add([]byte{1, 2, 3}, uint16(0), []byte{}, uint16(0), "..")
	f.Add([]byte{10, 0, 0, 1}, uint16(1), []byte{10, 0, 0, 2}, uint16(2), "hxB\x00")
	f.Add([]byte{10, 0, 0, 1}, uint16(1), []byte{10, 0, 0, 2}, uint16(2), strings.Repeat("n", 256))
	f.Add([]byte{10, 0, 0, 1}, uint16(1), []byte{10, 0, 0, 2}, uint16(2), strings.Repeat("n", 5000))

	f.Fuzz(func(t *testing.T, srcIP []byte, srcPort uint16, dstIP []byte, dstPort uint16, ns string) {
		src, dst := addrPortFrom(srcIP, srcPort), addrPortFrom(dstIP, dstPort)
		hdr := AppendV2([]byte("prefix"), src, dst, ns)[len("prefix"):]

		stream := bytes.NewReader(cat(hdr, payload))
		raw, err := frameStream(stream, 1<<20)
		if len(hdr) > v2FixedLen+int(pp.MaxV2HeaderSize) {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d-byte header: %v, want ErrTooLarge", len(hdr), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("framing %x: %v", hdr, err)
		}
		if !bytes.Equal(raw, hdr) || stream.Len() != len(payload) {
			t.Fatalf("framed %d bytes of a %d-byte header, %d left", len(raw), len(hdr), stream.Len())
		}

		wantSrc, wantDst, local := expectedAddrs(src, dst)
		addrLen := 36
		switch {
		case local:
			addrLen = 0
		case wantSrc.Addr().Is4():
			addrLen = 12
		}
		h, err := parse(raw)
		switch {
		case ns == "" || len(ns) > 0xFFFF-addrLen-3: // AppendV2 leaves out what cannot fit
			if err != nil || h.HasNamespace || len(h.TLVs) != 0 {
				t.Fatalf("no namespace sent: %+v, %v", h, err)
			}
		case hooks.ValidName(ns):
			if err != nil || h.Namespace != ns || len(h.TLVs) != 1 {
				t.Fatalf("namespace %q sent: %+v, %v", ns, h, err)
			}
		default:
			if !errors.Is(err, ErrBadNamespace) || h == nil || string(h.RawNamespace) != ns {
				t.Fatalf("invalid namespace %q sent: %+v, %v", ns, h, err)
			}
		}
		if h == nil {
			return
		}
		if h.Version != 2 || h.Local != local || h.Source != wantSrc || h.Destination != wantDst {
			t.Fatalf("sent %v -> %v, read v%d local=%v %v -> %v", src, dst, h.Version, h.Local, h.Source, h.Destination)
		}
	})
}

// FuzzAppendV1RoundTrip is FuzzAppendV2RoundTrip for v1 lines.
func FuzzAppendV1RoundTrip(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(40001), []byte{127, 0, 0, 1}, uint16(8082))
	f.Add(netip.MustParseAddr("::102:304").AsSlice(), uint16(1), []byte{10, 0, 0, 1}, uint16(2))
	f.Add(netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").AsSlice(), uint16(65535),
		netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").AsSlice(), uint16(65535))
	f.Add([]byte{}, uint16(0), []byte{1, 2, 3, 4}, uint16(0))

	f.Fuzz(func(t *testing.T, srcIP []byte, srcPort uint16, dstIP []byte, dstPort uint16) {
		src, dst := addrPortFrom(srcIP, srcPort), addrPortFrom(dstIP, dstPort)
		line := AppendV1(nil, src, dst)
		if len(line) > MaxV1Size {
			t.Fatalf("%d-byte line %q", len(line), line)
		}
		stream := bytes.NewReader(cat(line, payload))
		raw, err := frameStream(stream, DefaultMaxSize)
		if err != nil || !bytes.Equal(raw, line) || stream.Len() != len(payload) {
			t.Fatalf("framing %q: %q, %v, %d left", line, raw, err, stream.Len())
		}
		h, err := parse(raw)
		if err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		wantSrc, wantDst, local := expectedAddrs(src, dst)
		if h.Version != 1 || h.Local != local || h.Source != wantSrc || h.Destination != wantDst {
			t.Fatalf("sent %v -> %v as %q, read v%d local=%v %v -> %v", src, dst, line, h.Version, h.Local, h.Source, h.Destination)
		}
	})
}

// addrPortFrom makes an address from 4 or 16 bytes; anything else is the
// invalid (unknown) address.
func addrPortFrom(ip []byte, port uint16) netip.AddrPort {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, port)
}

// expectedAddrs is what a reader sees for a header written for src -> dst:
// IPv4 only when both are IPv4, otherwise both as IPv6; nothing when either
// is unknown.
func expectedAddrs(src, dst netip.AddrPort) (s, d netip.AddrPort, local bool) {
	if !src.IsValid() || !dst.IsValid() {
		return netip.AddrPort{}, netip.AddrPort{}, true
	}
	if src.Addr().Is4() && dst.Addr().Is4() {
		return src, dst, false
	}
	return netip.AddrPortFrom(asIPv6(src.Addr()), src.Port()), netip.AddrPortFrom(asIPv6(dst.Addr()), dst.Port()), false
}
