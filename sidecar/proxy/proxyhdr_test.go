package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxyproto"
)

// serveHeader runs a server in ns that reads a PROXY header and answers
// with tag and what the header said.
func (v *env) serveHeader(ns, addr, tag string) {
	v.t.Helper()
	v.serveFunc(ns, addr, func(c net.Conn) {
		h, err := proxyproto.ReadHeader(c, proxyproto.ReadOptions{Timeout: 2 * time.Second})
		if err != nil {
			fmt.Fprintf(c, "%s header-error %v\n", tag, err)
			return
		}
		fmt.Fprintf(c, "%s v%d src=%s dst=%s netns=%q\n", tag, h.Version, h.Source, h.Destination, h.Namespace)
	})
}

// serveFunc runs handle for each connection to addr in namespace ns (""
// is the test's own).
func (v *env) serveFunc(ns, addr string, handle func(net.Conn)) {
	v.t.Helper()
	var ln net.Listener
	var err error
	closeNS := func() {}
	if ns == "" {
		ln, err = net.Listen("tcp", addr)
	} else {
		h, herr := netns.OpenPath(filepath.Join(netns.DefaultDir, ns), ns)
		if herr != nil {
			v.t.Fatal(herr)
		}
		closeNS = func() { h.Close() }
		ln, err = h.Listen(netip.MustParseAddrPort(addr))
	}
	if err != nil {
		closeNS()
		v.t.Fatal(err)
	}
	var wg sync.WaitGroup
	v.t.Cleanup(func() { ln.Close(); closeNS(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// sendHeader connects from ns to addr, writes hdr and returns the first line.
func (v *env) sendHeader(ns, addr string, hdr []byte) (string, error) {
	c, err := v.dial(ns, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(hdr); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func v2(src, dst string, ns string) []byte {
	return proxyproto.AppendV2(nil, netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst), ns)
}

// TestAcceptProxyNamespaceStar: a v2 header's NETNS TLV picks the
// namespace of a "server * namespace *", and its destination the address.
// X and Y both have 10.66.0.1: only the TLV decides who answers.
func TestAcceptProxyNamespaceStar(t *testing.T) {
	x, y, z := testns.New(t, "X"), testns.New(t, "Y"), testns.New(t, "Z")
	v := newEnv(t, x, y, z)
	v.reg.SetAllowed([]string{x, y})
	for _, ns := range []string{x, y, z} {
		testns.Addr(t, ns, "10.66.0.1/32")
		v.serve(ns, "10.66.0.1:8080", ns)
	}
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), AcceptProxy: true}
	star := ServerSpec{Name: "any", PortMode: PortFromClient, ClientNamespace: true, Weight: 1}
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{star}}))
	addr := bind.Addr.String()
	// Wait without a probe connection: one would count as no_header once
	// its header timeout (5 s) passes, which a loaded machine reaches.
	eventually(t, "listener", func() error {
		if ls := v.e.Listeners(); len(ls) != 1 || !ls[0].Listening {
			return fmt.Errorf("listener not up: %+v", ls)
		}
		return nil
	})

	for _, ns := range []string{x, y} {
		got, err := v.sendHeader("", addr, v2("192.0.2.9:4000", "10.66.0.1:8080", ns))
		if err != nil || got != ns {
			t.Fatalf("TLV %s: answered %q (%v)", ns, got, err)
		}
	}
	v.waitLog("client_netns=" + y + " client_netns_source=tlv server_netns=" + y)
	v.waitLog("client=192.0.2.9:4000")

	// Refused: not allowed (exists but not on the list), unknown, malformed,
	// two TLVs; and no header at all.
	two := append(v2("192.0.2.9:4000", "10.66.0.1:8080", x)[:0:0], v2("192.0.2.9:4000", "10.66.0.1:8080", x)...)
	two = append(two, 0x30, 0, 1, 'x')
	two[15] += 4 // length covers the extra TLV
	for name, hdr := range map[string][]byte{
		"not allowed": v2("192.0.2.9:4000", "10.66.0.1:8080", z),
		"unknown":     v2("192.0.2.9:4000", "10.66.0.1:8080", "nope"),
		"malformed":   v2("192.0.2.9:4000", "10.66.0.1:8080", "../"+x),
		"two TLVs":    two,
		"no header":   []byte("GET / HTTP/1.0\r\n\r\n"),
	} {
		if got, err := v.sendHeader("", addr, hdr); err == nil && got != "" {
			t.Errorf("%s: served by %q, want refused", name, got)
		}
	}
	eventually(t, "refusal counters", func() error {
		r := v.e.Refusals("f")
		if r[reasonNotAllowed] != 2 || r["bad_namespace"] != 1 || r["multiple_namespaces"] != 1 || r["no_header"] != 1 {
			return fmt.Errorf("refusals %v", r)
		}
		return nil
	})
	v.waitLog(`netns_tlv="\"../` + x + `\""`)
	v.waitLog("termination=proxy_netns_refused")

	// Lenient: an unknown TLV keeps the listener's namespace (default here,
	// where nothing listens on 10.66.0.1: so use a fixed server instead).
	sp := spec1(bind, BackendSpec{Servers: []ServerSpec{srv("fixed", "10.66.0.1:8080", z)}})
	sp.Frontends[0].Proxy.LenientNamespace = true
	v.e.Apply(sp)
	if got, err := v.sendHeader("", addr, v2("192.0.2.9:4000", "10.66.0.1:8080", "nope")); err != nil || got != z {
		t.Fatalf("lenient: %q %v", got, err)
	}
	if v.e.Refusals("f")[reasonLenientIgnored] != 1 {
		t.Fatalf("lenient ignore not counted: %v", v.e.Refusals("f"))
	}
}

// TestSendProxyCarriesClientNamespace: send-proxy-v2 carries the client's
// namespace (the listener's here), never the server's; v1 carries none.
func TestSendProxyCarriesClientNamespace(t *testing.T) {
	a, b := testns.New(t, "A"), testns.New(t, "B")
	v := newEnv(t, a, b)
	v.serveHeader(b, "127.0.0.1:9100", "srv")
	s2 := srv("s", "127.0.0.1:9100", b)
	s2.SendProxy = 2
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:9101"), Namespace: a}
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{s2}}))
	var got string
	eventually(t, "v2 through the proxy", func() error {
		c, err := v.dial(a, "127.0.0.1:9101")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		got = strings.TrimSpace(string(b))
		return err
	})
	if !strings.HasPrefix(got, "srv v2 src=127.0.0.1:") || !strings.HasSuffix(got, fmt.Sprintf("dst=127.0.0.1:9101 netns=%q", a)) {
		t.Fatalf("server saw %q", got)
	}
	s1 := s2
	s1.SendProxy = 1
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{s1}}))
	eventually(t, "v1 through the proxy", func() error {
		c, err := v.dial(a, "127.0.0.1:9101")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		got = strings.TrimSpace(string(b))
		if !strings.HasPrefix(got, "srv v1 ") || !strings.HasSuffix(got, `netns=""`) {
			return fmt.Errorf("server saw %q", got)
		}
		return nil
	})
}

// TestTrustedProxies: PROXY headers only from the listed networks.
func TestTrustedProxies(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serve(b, "127.0.0.1:9200", "srv")
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), AcceptProxy: true}
	sp := spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:9200", b)}})
	sp.Frontends[0].Proxy.Trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	v.e.Apply(sp)
	hdr := v2("192.0.2.1:1", "192.0.2.2:2", "")
	eventually(t, "untrusted refused", func() error {
		got, err := v.sendHeader("", bind.Addr.String(), hdr)
		if err == nil && got != "" {
			return fmt.Errorf("served %q", got)
		}
		if v.e.Refusals("f")[reasonUntrusted] == 0 {
			return fmt.Errorf("not counted")
		}
		return nil
	})
	sp.Frontends[0].Proxy.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	v.e.Apply(sp)
	if got, err := v.sendHeader("", bind.Addr.String(), hdr); err != nil || got != "srv" {
		t.Fatalf("trusted source: %q %v", got, err)
	}
}

// TestServerAddressFromClient: "server s *:PORT", "+N" offsets and the
// accepted socket's address when there is no PROXY header.
func TestServerAddressFromClient(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	testns.Addr(t, b, "10.55.0.1/32")
	v.serve(b, "10.55.0.1:9301", "fixed-port")
	v.serve(b, "10.55.0.1:9400", "offset")
	// Listener inside B on 10.55.0.1:9300; the server takes that address.
	bind := BindSpec{Addr: netip.MustParseAddrPort("10.55.0.1:9300"), Namespace: b}
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{{Name: "s", Port: 9301, Namespace: b, Weight: 1}}}))
	expectTag(v, b, "10.55.0.1:9300", "fixed-port")
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{{Name: "s", PortMode: PortOffset, PortOffset: 100, Namespace: b, Weight: 1}}}))
	expectTag(v, b, "10.55.0.1:9300", "offset")
}
