//go:build e2e

package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startHAProxy runs haproxy in the foreground on cfg until the test ends.
func startHAProxy(t *testing.T, cfg string) {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed (make deps installs it)")
	}
	if out, err := exec.Command("haproxy", "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy rejects its config: %v\n%s", err, out)
	}
	cmd := exec.Command("haproxy", "-db", "-f", cfg)
	var out bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = &lockedWriter{&mu, &out}, &lockedWriter{&mu, &out}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("haproxy output:\n%s", out.String())
			mu.Unlock()
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// v2Header builds a PROXY v2 PROXY/TCP4 header by hand (the e2e suite
// imports nothing of nsproxy), with an optional NETNS TLV.
func v2Header(src, dst netip.AddrPort, ns string) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11")
	body := append(src.Addr().AsSlice(), dst.Addr().AsSlice()...)
	body = binary.BigEndian.AppendUint16(body, src.Port())
	body = binary.BigEndian.AppendUint16(body, dst.Port())
	if ns != "" {
		body = append(body, 0x30)
		body = binary.BigEndian.AppendUint16(body, uint16(len(ns)))
		body = append(body, ns...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// sendHeader connects to addr from ns, sends hdr and returns the first line
// of the answer ("" when the connection is closed without one).
func sendHeader(t *testing.T, ns, addr string, hdr []byte) string {
	t.Helper()
	line, err := trySendHeader(t, ns, addr, hdr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return line
}

// trySendHeader is sendHeader that returns dial errors.
func trySendHeader(t *testing.T, ns, addr string, hdr []byte) (string, error) {
	c, err := dialIn(t, ns, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write(hdr)
	b, _ := io.ReadAll(c)
	line, _, _ := strings.Cut(string(b), "\n")
	return line, nil
}

// TestHAProxyToNsproxy: HAProxy listens inside X and Y (same address) and
// sends PROXY v2 to nsproxy; nsproxy's "server * namespace *" follows the
// NETNS TLV back into the client's namespace.
func TestHAProxyToNsproxy(t *testing.T) {
	nsproxyBin(t)
	x, y := newNS(t, "X"), newNS(t, "Y")
	for _, ns := range []string{x, y} {
		sh(t, "ip", "-n", ns, "addr", "add", "10.0.0.1/32", "dev", "lo")
		serveTag(t, ns, "10.0.0.1:8080", "server-in-"+ns)
	}
	dir := t.TempDir()
	hcfg := writeFile(t, dir, "haproxy.cfg", fmt.Sprintf(`
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fx
    bind 10.0.0.1:80 namespace %[1]s
    default_backend to_nsproxy
frontend fy
    bind 10.0.0.1:80 namespace %[2]s
    default_backend to_nsproxy
backend to_nsproxy
    server n 127.0.0.1:17600 send-proxy-v2
`, x, y))
	ncfg := writeFile(t, dir, "nsproxy.cfg", fmt.Sprintf(`
namespace_list
    namespace %[1]s
    namespace %[2]s
frontend f
    bind 127.0.0.1:17600 accept-proxy
    default_backend b
backend b
    server snodes *:8080 namespace *
`, x, y))
	d := startDaemon(t, nil, "-f", ncfg)
	d.waitLog("msg=listening")
	startHAProxy(t, hcfg)
	expectTag(t, x, "10.0.0.1:80", "server-in-"+x)
	expectTag(t, y, "10.0.0.1:80", "server-in-"+y)
	d.waitLog("client_netns=" + y + " client_netns_source=tlv server_netns=" + y)
	d.waitLog("proxy_version=2")
}

// TestNsproxyToHAProxy: nsproxy listens inside X and Y and sends PROXY v2;
// HAProxy's namespace_list + "server * namespace *" follows the TLV.
func TestNsproxyToHAProxy(t *testing.T) {
	nsproxyBin(t)
	x, y := newNS(t, "X"), newNS(t, "Y")
	for _, ns := range []string{x, y} {
		sh(t, "ip", "-n", ns, "addr", "add", "10.0.0.1/32", "dev", "lo")
		serveTag(t, ns, "10.0.0.1:8080", "server-in-"+ns)
	}
	dir := t.TempDir()
	ncfg := writeFile(t, dir, "nsproxy.cfg", fmt.Sprintf(`
frontend fx
    bind 10.0.0.1:81 namespace %[1]s
    default_backend to_haproxy
frontend fy
    bind 10.0.0.1:81 namespace %[2]s
    default_backend to_haproxy
backend to_haproxy
    server h 127.0.0.1:17610 send-proxy-v2
`, x, y))
	hcfg := writeFile(t, dir, "haproxy.cfg", fmt.Sprintf(`
namespace_list
    namespace %[1]s
    namespace %[2]s
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend f
    bind 127.0.0.1:17610 accept-proxy
    default_backend b
backend b
    server snodes *:8080 namespace *
`, x, y))
	startHAProxy(t, hcfg)
	d := startDaemon(t, nil, "-f", ncfg)
	d.waitLog("msg=listening")
	expectTag(t, x, "10.0.0.1:81", "server-in-"+x)
	expectTag(t, y, "10.0.0.1:81", "server-in-"+y)
}

// TestSendProxyV2BytesMatchHAProxy: the same client connection through
// HAProxy and through nsproxy produces the same v2 header, byte for byte,
// but for the listener's port.
func TestSendProxyV2BytesMatchHAProxy(t *testing.T) {
	nsproxyBin(t)
	x := newNS(t, "X")
	sh(t, "ip", "-n", x, "addr", "add", "10.0.0.1/32", "dev", "lo")
	headers := make(chan []byte, 4)
	serveFunc(t, "", "127.0.0.1:17620", func(c io.ReadWriter) {
		fixed := make([]byte, 16)
		if _, err := io.ReadFull(c, fixed); err != nil {
			return
		}
		rest := make([]byte, binary.BigEndian.Uint16(fixed[14:]))
		io.ReadFull(c, rest)
		headers <- append(fixed, rest...)
	})
	dir := t.TempDir()
	startHAProxy(t, writeFile(t, dir, "haproxy.cfg", fmt.Sprintf(`
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fx
    bind 10.0.0.1:82 namespace %s
    default_backend capture
backend capture
    server c 127.0.0.1:17620 send-proxy-v2
`, x)))
	d := startDaemon(t, nil, "-f", writeFile(t, dir, "nsproxy.cfg", fmt.Sprintf(`
frontend fx
    bind 10.0.0.1:83 namespace %s
    default_backend capture
backend capture
    server c 127.0.0.1:17620 send-proxy-v2
`, x)))
	d.waitLog("msg=listening")
	capture := func(port int) []byte {
		var hdr []byte
		eventually(t, fmt.Sprintf("header via port %d", port), func() error {
			var c net.Conn
			err := inNS(t, x, func() error {
				dl := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 40001}}
				var err error
				c, err = dl.Dial("tcp", fmt.Sprintf("10.0.0.1:%d", port))
				return err
			})
			if err != nil {
				return err
			}
			defer func() { c.(*net.TCPConn).SetLinger(0); c.Close() }() // port 40001 again at once
			select {
			case hdr = <-headers:
				return nil
			case <-time.After(2 * time.Second):
				return fmt.Errorf("no header")
			}
		})
		return hdr
	}
	hap, nsp := capture(82), capture(83)
	t.Logf("haproxy: % x", hap)
	t.Logf("nsproxy: % x", nsp)
	if len(hap) != len(nsp) || len(hap) < 28 {
		t.Fatalf("lengths differ: haproxy %d, nsproxy %d", len(hap), len(nsp))
	}
	// Offsets 26-27 are the destination port (82 vs 83); all else is equal.
	if binary.BigEndian.Uint16(hap[26:]) != 82 || binary.BigEndian.Uint16(nsp[26:]) != 83 {
		t.Fatalf("destination ports: haproxy %d, nsproxy %d", binary.BigEndian.Uint16(hap[26:]), binary.BigEndian.Uint16(nsp[26:]))
	}
	a, b := append([]byte{}, hap...), append([]byte{}, nsp...)
	a[26], a[27], b[26], b[27] = 0, 0, 0, 0
	if !bytes.Equal(a, b) {
		t.Fatalf("headers differ beyond the destination port")
	}
	want := append([]byte{0x30, 0, byte(len(x))}, x...)
	if !bytes.HasSuffix(nsp, want) || nsp[12] != 0x21 || nsp[13] != 0x11 {
		t.Fatalf("nsproxy header is not PROXY/TCP4 ending in NETNS %q", x)
	}
}

// TestReferenceAcceptProxyExample runs the reference document's last
// snippet verbatim: accept-proxy, "source 0.0.0.0 usesrc clientip" and
// "server snodes * namespace *". nsproxy itself runs inside a namespace H
// that holds 192.168.1.1, so the host is not touched. The server inside
// netns1 must see the client address of the PROXY header as its peer.
func TestReferenceAcceptProxyExample(t *testing.T) {
	nsproxyBin(t) // skip before making namespaces when the binary is missing
	h, n1 := newNS(t, "H"), newNS(t, "n1")
	sh(t, "ip", "-n", h, "addr", "add", "192.168.1.1/32", "dev", "lo")
	sh(t, "ip", "-n", n1, "addr", "add", "192.168.1.100/32", "dev", "lo")
	// The return route for the foreign source address, inside netns1.
	sh(t, "ip", "-n", n1, "route", "add", "local", "10.9.9.0/24", "dev", "lo")
	serveFunc(t, n1, "192.168.1.100:80", func(c io.ReadWriter) {
		fmt.Fprintf(c, "peer=%s\n", c.(net.Conn).RemoteAddr())
	})
	dir := netnsDir(t, map[string]string{"netns1": n1})
	cfg := writeFile(t, t.TempDir(), "ref.cfg", `
namespace_list
    namespace netns1
    namespace netns2

frontend f_example
	bind 192.168.1.1:9990 accept-proxy
	default_backend b_example

backend b_example
	mode tcp
	source 0.0.0.0 usesrc clientip
	server snodes * namespace *
`)
	d := startDaemon(t, []string{"ip", "netns", "exec", h}, "-f", cfg, "--netns-dir", dir)
	d.waitLog("msg=listening")
	hdr := v2Header(netip.MustParseAddrPort("10.9.9.9:5555"), netip.MustParseAddrPort("192.168.1.100:80"), "netns1")
	var got string
	eventually(t, "through the reference config", func() error {
		got = sendHeader(t, h, "192.168.1.1:9990", hdr)
		if !strings.HasPrefix(got, "peer=10.9.9.9:") {
			return fmt.Errorf("server answered %q", got)
		}
		return nil
	})
	d.waitLog("client=10.9.9.9:5555 client_netns=netns1 client_netns_source=tlv server_netns=netns1")

	// netns2 is listed but does not exist: refused, not sent elsewhere.
	if got := sendHeader(t, h, "192.168.1.1:9990", v2Header(netip.MustParseAddrPort("10.9.9.9:5556"),
		netip.MustParseAddrPort("192.168.1.100:80"), "netns2")); got != "" {
		t.Fatalf("TLV naming a missing namespace was served: %q", got)
	}
	d.waitLog("reason=netns_unavailable")
}

// TestNetnsTLVRefusedWhereHAProxyFallsBack documents the difference: a TLV
// naming an existing namespace that is not on namespace_list. HAProxy
// silently keeps its default namespace and connects there; nsproxy refuses
// the connection and logs the raw value.
func TestNetnsTLVRefusedWhereHAProxyFallsBack(t *testing.T) {
	nsproxyBin(t)
	x, z := newNS(t, "X"), newNS(t, "Z")
	serveTag(t, "", "127.0.0.1:17631", "default-namespace-server")
	dir := t.TempDir()
	startHAProxy(t, writeFile(t, dir, "haproxy.cfg", fmt.Sprintf(`
namespace_list
    namespace %s
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend f
    bind 127.0.0.1:17630 accept-proxy
    default_backend b
backend b
    server any * namespace *
`, x)))
	d := startDaemon(t, nil, "-f", writeFile(t, dir, "nsproxy.cfg", fmt.Sprintf(`
namespace_list
    namespace %s
frontend f
    bind 127.0.0.1:17632 accept-proxy
    default_backend b
backend b
    server any * namespace *
`, x)))
	d.waitLog("msg=listening")
	hdr := v2Header(netip.MustParseAddrPort("127.0.0.1:4000"), netip.MustParseAddrPort("127.0.0.1:17631"), z)
	var hap string
	eventually(t, "haproxy", func() error {
		var err error
		if hap, err = trySendHeader(t, "", "127.0.0.1:17630", hdr); err == nil && hap == "" {
			return fmt.Errorf("no answer")
		}
		return err
	})
	if hap != "default-namespace-server" {
		t.Fatalf("haproxy answered %q", hap)
	}
	t.Logf("HAProxy 2.6 with TLV %q (not listed): served in its default namespace", z)
	if got := sendHeader(t, "", "127.0.0.1:17632", hdr); got != "" {
		t.Fatalf("nsproxy served a TLV off the allowlist: %q", got)
	}
	d.waitLog(fmt.Sprintf("netns_tlv=\"\\\"%s\\\"\" reason=netns_not_allowed", z))
}
