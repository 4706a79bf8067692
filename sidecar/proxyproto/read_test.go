package proxyproto

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// want describes the expected outcome of reading one input. For success and
// namespace errors the header fields are compared; Size is always len(in).
type want struct {
	reason    string // "" for success
	version   int
	local     bool
	src, dst  netip.AddrPort
	transport byte
	ns        string
	hasNS     bool
	rawNS     string
	tlvTypes  []byte // nil: not checked
}

type readCase struct {
	name string
	in   []byte
	opt  ReadOptions
	want want
}

var payload = []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")

func v1Cases() []readCase {
	maxLine := "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
	tcp6Max := "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n"
	return []readCase{
		{"v1/tcp4", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), ReadOptions{},
			want{version: 1, src: ap("192.168.0.1:56324"), dst: ap("192.168.0.11:443"), transport: TransportTCP4}},
		{"v1/tcp4 zero ports and addresses", []byte("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), ReadOptions{},
			want{version: 1, src: ap("0.0.0.0:0"), dst: ap("255.255.255.255:65535"), transport: TransportTCP4}},
		{"v1/tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"), ReadOptions{},
			want{version: 1, src: ap("[2001:db8::1]:1"), dst: ap("[2001:db8::2]:65535"), transport: TransportTCP6}},
		{"v1/tcp6 v4-mapped stays mapped", []byte("PROXY TCP6 ::ffff:10.0.0.1 ::1 1000 2000\r\n"), ReadOptions{},
			want{version: 1, src: ap("[::ffff:10.0.0.1]:1000"), dst: ap("[::1]:2000"), transport: TransportTCP6}},
		{"v1/tcp6 longest line", []byte(tcp6Max), ReadOptions{},
			want{version: 1, src: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
				dst: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535"), transport: TransportTCP6}},
		{"v1/unknown", []byte("PROXY UNKNOWN\r\n"), ReadOptions{},
			want{version: 1, local: true, transport: TransportUnspec}},
		{"v1/unknown with addresses, 107 bytes", []byte(maxLine), ReadOptions{},
			want{version: 1, local: true, transport: TransportUnspec}},

		{"v1/port above 65535", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/port with leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/negative port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/port not a number", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 http 80\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/missing port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/extra token", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/double space", []byte("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/ipv4 octet above 255", []byte("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/ipv4 leading zero", []byte("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/ipv6 in TCP4", []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/ipv4 in TCP6", []byte("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/zoned ipv6", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/unknown protocol", []byte("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/lower-case protocol", []byte("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/no space after PROXY", []byte("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/LF without CR", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/CR in the middle", []byte("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/bare PROXY line", []byte("PROXY\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/no CRLF before the end of the stream", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/signature then end of stream", []byte("PROXY"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/too long (no LF in 107 bytes)", []byte("PROXY UNKNOWN " + strings.Repeat("x", 120) + "\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/108 bytes", []byte(maxLine[:len(maxLine)-2] + "f\r\n"), ReadOptions{}, want{reason: "malformed"}},
		{"v1/longer than MaxSize", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), ReadOptions{MaxSize: 32}, want{reason: "too_large"}},
		{"v1/binary garbage after signature", []byte("PROXY \x00\xff\xfe\x01\r\n"), ReadOptions{}, want{reason: "malformed"}},
	}
}

func v2Cases() []readCase {
	a4 := addrs4("10.1.2.3", "10.9.8.7", 40000, 443)
	a6 := addrs6("2001:db8::1", "2001:db8::2", 40000, 443)
	proxy, local := byte(0x21), byte(0x20)
	long := strings.Repeat("n", 255)
	crcHeader := func(corrupt bool) []byte {
		h := v2(proxy, TransportTCP4, a4, tlv(TypeCRC32C, "\x00\x00\x00\x00"), tlv(TypeNetns, "hxA"))
		sum := crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli))
		if corrupt {
			sum++
		}
		off := v2FixedLen + 12 + 3
		h[off], h[off+1], h[off+2], h[off+3] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
		return h
	}
	return []readCase{
		{"v2/haproxy capture", haproxyHxA, ReadOptions{},
			want{version: 2, src: ap("127.0.0.1:40001"), dst: ap("127.0.0.1:8082"), transport: TransportTCP4,
				ns: "hxA", hasNS: true, rawNS: "hxA", tlvTypes: []byte{TypeNetns}}},
		{"v2/tcp4", v2(proxy, TransportTCP4, a4), ReadOptions{},
			want{version: 2, src: ap("10.1.2.3:40000"), dst: ap("10.9.8.7:443"), transport: TransportTCP4, tlvTypes: []byte{}}},
		{"v2/tcp6", v2(proxy, TransportTCP6, a6), ReadOptions{},
			want{version: 2, src: ap("[2001:db8::1]:40000"), dst: ap("[2001:db8::2]:443"), transport: TransportTCP6}},
		{"v2/tcp6 v4-mapped stays mapped", v2(proxy, TransportTCP6, addrs6("::ffff:10.0.0.1", "::1", 1, 2)), ReadOptions{},
			want{version: 2, src: ap("[::ffff:10.0.0.1]:1"), dst: ap("[::1]:2"), transport: TransportTCP6}},
		{"v2/udp4 is local", v2(proxy, TransportUDP4, a4), ReadOptions{},
			want{version: 2, local: true, transport: TransportUDP4}},
		{"v2/udp6 is local", v2(proxy, TransportUDP6, a6), ReadOptions{},
			want{version: 2, local: true, transport: TransportUDP6}},
		{"v2/unix stream is local", v2(proxy, TransportUnixStream, make([]byte, 216), tlv(TypeNetns, "hxU")), ReadOptions{},
			want{version: 2, local: true, transport: TransportUnixStream, ns: "hxU", hasNS: true, rawNS: "hxU"}},
		{"v2/unix dgram is local", v2(proxy, TransportUnixDgram, make([]byte, 216)), ReadOptions{},
			want{version: 2, local: true, transport: TransportUnixDgram}},
		{"v2/local unspec", v2(local, TransportUnspec), ReadOptions{},
			want{version: 2, local: true, transport: TransportUnspec}},
		{"v2/local tcp4 addresses ignored", v2(local, TransportTCP4, a4), ReadOptions{},
			want{version: 2, local: true, transport: TransportTCP4}},
		{"v2/local tcp4 without address block", v2(local, TransportTCP4, []byte{1, 2, 3, 4, 5}), ReadOptions{},
			want{version: 2, local: true, transport: TransportTCP4, tlvTypes: []byte{}}},
		{"v2/local with NETNS is honoured", v2(local, TransportUnspec, tlv(TypeNetns, "hxB")), ReadOptions{},
			want{version: 2, local: true, ns: "hxB", hasNS: true, rawNS: "hxB", tlvTypes: []byte{TypeNetns}}},
		{"v2/proxy unspec accepted as local", v2(proxy, TransportUnspec, tlv(TypeNetns, "hxC")), ReadOptions{},
			want{version: 2, local: true, ns: "hxC", hasNS: true, rawNS: "hxC"}},
		{"v2/other TLVs around NETNS", v2(proxy, TransportTCP4, a4, tlv(0x01, "h2"), tlv(TypeNoop, "\x00\x00"),
			tlv(TypeNetns, "a-b_c.d:E9"), tlv(0x02, "example.com"), tlv(0xE0, "")), ReadOptions{},
			want{version: 2, src: ap("10.1.2.3:40000"), dst: ap("10.9.8.7:443"), transport: TransportTCP4,
				ns: "a-b_c.d:E9", hasNS: true, rawNS: "a-b_c.d:E9", tlvTypes: []byte{0x01, TypeNoop, TypeNetns, 0x02, 0xE0}}},
		{"v2/NETNS of 255 bytes", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, long)), ReadOptions{},
			want{version: 2, src: ap("10.1.2.3:40000"), dst: ap("10.9.8.7:443"), transport: TransportTCP4,
				ns: long, hasNS: true, rawNS: long}},
		{"v2/valid CRC32C", crcHeader(false), ReadOptions{},
			want{version: 2, src: ap("10.1.2.3:40000"), dst: ap("10.9.8.7:443"), transport: TransportTCP4,
				ns: "hxA", hasNS: true, rawNS: "hxA", tlvTypes: []byte{TypeCRC32C, TypeNetns}}},

		{"v2/NETNS empty", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, "")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: ""}},
		{"v2/NETNS with NUL", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, "hxB\x00")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: "hxB\x00"}},
		{"v2/NETNS with slash", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, "a/b")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: "a/b"}},
		{"v2/NETNS path escape", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, "../../proc/1/ns/net")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: "../../proc/1/ns/net"}},
		{"v2/NETNS dot-dot", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, "..")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: ".."}},
		{"v2/NETNS dot", v2(local, TransportUnspec, tlv(TypeNetns, ".")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: "."}},
		{"v2/NETNS 256 bytes", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, long+"n")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: long + "n"}},
		{"v2/NETNS with space", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, "hx B")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: "hx B"}},
		{"v2/NETNS non-ASCII", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, "hé")), ReadOptions{},
			want{reason: "bad_namespace", hasNS: true, rawNS: "hé"}},
		{"v2/two NETNS", v2(proxy, TransportTCP4, a4, tlv(TypeNetns, "hxA"), tlv(TypeNetns, "hxB")), ReadOptions{},
			want{reason: "multiple_namespaces", hasNS: true, rawNS: "hxA"}},
		{"v2/two NETNS, other TLVs between", v2(local, TransportUnspec, tlv(TypeNetns, "hxA"), tlv(0x01, "x"), tlv(TypeNetns, "")), ReadOptions{},
			want{reason: "multiple_namespaces", hasNS: true, rawNS: "hxA"}},

		{"v2/version 1 nibble", v2(0x11, TransportTCP4, a4), ReadOptions{}, want{reason: "malformed"}},
		{"v2/version 3 nibble", v2(0x31, TransportTCP4, a4), ReadOptions{}, want{reason: "malformed"}},
		{"v2/unassigned command", v2(0x22, TransportTCP4, a4), ReadOptions{}, want{reason: "malformed"}},
		{"v2/unassigned family", v2(proxy, 0x41, a4), ReadOptions{}, want{reason: "malformed"}},
		{"v2/unassigned protocol", v2(proxy, 0x13, a4), ReadOptions{}, want{reason: "malformed"}},
		{"v2/unassigned family under LOCAL", v2(local, 0x40), ReadOptions{}, want{reason: "malformed"}},
		{"v2/length shorter than tcp4 block", v2(proxy, TransportTCP4, a4[:8]), ReadOptions{}, want{reason: "malformed"}},
		{"v2/length shorter than tcp6 block", v2(proxy, TransportTCP6, a4), ReadOptions{}, want{reason: "malformed"}},
		{"v2/length longer than the stream", v2Len(proxy, TransportTCP4, 40, a4), ReadOptions{}, want{reason: "malformed"}},
		{"v2/truncated fixed part", cat(sigV2, []byte{proxy, TransportTCP4}), ReadOptions{}, want{reason: "malformed"}},
		{"v2/signature only", sigV2, ReadOptions{}, want{reason: "malformed"}},
		{"v2/truncated address block", v2(proxy, TransportTCP4, a4)[:20], ReadOptions{}, want{reason: "malformed"}},
		{"v2/truncated TLV header", v2(proxy, TransportTCP4, a4, []byte{0x30, 0x00}), ReadOptions{}, want{reason: "malformed"}},
		{"v2/TLV overruns header", v2(proxy, TransportTCP4, a4, []byte{0x30, 0x00, 0x09, 'h', 'x'}), ReadOptions{}, want{reason: "malformed"}},
		{"v2/wrong CRC32C", crcHeader(true), ReadOptions{}, want{reason: "malformed"}},
		{"v2/short CRC32C", v2(proxy, TransportTCP4, a4, tlv(TypeCRC32C, "abc")), ReadOptions{}, want{reason: "malformed"}},

		{"v2/above MaxSize", v2(proxy, TransportTCP4, a4, tlv(0xE0, strings.Repeat("x", 200))), ReadOptions{MaxSize: 100},
			want{reason: "too_large"}},
		{"v2/exactly MaxSize", v2(proxy, TransportTCP4, a4, tlv(0xE0, strings.Repeat("x", 69))), ReadOptions{MaxSize: 100},
			want{version: 2, src: ap("10.1.2.3:40000"), dst: ap("10.9.8.7:443"), transport: TransportTCP4}},
		{"v2/length 65535 refused before the body", v2Len(proxy, TransportTCP4, 0xFFFF), ReadOptions{}, want{reason: "too_large"}},
		{"v2/above the library's cap", v2(proxy, TransportTCP4, a4, tlv(0xE0, strings.Repeat("x", 5000))), ReadOptions{MaxSize: 8192},
			want{reason: "too_large"}},
	}
}

func noHeaderCases() []readCase {
	return []readCase{
		{"none/empty stream", nil, ReadOptions{}, want{reason: "no_header"}},
		{"none/http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ReadOptions{}, want{reason: "no_header"}},
		{"none/tls client hello", []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), ReadOptions{}, want{reason: "no_header"}},
		{"none/lower-case proxy", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ReadOptions{}, want{reason: "no_header"}},
		{"none/partial v1 signature", []byte("PROX"), ReadOptions{}, want{reason: "no_header"}},
		{"none/partial v2 signature", sigV2[:11], ReadOptions{}, want{reason: "no_header"}},
		{"none/v2 signature with a wrong byte", cat(sigV2[:7], []byte("quit\n"), []byte{0x21, 0x11, 0, 0}), ReadOptions{}, want{reason: "no_header"}},
		{"none/CRLF", []byte("\r\n\r\nhello"), ReadOptions{}, want{reason: "no_header"}},
	}
}

func allReadCases() []readCase {
	return append(append(v1Cases(), v2Cases()...), noHeaderCases()...)
}

// TestReadHeader runs every case over every transport. Successful headers
// are followed by a payload, which must still be readable afterwards.
func TestReadHeader(t *testing.T) {
	for _, tr := range transports {
		for _, tc := range allReadCases() {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				server, client := tr.pair(t)
				in := tc.in
				consumed := tc.want.reason == "" || tc.want.reason == "bad_namespace" || tc.want.reason == "multiple_namespaces"
				if consumed {
					in = cat(tc.in, payload)
				}
				feed(t, client, in, true)

				h, err := ReadHeader(server, tc.opt)
				if got := Reason(err); got != tc.want.reason {
					t.Fatalf("Reason = %q (err %v), want %q", got, err, tc.want.reason)
				}
				if !consumed {
					if h != nil {
						t.Fatalf("header %+v returned with %v", h, err)
					}
					return
				}
				if h == nil {
					t.Fatalf("no header returned with err %v", err)
				}
				checkHeader(t, h, tc)
				if rest := readRest(t, server); !bytes.Equal(rest, payload) {
					t.Fatalf("after the header the stream holds %q, want %q", rest, payload)
				}
			})
		}
	}
}

func checkHeader(t *testing.T, h *Header, tc readCase) {
	t.Helper()
	w := tc.want
	if w.reason == "" {
		if h.Version != w.version || h.Local != w.local || h.Source != w.src || h.Destination != w.dst || h.Transport != w.transport {
			t.Errorf("got version %d local %v %v -> %v transport %#02x; want version %d local %v %v -> %v transport %#02x",
				h.Version, h.Local, h.Source, h.Destination, h.Transport,
				w.version, w.local, w.src, w.dst, w.transport)
		}
		if h.Namespace != w.ns {
			t.Errorf("Namespace = %q, want %q", h.Namespace, w.ns)
		}
	} else if h.Namespace != "" {
		t.Errorf("Namespace = %q with %s", h.Namespace, w.reason)
	}
	if h.HasNamespace != w.hasNS || string(h.RawNamespace) != w.rawNS {
		t.Errorf("HasNamespace %v RawNamespace %q, want %v %q", h.HasNamespace, h.RawNamespace, w.hasNS, w.rawNS)
	}
	if h.Size != len(tc.in) {
		t.Errorf("Size = %d, want %d", h.Size, len(tc.in))
	}
	if w.tlvTypes != nil {
		var types []byte
		for _, tl := range h.TLVs {
			types = append(types, tl.Type)
		}
		if !bytes.Equal(types, w.tlvTypes) {
			t.Errorf("TLV types %x, want %x", types, w.tlvTypes)
		}
	}
	if h.Version == 1 && h.TLVs != nil {
		t.Errorf("v1 header with TLVs %v", h.TLVs)
	}
}

func TestReadHeaderKeepsTLVValues(t *testing.T) {
	in := v2(0x21, TransportTCP4, addrs4("1.2.3.4", "5.6.7.8", 1, 2),
		tlv(0x01, "h2"), tlv(TypeNoop, "\x00\x01"), tlv(TypeNetns, "hxA"), tlv(0xF0, ""))
	server, client := tcpPair(t)
	feed(t, client, in, true)
	h, err := ReadHeader(server, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantTLVs := []TLV{{0x01, []byte("h2")}, {TypeNoop, []byte{0, 1}}, {TypeNetns, []byte("hxA")}, {0xF0, []byte{}}}
	if len(h.TLVs) != len(wantTLVs) {
		t.Fatalf("TLVs %v, want %v", h.TLVs, wantTLVs)
	}
	for i, w := range wantTLVs {
		if h.TLVs[i].Type != w.Type || !bytes.Equal(h.TLVs[i].Value, w.Value) {
			t.Errorf("TLV %d = %#02x %q, want %#02x %q", i, h.TLVs[i].Type, h.TLVs[i].Value, w.Type, w.Value)
		}
	}
	// Values are capacity-limited: appending to one must not clobber the next.
	_ = append(h.TLVs[0].Value, 'X')
	if string(h.TLVs[1].Value) != "\x00\x01" || h.TLVs[1].Type != TypeNoop {
		t.Errorf("appending to a TLV value changed its neighbour")
	}
}

// A peer that sends part of a header and then goes quiet is cut off at the
// deadline, and the deadline is cleared afterwards.
func TestReadHeaderTimeout(t *testing.T) {
	full := v2(0x21, TransportTCP4, addrs4("1.2.3.4", "5.6.7.8", 1, 2), tlv(TypeNetns, "hxA"))
	stalls := []struct {
		name string
		sent []byte
	}{
		{"nothing", nil},
		{"half a v2 signature", sigV2[:6]},
		{"v2 fixed part only", full[:v2FixedLen]},
		{"half a v2 header", full[:len(full)/2]},
		{"half a v1 line", []byte("PROXY TCP4 192.168.")},
		{"v1 signature only", []byte("PROXY")},
	}
	const timeout = 150 * time.Millisecond
	for _, tr := range transports {
		for _, st := range stalls {
			t.Run(tr.name+"/"+st.name, func(t *testing.T) {
				server, client := tr.pair(t)
				if len(st.sent) > 0 {
					feed(t, client, st.sent, false)
				}
				start := time.Now()
				h, err := ReadHeader(server, ReadOptions{Timeout: timeout})
				elapsed := time.Since(start)
				if !errors.Is(err, ErrTimeout) || Reason(err) != "timeout" || h != nil {
					t.Fatalf("got %v, %v; want ErrTimeout", h, err)
				}
				if elapsed < timeout || elapsed > 20*timeout {
					t.Errorf("gave up after %v, timeout %v", elapsed, timeout)
				}
				checkDeadlineCleared(t, server, client)
			})
		}
	}
}

// checkDeadlineCleared shows that a read on server issued after the old
// deadline waits for data instead of failing at once.
func checkDeadlineCleared(t *testing.T, server, client net.Conn) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = client.Write([]byte("z"))
	}()
	buf := make([]byte, 256)
	if _, err := server.Read(buf); err != nil {
		t.Fatalf("read after ReadHeader returned: %v (deadline not cleared?)", err)
	}
}

// The deadline is cleared on success too.
func TestReadHeaderClearsDeadlineOnSuccess(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			server, client := tr.pair(t)
			feed(t, client, haproxyHxA, false)
			if _, err := ReadHeader(server, ReadOptions{Timeout: 50 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(80 * time.Millisecond)
			checkDeadlineCleared(t, server, client)
		})
	}
}

// A peer speaking another protocol is refused at its first byte, not at the
// deadline, even when it then waits for an answer.
func TestReadHeaderRefusesOtherProtocolsAtOnce(t *testing.T) {
	for _, tr := range transports {
		for _, first := range []string{"SSH-2.0-x\r\n", "\x16\x03\x01", "\r\n\r\nX"} {
			t.Run(fmt.Sprintf("%s/%q", tr.name, first), func(t *testing.T) {
				server, client := tr.pair(t)
				feed(t, client, []byte(first), false)
				start := time.Now()
				_, err := ReadHeader(server, ReadOptions{Timeout: 10 * time.Second})
				if !errors.Is(err, ErrNoHeader) {
					t.Fatalf("err = %v, want ErrNoHeader", err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("took %v", d)
				}
			})
		}
	}
}

// A v2 header announcing more than MaxSize is refused from its fixed part:
// the peer sends nothing more and does not close, yet there is no timeout.
func TestReadHeaderRefusesLargeV2BeforeBody(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			server, client := tr.pair(t)
			feed(t, client, v2Len(0x21, TransportTCP4, 2000), false)
			_, err := ReadHeader(server, ReadOptions{MaxSize: 1000, Timeout: 10 * time.Second})
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
		})
	}
}

func TestReadOptionsDefaults(t *testing.T) {
	for _, tc := range []struct {
		in      ReadOptions
		timeout time.Duration
		max     int
	}{
		{ReadOptions{}, DefaultReadTimeout, DefaultMaxSize},
		{ReadOptions{Timeout: -1, MaxSize: -1}, DefaultReadTimeout, DefaultMaxSize},
		{ReadOptions{Timeout: time.Second, MaxSize: 3}, time.Second, MinMaxSize},
		{ReadOptions{MaxSize: 100}, DefaultReadTimeout, 100},
	} {
		if got, gotMax := tc.in.timeout(), tc.in.maxSize(); got != tc.timeout || gotMax != tc.max {
			t.Errorf("%+v: timeout %v max %d, want %v %d", tc.in, got, gotMax, tc.timeout, tc.max)
		}
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrNoHeader, "no_header"},
		{ErrTimeout, "timeout"},
		{ErrMalformed, "malformed"},
		{ErrTooLarge, "too_large"},
		{ErrBadNamespace, "bad_namespace"},
		{ErrMultipleNamespaces, "multiple_namespaces"},
		{malformed("x %d", 1), "malformed"},
		{errors.New("connection reset"), "other"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
