package proxyproto

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// TestAppendV2MatchesHAProxy pins the bytes HAProxy 2.6 sent for a client
// 127.0.0.1:40001 on a listener 127.0.0.1:8082 in namespace hxA.
func TestAppendV2MatchesHAProxy(t *testing.T) {
	got := AppendV2(nil, ap("127.0.0.1:40001"), ap("127.0.0.1:8082"), "hxA")
	if !bytes.Equal(got, haproxyHxA) {
		t.Fatalf("AppendV2 =\n%x\nwant (HAProxy 2.6 capture)\n%x", got, haproxyHxA)
	}
}

func TestAppendV2(t *testing.T) {
	sig := "0d0a0d0a000d0a515549540a"
	for _, tc := range []struct {
		name     string
		src, dst netip.AddrPort
		ns       string
		want     string // hex
	}{
		{"tcp4 without namespace", ap("10.0.0.1:1"), ap("10.0.0.2:65535"), "",
			sig + "21 11 000c 0a000001 0a000002 0001 ffff"},
		{"tcp6", ap("[2001:db8::1]:443"), ap("[::1]:80"), "n",
			sig + "21 21 0028 20010db8000000000000000000000001 00000000000000000000000000000001 01bb 0050 30 0001 6e"},
		{"mixed: ipv4 source is mapped", ap("192.0.2.1:5"), ap("[2001:db8::2]:6"), "",
			sig + "21 21 0024 00000000000000000000ffffc0000201 20010db8000000000000000000000002 0005 0006"},
		{"mixed: ipv4 destination is mapped", ap("[2001:db8::2]:6"), ap("192.0.2.1:5"), "",
			sig + "21 21 0024 20010db8000000000000000000000002 00000000000000000000ffffc0000201 0006 0005"},
		{"v4-mapped counts as ipv6", ap("[::ffff:192.0.2.1]:5"), ap("192.0.2.2:6"), "",
			sig + "21 21 0024 00000000000000000000ffffc0000201 00000000000000000000ffffc0000202 0005 0006"},
		{"zone dropped", ap("[fe80::1%eth0]:1"), ap("[fe80::2%eth0]:2"), "",
			sig + "21 21 0024 fe800000000000000000000000000001 fe800000000000000000000000000002 0001 0002"},
		{"unknown source: LOCAL UNSPEC", netip.AddrPort{}, ap("10.0.0.2:80"), "",
			sig + "20 00 0000"},
		{"unknown destination: LOCAL UNSPEC with namespace", ap("10.0.0.1:1"), netip.AddrPort{}, "hxA",
			sig + "20 00 0006 30 0003 687841"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := AppendV2(nil, tc.src, tc.dst, tc.ns), unhex(tc.want); !bytes.Equal(got, want) {
				t.Errorf("got  %x\nwant %x", got, want)
			}
		})
	}
}

// TestAppendV2ExtraTLVs: extra TLVs go before the NETNS TLV, which stays
// last; one too long for the length field is left out; a reader sees them.
func TestAppendV2ExtraTLVs(t *testing.T) {
	sig := "0d0a0d0a000d0a515549540a"
	noop := TLV{Type: TypeNoop, Value: []byte{0xaa, 0xbb}}
	for _, tc := range []struct {
		name string
		ns   string
		tlvs []TLV
		want string // hex
		read int    // TLVs a reader sees
	}{
		{"none", "n", nil, sig + "21 11 0010 0a000001 0a000002 0001 0002 30 0001 6e", 1},
		{"before netns", "n", []TLV{noop}, sig + "21 11 0015 0a000001 0a000002 0001 0002 04 0002 aabb 30 0001 6e", 2},
		{"without netns", "", []TLV{noop, {Type: 0xe0}}, sig + "21 11 0014 0a000001 0a000002 0001 0002 04 0002 aabb e0 0000", 2},
		{"too long left out", "", []TLV{{Type: 0xe1, Value: make([]byte, 0xFFFF)}, noop},
			sig + "21 11 0011 0a000001 0a000002 0001 0002 04 0002 aabb", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendV2(nil, ap("10.0.0.1:1"), ap("10.0.0.2:2"), tc.ns, tc.tlvs...)
			if want := unhex(tc.want); !bytes.Equal(got, want) {
				t.Fatalf("got  %x\nwant %x", got, want)
			}
			h, err := parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.TLVs) != tc.read || h.Namespace != tc.ns {
				t.Fatalf("read back %+v", h)
			}
		})
	}
}

func TestAppendV2KeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	got := AppendV2(append([]byte{}, prefix...), ap("127.0.0.1:40001"), ap("127.0.0.1:8082"), "hxA")
	if !bytes.Equal(got, cat(prefix, haproxyHxA)) {
		t.Fatalf("got %x", got)
	}
}

func TestAppendV2NamespaceTooLongForLengthField(t *testing.T) {
	huge := strings.Repeat("x", 0xFFFF)
	got := AppendV2(nil, ap("10.0.0.1:1"), ap("10.0.0.2:2"), huge)
	if len(got) != v2FixedLen+12 || got[15] != 12 {
		t.Fatalf("got %d bytes, length field %x", len(got), got[14:16])
	}
	longest := strings.Repeat("x", 0xFFFF-12-3)
	got = AppendV2(nil, ap("10.0.0.1:1"), ap("10.0.0.2:2"), longest)
	if len(got) != v2FixedLen+0xFFFF || got[14] != 0xFF || got[15] != 0xFF {
		t.Fatalf("got %d bytes, length field %x", len(got), got[14:16])
	}
}

func TestAppendV1(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst netip.AddrPort
		want     string
	}{
		{"tcp4", ap("192.168.0.1:56324"), ap("192.168.0.11:443"), "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
		{"tcp4 zero port", ap("0.0.0.0:0"), ap("255.255.255.255:65535"), "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"},
		{"tcp6", ap("[2001:db8::1]:1"), ap("[2001:db8:0:1:0:0:0:2]:2"), "PROXY TCP6 2001:db8::1 2001:db8:0:1::2 1 2\r\n"},
		{"tcp6 single zero group not compressed", ap("[2001:db8:0:1:1:1:1:1]:1"), ap("[::1]:2"), "PROXY TCP6 2001:db8:0:1:1:1:1:1 ::1 1 2\r\n"},
		{"tcp6 first longest run compressed", ap("[1:0:0:1:0:0:1:1]:1"), ap("[::]:2"), "PROXY TCP6 1::1:0:0:1:1 :: 1 2\r\n"},
		{"mixed: ipv4 source is mapped", ap("127.0.0.1:40001"), ap("[::1]:8082"), "PROXY TCP6 ::ffff:127.0.0.1 ::1 40001 8082\r\n"},
		{"mixed: ipv4 destination is mapped", ap("[::1]:40001"), ap("127.0.0.1:8082"), "PROXY TCP6 ::1 ::ffff:127.0.0.1 40001 8082\r\n"},
		{"v4-mapped counts as ipv6", ap("[::ffff:10.0.0.1]:1"), ap("10.0.0.2:2"), "PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 1 2\r\n"},
		{"ipv4-compatible written like glibc", ap("[::102:304]:1"), ap("[::1]:2"), "PROXY TCP6 ::1.2.3.4 ::1 1 2\r\n"},
		{"zone dropped", ap("[fe80::1%eth0]:1"), ap("[fe80::2%eth0]:2"), "PROXY TCP6 fe80::1 fe80::2 1 2\r\n"},
		{"unknown source", netip.AddrPort{}, ap("10.0.0.2:2"), "PROXY UNKNOWN\r\n"},
		{"unknown destination", ap("10.0.0.1:1"), netip.AddrPort{}, "PROXY UNKNOWN\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AppendV1([]byte("x"), tc.src, tc.dst); string(got) != "x"+tc.want {
				t.Errorf("got %q, want %q", got, "x"+tc.want)
			}
		})
	}
}

func TestAppendV1LongestLineFitsV1Limit(t *testing.T) {
	a := ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
	if got := AppendV1(nil, a, a); len(got) != 104 {
		t.Fatalf("longest TCP6 line is %d bytes, want 104: %q", len(got), got)
	}
}
