package sidecar

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestMaxListenersBoundsFrontends: limits.maxListeners counts a tenant's
// own frontends' binds: a Tenant whose frontends bind more is refused at
// the first bind over the limit, and nothing listens.
func TestMaxListenersBoundsFrontends(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	doc := `apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: ta
spec:
  limits:
    maxListeners: 1
  frontends:
    - name: f
      binds:
        - addr: 127.0.0.1:20310
        - addr: 127.0.0.1:20311
      backend: b
  backends:
    - name: b
      servers:
        - name: s
          addr: 127.0.0.1:20312
`
	root := access{all: true, who: "root"}
	_, err := td.d.applyManifests(root, manifestReq("l.yaml", doc), opApply)
	if err == nil || !strings.Contains(err.Error(), "l.yaml:12:") || !strings.Contains(err.Error(), "limits.maxListeners (1)") {
		t.Fatalf("two binds under maxListeners 1: %v, want refused at l.yaml:12 (the second bind)", err)
	}
	for _, p := range []int{20310, 20311} {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			c.Close()
			t.Errorf("127.0.0.1:%d listens after the refused apply", p)
		}
	}
	one := strings.Replace(doc, "        - addr: 127.0.0.1:20311\n", "", 1)
	if _, err := td.d.applyManifests(root, manifestReq("l.yaml", one), opApply); err != nil {
		t.Fatalf("one bind under maxListeners 1: %v", err)
	}
}

// TestMaxConnectionsBoundsTenant: limits.maxConnections reaches the
// engine: with 1, a second client of the tenant waits in the backlog
// until the first leaves.
func TestMaxConnectionsBoundsTenant(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	ln, err := net.Listen("tcp4", "127.0.0.1:20315")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // says hello, then holds the connection until the client closes
				defer c.Close()
				c.Write([]byte("hello\n"))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	doc := `apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: ta
spec:
  limits:
    maxConnections: 1
  frontends:
    - name: f
      binds:
        - addr: 127.0.0.1:20313
        - addr: 127.0.0.1:20314
      backend: b
  backends:
    - name: b
      servers:
        - name: s
          addr: 127.0.0.1:20315
`
	if _, err := td.d.applyManifests(access{all: true, who: "root"}, manifestReq("c.yaml", doc), opApply); err != nil {
		t.Fatal(err)
	}
	hello := func(addr string, wait time.Duration) (net.Conn, error) {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return c, err
		}
		return c, nil
	}
	var c1 net.Conn
	waitFor(t, "the tenant's frontend", func() error {
		var err error
		if c1, err = hello("127.0.0.1:20313", time.Second); err != nil && c1 != nil {
			c1.Close()
		}
		return err
	})
	defer c1.Close()
	c2, err := hello("127.0.0.1:20314", 300*time.Millisecond)
	if c2 == nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err == nil {
		t.Fatal("a second connection of tenant ta was served while maxConnections 1 was taken")
	}
	c1.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(c2).ReadString('\n'); err != nil {
		t.Fatalf("the waiting connection after the first closed: %v", err)
	}
}
