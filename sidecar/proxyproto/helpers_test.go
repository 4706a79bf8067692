package proxyproto

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// transport makes a connected pair: ReadHeader runs on server, the test
// writes on client.
type transport struct {
	name string
	pair func(testing.TB) (server, client net.Conn)
}

// transports exercise both framings: tcp and unix take the MSG_PEEK fast
// path (unix is what the fuzzers use: no ephemeral ports to exhaust), pipe
// has no socket and takes the byte-wise path.
var transports = []transport{
	{"tcp", func(tb testing.TB) (net.Conn, net.Conn) { s, c := tcpPair(tb); return s, c }},
	{"unix", socketPair},
	{"pipe", pipePair},
}

func tcpPair(tb testing.TB) (server, client *net.TCPConn) {
	tb.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	client, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { client.Close() })
	server, err = ln.AcceptTCP()
	if err != nil {
		tb.Fatalf("accept: %v", err)
	}
	tb.Cleanup(func() { server.Close() })
	return server, client
}

func socketPair(tb testing.TB) (server, client net.Conn) {
	tb.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatalf("socketpair: %v", err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f) // dups fd
		f.Close()
		if err != nil {
			tb.Fatalf("FileConn: %v", err)
		}
		tb.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}

func pipePair(tb testing.TB) (server, client net.Conn) {
	server, client = net.Pipe()
	tb.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// feed writes data on client from a goroutine (net.Pipe writes block until
// read) and then, if closeAfter, ends client's side of the stream. The
// goroutine is gone when the test's cleanups have run.
func feed(tb testing.TB, client net.Conn, data []byte, closeAfter bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := client.Write(data); err != nil {
			return // the reader gave up early and closed
		}
		if closeAfter {
			closeWrite(client)
		}
	}()
	tb.Cleanup(func() { client.Close(); <-done })
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// readRest reads what is left on c until the peer ends the stream.
func readRest(tb testing.TB, c net.Conn) []byte {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	b, err := io.ReadAll(c)
	if err != nil {
		tb.Fatalf("reading after the header: %v", err)
	}
	return b
}

// v2 builds a v2 header with the given version/command and family bytes and
// a body, the length field set to len(body).
func v2(verCmd, fam byte, body ...[]byte) []byte {
	b := append([]byte{}, sigV2...)
	b = append(b, verCmd, fam, 0, 0)
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-v2FixedLen))
	return b
}

// v2Len is v2 with a length field that may lie.
func v2Len(verCmd, fam byte, length uint16, body ...[]byte) []byte {
	b := v2(verCmd, fam, body...)
	binary.BigEndian.PutUint16(b[14:16], length)
	return b
}

func tlv(typ byte, value string) []byte {
	b := []byte{typ, 0, 0}
	binary.BigEndian.PutUint16(b[1:], uint16(len(value)))
	return append(b, value...)
}

// addrs4 is a v2 IPv4 address block.
func addrs4(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

// addrs6 is a v2 IPv6 address block.
func addrs6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// unhex decodes hex that may contain spaces.
func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// haproxyHxA is HAProxy 2.6's send-proxy-v2 header for a client
// 127.0.0.1:40001 on a listener 127.0.0.1:8082 in namespace hxA.
var haproxyHxA = unhex("0d0a0d0a000d0a515549540a 21 11 0012 7f000001 7f000001 9c41 1f92 30 0003 687841")
