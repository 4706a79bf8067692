package proxyproto_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/proxyproto"
)

// An accept-proxy listener reads the header, then keeps using the very same
// connection: the bytes after the header are still in it.
func ExampleReadHeader() {
	server, client := net.Pipe() // in nsproxy: a *net.TCPConn from Accept
	defer server.Close()
	go func() {
		defer client.Close()
		src := netip.MustParseAddrPort("192.0.2.10:40001")
		dst := netip.MustParseAddrPort("198.51.100.1:443")
		hdr := proxyproto.AppendV2(nil, src, dst, "tenant-a")
		_, _ = client.Write(append(hdr, "hello"...))
	}()

	h, err := proxyproto.ReadHeader(server, proxyproto.ReadOptions{Timeout: 3 * time.Second})
	if err != nil {
		// Count and log by reason; close the connection.
		fmt.Println("refused:", proxyproto.Reason(err))
		return
	}
	fmt.Println("client:", h.Source, "namespace:", h.Namespace)

	rest, _ := io.ReadAll(server)
	fmt.Printf("payload: %s\n", rest)
	// Output:
	// client: 192.0.2.10:40001 namespace: tenant-a
	// payload: hello
}

// A NETNS TLV that is not a plain name is refused; the header is still
// returned so the refused value can be logged.
func ExampleReadHeader_badNamespace() {
	server, client := net.Pipe()
	defer server.Close()
	go func() {
		defer client.Close()
		src := netip.MustParseAddrPort("192.0.2.10:40001")
		dst := netip.MustParseAddrPort("198.51.100.1:443")
		_, _ = client.Write(proxyproto.AppendV2(nil, src, dst, "../../proc/1/ns/net"))
	}()

	h, err := proxyproto.ReadHeader(server, proxyproto.ReadOptions{})
	fmt.Println(errors.Is(err, proxyproto.ErrBadNamespace), proxyproto.Reason(err))
	fmt.Printf("raw value: %q\n", h.RawNamespace)
	// Output:
	// true bad_namespace
	// raw value: "../../proc/1/ns/net"
}

// send-proxy-v2: the header for a client connection, with the namespace the
// client came from.
func ExampleAppendV2() {
	src := netip.MustParseAddrPort("127.0.0.1:40001")
	dst := netip.MustParseAddrPort("127.0.0.1:8082")
	fmt.Printf("% x\n", proxyproto.AppendV2(nil, src, dst, "hxA"))
	// Output:
	// 0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 12 7f 00 00 01 7f 00 00 01 9c 41 1f 92 30 00 03 68 78 41
}

// send-proxy: mixed families become TCP6 with the IPv4 end mapped, as in
// HAProxy; an unknown address gives UNKNOWN.
func ExampleAppendV1() {
	v4 := netip.MustParseAddrPort("192.0.2.10:40001")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:443")
	fmt.Printf("%q\n", proxyproto.AppendV1(nil, v4, netip.MustParseAddrPort("198.51.100.1:443")))
	fmt.Printf("%q\n", proxyproto.AppendV1(nil, v4, v6))
	fmt.Printf("%q\n", proxyproto.AppendV1(nil, netip.AddrPort{}, v6))
	// Output:
	// "PROXY TCP4 192.0.2.10 198.51.100.1 40001 443\r\n"
	// "PROXY TCP6 ::ffff:192.0.2.10 2001:db8::1 40001 443\r\n"
	// "PROXY UNKNOWN\r\n"
}
