//go:build e2e

package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyV2 is a 28-byte PROXY v2 header for a TCP4 client src connected to
// dst, built by hand: the e2e suite imports nothing of the daemon.
func proxyV2(src, dst string) []byte {
	s, d := net.TCPAddrFromAddrPort(mustAddrPort(src)), net.TCPAddrFromAddrPort(mustAddrPort(dst))
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
	b = append(b, s.IP.To4()...)
	b = append(b, d.IP.To4()...)
	b = binary.BigEndian.AppendUint16(b, uint16(s.Port))
	return binary.BigEndian.AppendUint16(b, uint16(d.Port))
}

func mustAddrPort(s string) netip.AddrPort {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a.AddrPort()
}

// TestLoopHeaderRefused (issue 9): with "bind … accept-proxy" and
// "server s * namespace * send-proxy-v2", one header whose destination is
// the listener itself used to make the proxy connect to itself until
// global maxconn was full, and every frontend stayed dead. Now it is
// refused and counted as "loop", and the frontend still serves.
func TestLoopHeaderRefused(t *testing.T) {
	nsproxyBin(t)
	// The legitimate server reads our v2 header and answers what it said.
	serveFunc(t, "", "127.0.0.1:19101", func(c io.ReadWriter) {
		fixed := make([]byte, 16)
		if _, err := io.ReadFull(c, fixed); err != nil {
			return
		}
		io.ReadFull(c, make([]byte, binary.BigEndian.Uint16(fixed[14:])))
		io.WriteString(c, "served\n")
	})
	cfg := writeFile(t, t.TempDir(), "loop.cfg", `
global
    maxconn 50
frontend f
    bind 127.0.0.1:19100 accept-proxy
    default_backend b
backend b
    server s * namespace * send-proxy-v2
`)
	d := startDaemon(t, nil, "-f", cfg, "--metrics-addr", "127.0.0.1:19102")
	d.waitLog("msg=listening")
	send := func(hdr []byte) (string, error) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:19100", 2*time.Second)
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
	const series = `nsproxy_frontend_refusals_total{frontend="f",reason="loop",tenant="default"}`
	for i := 0; i < 3; i++ {
		start := time.Now()
		got, err := send(proxyV2("192.0.2.1:40000", "127.0.0.1:19100"))
		if err == nil {
			t.Fatalf("the looping header was answered: %q", got)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("the looping connection stayed open %v (%v)", el, err)
		}
	}
	eventually(t, "loop refusals counted", func() error {
		if n := metric(t, "127.0.0.1:19102", series); n < 3 {
			return fmt.Errorf("%s = %v, want 3 or more", series, n)
		}
		return nil
	})
	d.waitLog("termination=loop")
	// The frontend still serves: the loop did not take its slots.
	got, err := send(proxyV2("192.0.2.1:40001", "127.0.0.1:19101"))
	if err != nil || got != "served" {
		t.Fatalf("valid client after the loop headers: %q %v", got, err)
	}
}

// TestFDLimitQueuesClients (issue 9): under "ulimit -n 256" maxconn is
// lowered to what the limit allows, so 1,000 clients wait in the backlog
// and are all served, instead of being accepted and dropped
// (connect_failed) while "accept failed" floods the log.
func TestFDLimitQueuesClients(t *testing.T) {
	nsproxyBin(t)
	const clients = 1000
	serveFunc(t, "", "127.0.0.1:19111", func(c io.ReadWriter) {
		time.Sleep(50 * time.Millisecond) // hold the connection a moment
		io.WriteString(c, "ok\n")
		io.Copy(io.Discard, c)
	})
	cfg := writeFile(t, t.TempDir(), "fd.cfg", `
global
    maxconn 5000
frontend f
    bind 127.0.0.1:19110
    default_backend b
backend b
    server s 127.0.0.1:19111
`)
	d := startDaemon(t, []string{"prlimit", "--nofile=256:256"}, "-f", cfg)
	d.waitLog("msg=listening")
	var ok atomic.Int64
	var mu sync.Mutex
	fails := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				c, err := net.DialTimeout("tcp", "127.0.0.1:19110", 30*time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return err
				}
				if line != "ok\n" {
					return fmt.Errorf("got %q", line)
				}
				return nil
			}()
			if err == nil {
				ok.Add(1)
				return
			}
			mu.Lock()
			fails[err.Error()]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	logs := d.logs()
	if n := ok.Load(); n != clients {
		t.Errorf("%d of %d clients served; failures: %v", n, clients, fails)
	}
	if n := strings.Count(logs, "termination=connect_failed"); n > 0 {
		t.Errorf("%d connections dropped as connect_failed", n)
	}
	if n := strings.Count(logs, "accept failed"); n > 3 {
		t.Errorf(`"accept failed" logged %d times`, n)
	}
	if !strings.Contains(logs, "maxconn lowered to fit the open-file limit") {
		t.Errorf("the lowered maxconn is not logged")
	}
}
