package proxyproto

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"
)

// sendMode is how the sender puts header and payload on the wire.
type sendMode struct {
	name string
	send func(c net.Conn, header, payload []byte) error
}

var sendModes = []sendMode{
	// One write: header and payload share a segment, the case where a reader
	// that reads ahead would swallow payload.
	{"one write", func(c net.Conn, h, p []byte) error {
		_, err := c.Write(cat(h, p))
		return err
	}},
	{"two writes", func(c net.Conn, h, p []byte) error {
		if _, err := c.Write(h); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
		_, err := c.Write(p)
		return err
	}},
	// Byte by byte: the header arrives fragmented, which sends the reader from
	// the peek path to byte-wise reads half way through.
	{"fragmented", func(c net.Conn, h, p []byte) error {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		for i := range h {
			if _, err := c.Write(h[i : i+1]); err != nil {
				return err
			}
			if i%7 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		_, err := c.Write(p)
		return err
	}},
}

type roundTripCase struct {
	name     string
	src, dst netip.AddrPort
	ns       string
	// expected decoding
	local          bool
	wantSrc, wantD netip.AddrPort
}

var roundTripCases = []roundTripCase{
	{"tcp4", ap("127.0.0.1:40001"), ap("127.0.0.1:8082"), "hxA", false, ap("127.0.0.1:40001"), ap("127.0.0.1:8082")},
	{"tcp6", ap("[2001:db8::1]:1"), ap("[2001:db8::2]:2"), "cni-0123", false, ap("[2001:db8::1]:1"), ap("[2001:db8::2]:2")},
	{"mixed", ap("10.0.0.1:1"), ap("[::1]:2"), "", false, ap("[::ffff:10.0.0.1]:1"), ap("[::1]:2")},
	{"unknown", netip.AddrPort{}, ap("10.0.0.2:2"), "hxB", true, netip.AddrPort{}, netip.AddrPort{}},
}

// TestRoundTripV2OverTCP writes AppendV2's header and a payload on a real
// loopback connection and checks that ReadHeader decodes the header and
// leaves every payload byte in the socket.
func TestRoundTripV2OverTCP(t *testing.T) {
	testRoundTrip(t, 2)
}

// TestRoundTripV1OverTCP is the same for AppendV1.
func TestRoundTripV1OverTCP(t *testing.T) {
	testRoundTrip(t, 1)
}

func testRoundTrip(t *testing.T, version int) {
	body := bytes.Repeat([]byte("payload-after-the-header\n"), 1000)
	for _, mode := range sendModes {
		for _, tc := range roundTripCases {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				server, client := tcpPair(t)
				var hdr []byte
				if version == 1 {
					hdr = AppendV1(nil, tc.src, tc.dst)
				} else {
					hdr = AppendV2(nil, tc.src, tc.dst, tc.ns)
				}
				sent := make(chan error, 1)
				go func() {
					err := mode.send(client, hdr, body)
					_ = client.CloseWrite()
					sent <- err
				}()

				h, err := ReadHeader(server, ReadOptions{Timeout: 5 * time.Second})
				if err != nil {
					t.Fatalf("ReadHeader: %v", err)
				}
				if h.Version != version || h.Local != tc.local || h.Source != tc.wantSrc || h.Destination != tc.wantD || h.Size != len(hdr) {
					t.Errorf("got v%d local=%v %v -> %v size %d, want v%d local=%v %v -> %v size %d",
						h.Version, h.Local, h.Source, h.Destination, h.Size,
						version, tc.local, tc.wantSrc, tc.wantD, len(hdr))
				}
				wantNS := tc.ns
				if version == 1 {
					wantNS = ""
				}
				if h.Namespace != wantNS || h.HasNamespace != (wantNS != "") {
					t.Errorf("Namespace %q (has %v), want %q", h.Namespace, h.HasNamespace, wantNS)
				}
				if rest := readRest(t, server); !bytes.Equal(rest, body) {
					t.Fatalf("after the header: %d bytes, want the %d payload bytes (first %q)", len(rest), len(body), rest[:min(len(rest), 40)])
				}
				if err := <-sent; err != nil {
					t.Fatalf("send: %v", err)
				}
			})
		}
	}
}

// TestPayloadSplicesAfterHeader is what the engine does: ReadHeader, then
// io.Copy from the accepted *net.TCPConn to another one (the kernel splices
// TCP to TCP). Every payload byte must arrive, and only those.
func TestPayloadSplicesAfterHeader(t *testing.T) {
	inServer, inClient := tcpPair(t)
	outServer, outClient := tcpPair(t)
	body := bytes.Repeat([]byte{0xAB, 0xCD, '\r', '\n'}, 64<<10)

	go func() {
		_, _ = inClient.Write(cat(AppendV2(nil, ap("10.0.0.1:1"), ap("10.0.0.2:2"), "hxA"), body))
		_ = inClient.CloseWrite()
	}()
	h, err := ReadHeader(inServer, ReadOptions{})
	if err != nil || h.Namespace != "hxA" {
		t.Fatalf("ReadHeader: %+v, %v", h, err)
	}

	copied := make(chan error, 1)
	go func() {
		// Both sides are bare *net.TCPConn: io.Copy reaches
		// (*net.TCPConn).ReadFrom, which splices.
		_, err := io.Copy(outClient, inServer)
		_ = outClient.CloseWrite()
		copied <- err
	}()
	got := readRest(t, outServer)
	if err := <-copied; err != nil {
		t.Fatalf("io.Copy: %v", err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("spliced %d bytes, want %d", len(got), len(body))
	}
}

// TestPeekPathIsUsed shows which framing each transport gets: sockets are
// peeked at, a net.Pipe is not.
func TestPeekPathIsUsed(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			server, client := tr.pair(t)
			feed(t, client, haproxyHxA, false)
			if tr.name == "pipe" {
				if _, ok, _ := peek(server, make([]byte, 8)); ok {
					t.Fatal("peek claims to work on a net.Pipe")
				}
				return
			}
			time.Sleep(20 * time.Millisecond) // let the whole header arrive
			buf := make([]byte, MaxV1Size)
			n, ok, err := peek(server, buf)
			if !ok || err != nil || !bytes.Equal(buf[:n], haproxyHxA) {
				t.Fatalf("peek = %q, %v, %v", buf[:n], ok, err)
			}
			// Peeking consumed nothing.
			h, err := ReadHeader(server, ReadOptions{})
			if err != nil || h.Namespace != "hxA" {
				t.Fatalf("ReadHeader after peek: %+v, %v", h, err)
			}
		})
	}
}

// TestReadHeaderLeavesNoGoroutinesOrFDs runs many reads, good and bad, and
// checks that goroutines and file descriptors return to where they were.
func TestReadHeaderLeavesNoGoroutinesOrFDs(t *testing.T) {
	countFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("cannot count fds: %v", err)
		}
		return len(ents)
	}
	run := func() {
		t.Run("reads", func(t *testing.T) {
			for i, in := range [][]byte{haproxyHxA, []byte("PROXY UNKNOWN\r\n"), []byte("GET /"), sigV2[:5]} {
				server, client := tcpPair(t)
				if i%2 == 0 {
					feed(t, client, in, true)
				} else {
					feed(t, client, in, false)
				}
				_, _ = ReadHeader(server, ReadOptions{Timeout: 20 * time.Millisecond})
			}
		})
	}
	run() // warm up lazily started runtime and netpoll goroutines/fds
	goroutines, fds := runtime.NumGoroutine(), countFDs()
	for range 5 {
		run()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g, f := runtime.NumGoroutine(), countFDs(); g > goroutines || f > fds {
		t.Fatalf("goroutines %d -> %d, fds %d -> %d", goroutines, g, fds, f)
	}
}
