//go:build e2e

package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestReferenceNamespaceExample runs the reference document's first
// snippets verbatim: namespace_list, a listener in netns2, a server in
// netns2. netns1 has the same addresses and a decoy server, so the answer
// proves which namespace served.
func TestReferenceNamespaceExample(t *testing.T) {
	nsproxyBin(t)
	n1, n2 := newNS(t, "n1"), newNS(t, "n2")
	for _, ns := range []string{n1, n2} {
		sh(t, "ip", "-n", ns, "addr", "add", "192.168.1.1/32", "dev", "lo")
		sh(t, "ip", "-n", ns, "addr", "add", "192.168.1.100/32", "dev", "lo")
	}
	serveTag(t, n1, "192.168.1.100:80", "netns1-server")
	serveTag(t, n2, "192.168.1.100:80", "netns2-server")
	dir := netnsDir(t, map[string]string{"netns1": n1, "netns2": n2})
	cfg := writeFile(t, t.TempDir(), "ref.cfg", `
namespace_list
    namespace netns1
    namespace netns2

frontend f_example
	bind 192.168.1.1:80 namespace netns2
	default_backend http

backend b_example
	server s1 192.168.1.100:80 namespace netns2

# Not in the reference: the backend its frontend names.
backend http
	server s1 192.168.1.100:80 namespace netns2
`)
	d := startDaemon(t, nil, "-f", cfg, "--netns-dir", dir)
	d.waitLog("msg=listening")
	expectTag(t, n2, "192.168.1.1:80", "netns2-server")
	if _, err := ask(t, n1, "192.168.1.1:80"); err == nil {
		t.Fatal("the listener in netns2 answered inside netns1")
	}
	d.waitLog("client_netns=netns2 client_netns_source=listener server_netns=netns2")
}

// TestListenerToServerAcrossVeths: clients on the host reach a listener
// inside A over a veth; the backends dial inside router namespaces R1/R2,
// each linked by a veth to a server namespace with the same address
// 10.99.1.2: only the server line's namespace decides who answers.
func TestListenerToServerAcrossVeths(t *testing.T) {
	nsproxyBin(t)
	a, r1, r2, b, c := newNS(t, "A"), newNS(t, "R1"), newNS(t, "R2"), newNS(t, "B"), newNS(t, "C")
	testns.Veth(t, "", "10.98.0.1/24", a, "10.98.0.2/24")
	testns.Veth(t, r1, "10.99.1.1/24", b, "10.99.1.2/24")
	testns.Veth(t, r2, "10.99.1.1/24", c, "10.99.1.2/24")
	serveTag(t, b, "10.99.1.2:80", "B")
	serveTag(t, c, "10.99.1.2:80", "C")
	cfg := writeFile(t, t.TempDir(), "veth.cfg", fmt.Sprintf(`
defaults
    mode tcp
    timeout connect 2s

frontend to_b
    bind 10.98.0.2:8000 namespace %[1]s
    default_backend via_r1

frontend to_c
    bind 10.98.0.2:8001 namespace %[1]s
    default_backend via_r2

frontend direct_c
    bind 10.98.0.2:8002 namespace %[1]s
    default_backend in_c

backend via_r1
    server s 10.99.1.2:80 namespace %[2]s

backend via_r2
    server s 10.99.1.2:80 namespace %[3]s

backend in_c
    server s 10.99.1.2:80 namespace %[4]s
`, a, r1, r2, c))
	d := startDaemon(t, nil, "-f", cfg)
	d.waitLog("msg=listening")
	expectTag(t, "", "10.98.0.2:8000", "B")
	expectTag(t, "", "10.98.0.2:8001", "C")
	expectTag(t, "", "10.98.0.2:8002", "C")
}

// TestHealthCheckInNamespace: a check runs inside the server's namespace;
// a decoy on the same address in the daemon's namespace must not count.
func TestHealthCheckInNamespace(t *testing.T) {
	nsproxyBin(t)
	b := newNS(t, "B")
	serveTag(t, "", "127.0.0.1:17100", "decoy")
	cfg := writeFile(t, t.TempDir(), "check.cfg", fmt.Sprintf(`
backend be
    timeout check 300ms
    server s1 127.0.0.1:17100 namespace %s check inter 200ms rise 2 fall 2

frontend fe
    bind 127.0.0.1:17101
    default_backend be
`, b))
	d := startDaemon(t, nil, "-f", cfg)
	d.waitLog("msg=\"server down\"")
	stop := serveTag(t, b, "127.0.0.1:17100", "real")
	d.waitLog("msg=\"server up\"")
	expectTag(t, "", "127.0.0.1:17101", "real")
	stop()
	if strings.Count(d.logs(), "server down") < 1 {
		t.Fatal("no down transition")
	}
	eventually(t, "second down transition", func() error {
		if strings.Count(d.logs(), "msg=\"server down\"") < 2 {
			return fmt.Errorf("server not marked down after its listener closed")
		}
		return nil
	})
}

// TestReloadKeepsEstablished: SIGHUP with a changed config keeps an
// established connection; a broken config is refused and the old one runs.
func TestReloadKeepsEstablished(t *testing.T) {
	nsproxyBin(t)
	b := newNS(t, "B")
	serveTag(t, b, "127.0.0.1:80", "v1")
	serveTag(t, b, "127.0.0.1:81", "v2")
	dir := t.TempDir()
	base := fmt.Sprintf(`
frontend fe
    bind 127.0.0.1:17200
    default_backend be
backend be
    server s 127.0.0.1:%%d namespace %s
`, b)
	cfg := writeFile(t, dir, "r.cfg", fmt.Sprintf(base, 80))
	d := startDaemon(t, nil, "-f", cfg)
	d.waitLog("msg=listening")
	var c *conn
	eventually(t, "first connection", func() error {
		var err error
		var tag string
		c, tag, err = open(t, "", "127.0.0.1:17200")
		if err == nil && tag != "v1" {
			return fmt.Errorf("tag %q", tag)
		}
		return err
	})
	defer c.c.Close()

	writeFile(t, dir, "r.cfg", fmt.Sprintf(base, 81)+`
frontend extra
    bind 127.0.0.1:17201
    default_backend be
`)
	d.signal(syscall.SIGHUP)
	d.waitLog("configuration reloaded")
	if err := c.echo("survives-reload"); err != nil {
		t.Fatalf("established connection broken by reload: %v", err)
	}
	expectTag(t, "", "127.0.0.1:17200", "v2")
	expectTag(t, "", "127.0.0.1:17201", "v2")

	writeFile(t, dir, "r.cfg", "frontend broken\n    bind nowhere\n")
	d.signal(syscall.SIGHUP)
	d.waitLog("reload refused")
	if !regexp.MustCompile(`r\.cfg:\d+`).MatchString(d.logs()) {
		t.Fatalf("refused reload does not name file:line:\n%s", d.logs())
	}
	if err := c.echo("survives-bad-reload"); err != nil {
		t.Fatal(err)
	}
	expectTag(t, "", "127.0.0.1:17201", "v2")
}

// TestNamespaceRecreateUnderTraffic: deleting the listener's namespace
// closes its connections; recreating it brings the listener back without
// a restart, and a namespace missing at start is waited for.
func TestNamespaceRecreateUnderTraffic(t *testing.T) {
	nsproxyBin(t)
	b := newNS(t, "B")
	a := name("A") // created after the daemon starts
	t.Cleanup(func() { exec.Command("ip", "netns", "del", a).Run() })
	serveTag(t, b, "127.0.0.1:80", "srv")
	cfg := writeFile(t, t.TempDir(), "n.cfg", fmt.Sprintf(`
frontend fe
    bind 127.0.0.1:17300 namespace %s
    default_backend be
backend be
    server s 127.0.0.1:80 namespace %s
`, a, b))
	d := startDaemon(t, nil, "-f", cfg)
	d.waitLog("namespace does not exist yet")
	sh(t, "ip", "netns", "add", a)
	sh(t, "ip", "-n", a, "link", "set", "lo", "up")
	expectTag(t, a, "127.0.0.1:17300", "srv")

	// Traffic: a stream of echoes while the namespace is deleted.
	c, _, err := open(t, a, "127.0.0.1:17300")
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.Close()
	if err := c.echo("before"); err != nil {
		t.Fatal(err)
	}
	sh(t, "ip", "netns", "del", a)
	eventually(t, "connection closed with its namespace", func() error {
		if c.echo("during") == nil {
			return fmt.Errorf("connection still open")
		}
		return nil
	})
	d.waitLog("namespace deleted")
	sh(t, "ip", "netns", "add", a)
	sh(t, "ip", "-n", a, "link", "set", "lo", "up")
	expectTag(t, a, "127.0.0.1:17300", "srv")
}

// TestSIGTERMDrains: SIGTERM stops accepting and lets an established
// connection finish within the drain timeout, then closes it.
func TestSIGTERMDrains(t *testing.T) {
	nsproxyBin(t)
	b := newNS(t, "B")
	serveTag(t, b, "127.0.0.1:80", "srv")
	cfg := writeFile(t, t.TempDir(), "d.cfg", fmt.Sprintf(`
frontend fe
    bind 127.0.0.1:17400
    default_backend be
backend be
    server s 127.0.0.1:80 namespace %s
`, b))
	d := startDaemon(t, nil, "-f", cfg, "--drain-timeout", "1500ms")
	d.waitLog("msg=listening")
	var c *conn
	eventually(t, "connect", func() error {
		var err error
		c, _, err = open(t, "", "127.0.0.1:17400")
		return err
	})
	defer c.c.Close()
	start := time.Now()
	d.signal(syscall.SIGTERM)
	d.waitLog("shutting down")
	if err := c.echo("draining"); err != nil {
		t.Fatalf("established connection cut at SIGTERM: %v", err)
	}
	if _, err := ask(t, "", "127.0.0.1:17400"); err == nil {
		t.Fatal("new connection accepted while draining")
	}
	if err := d.wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("daemon exited after %v, before the drain timeout", el)
	}
	if !strings.Contains(d.logs(), "forced_closed=1") {
		t.Fatalf("expected one forced close:\n%s", d.logs())
	}
}

// TestHotPathSplices attaches strace to the daemon and moves 16 MiB
// through it, plain and with accept-proxy + send-proxy-v2: the payload must
// go through splice(2), not read/write, on both paths (all but the first
// reads of a connection).
func TestHotPathSplices(t *testing.T) {
	nsproxyBin(t)
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace not installed (make deps installs it)")
	}
	for _, tc := range []struct {
		name, bind, server string
		proxy              bool
	}{
		{"plain", "", "", false},
		{"accept-proxy+send-proxy-v2", "accept-proxy", "send-proxy-v2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newNS(t, "B")
			// A sink that strips a PROXY v2 header when asked, counts the
			// payload bytes and answers with the count.
			serveFunc(t, b, "127.0.0.1:80", func(c io.ReadWriter) {
				if tc.proxy {
					fixed := make([]byte, 16)
					if _, err := io.ReadFull(c, fixed); err != nil {
						return
					}
					io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint16(fixed[14:])))
				}
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "%d\n", n)
			})
			trace := t.TempDir() + "/strace.out"
			cfg := writeFile(t, t.TempDir(), "s.cfg", fmt.Sprintf(`
frontend fe
    bind 127.0.0.1:17500 %s
    default_backend be
backend be
    server s 127.0.0.1:80 namespace %s %s
`, tc.bind, b, tc.server))
			d := startDaemon(t, nil, "-f", cfg)
			d.waitLog("msg=listening")
			// Attach to every thread of the running daemon (-p with -f).
			st := exec.Command("strace", "-f", "-qq", "-e", "trace=splice", "-o", trace, "-p", strconv.Itoa(d.cmd.Process.Pid))
			if err := st.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Process.Kill(); st.Wait() })
			// transfer sends size payload bytes and checks the sink's count.
			transfer := func(size int) {
				t.Helper()
				c, err := dialIn(t, "", "127.0.0.1:17500")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if tc.proxy {
					c.Write(v2Header(netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("127.0.0.1:17500"), ""))
				}
				buf := make([]byte, 1<<16)
				for sent := 0; sent < size; sent += len(buf) {
					if _, err := c.Write(buf); err != nil {
						t.Fatal(err)
					}
				}
				c.(interface{ CloseWrite() error }).CloseWrite()
				reply, _ := io.ReadAll(c)
				if got := strings.TrimSpace(string(reply)); got != strconv.Itoa(size) {
					t.Fatalf("sink received %q payload bytes, want %d", got, size)
				}
			}
			// With several threads strace splits calls into "splice(... <unfinished ...>"
			// and "<... splice resumed>...) = N": count both forms.
			splicedRE := regexp.MustCompile(`(?m)splice(?:\(| resumed>).*\)\s+= (\d+)$`)
			splicedSoFar := func() int {
				b, _ := os.ReadFile(trace)
				n := 0
				for _, m := range splicedRE.FindAllSubmatch(b, -1) {
					v, _ := strconv.Atoi(string(m[1]))
					n += v
				}
				return n
			}
			// Warm up until strace demonstrably records, then measure only
			// what the measured transfer adds.
			eventually(t, "strace attached", func() error {
				transfer(1 << 20)
				if splicedSoFar() == 0 {
					return fmt.Errorf("no splice recorded yet")
				}
				return nil
			})
			before := splicedSoFar()
			const size = 16 << 20
			transfer(size)
			st.Process.Signal(syscall.SIGINT) // detach and flush
			st.Wait()
			spliced := splicedSoFar() - before
			// Each byte is spliced twice: socket to pipe, pipe to socket;
			// but the connection's first reads, through the event loop's
			// 16 KiB buffer (it splices once a read fills the buffer, and
			// turns back to it after a splice of less than 4 KiB: splice-auto).
			if want := 2 * (size - 64<<10); spliced < want {
				out, _ := os.ReadFile(trace)
				t.Fatalf("splice moved %d bytes, want >= %d; strace:\n%.2000s", spliced, want, out)
			}
			t.Logf("splice(2) moved %d bytes for a %d-byte payload", spliced, size)
		})
	}
}

// serveSink counts the bytes of each connection and answers with the count.
func serveSink(t *testing.T, ns, addr string) func() {
	t.Helper()
	return serveFunc(t, ns, addr, func(c io.ReadWriter) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "%d\n", n)
	})
}
