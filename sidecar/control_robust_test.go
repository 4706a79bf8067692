package sidecar

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

// TestControlRefusesOtherNamespaceTypes: a namespace file of another type
// (mnt, uts) is refused with 400 saying what it is and what to pass, for
// namespaces and for attachments, and nothing is saved.
func TestControlRefusesOtherNamespaceTypes(t *testing.T) {
	td := startTestDaemon(t, "", "")
	for _, tc := range []struct {
		name, path string
		body       any
		has        string
	}{
		{"ns mnt", "/v1/namespaces", api.Namespace{Name: "m", Path: "/proc/self/ns/mnt"}, "is a mnt namespace"},
		{"ns uts", "/v1/namespaces", api.Namespace{Name: "u", Path: "/proc/self/ns/uts"}, "is a uts namespace"},
		{"attachment mnt", "/v1/attachments", api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "c1", IfName: "eth0"},
			Netns: "/proc/self/ns/mnt"}, "is a mnt namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, e := td.call("POST", tc.path, tc.body, nil)
			msg := e.Error + " " + strings.Join(e.Details, "; ")
			if code != 400 || !strings.Contains(msg, tc.has) || !strings.Contains(msg, "/proc/PID/ns/net") {
				t.Fatalf("status %d %q, want 400 saying %q and what to pass instead", code, msg, tc.has)
			}
		})
	}
	var nss []api.Namespace
	td.call("GET", "/v1/namespaces", nil, &nss)
	var atts []api.Attachment
	td.call("GET", "/v1/attachments", nil, &atts)
	if len(nss) != 0 || len(atts) != 0 {
		t.Fatalf("refused objects were kept: namespaces %+v, attachments %+v", nss, atts)
	}
}

// TestControlRequestBodies: a body is exactly one JSON value; trailing
// data or a second value is refused with 400, and a body over the limit
// with 413 naming it.
func TestControlRequestBodies(t *testing.T) {
	td := startTestDaemon(t, "", "")
	ns := func(i int) string { return fmt.Sprintf(`{"name":"b%d","path":"/proc/self/ns/net"}`, i) }
	big := fmt.Sprintf(`{"containerID":"c","ifname":"eth0","netns":"/proc/self/ns/net","metadata":{"x":%q}}`,
		strings.Repeat("x", 2<<20))
	for i, tc := range []struct {
		name, path, body string
		code             int
		has              string
	}{
		{"trailing garbage", "/v1/namespaces", ns(1) + " garbage", 400, "data after the JSON value"},
		{"two objects", "/v1/namespaces", ns(2) + ns(3), 400, "data after the JSON value"},
		{"trailing brace", "/v1/namespaces", ns(4) + "}", 400, "data after the JSON value"},
		{"empty", "/v1/namespaces", "", 400, "empty"},
		{"unknown field", "/v1/namespaces", `{"name":"b5","colour":"red"}`, 400, "unknown field"},
		{"trailing white space", "/v1/namespaces", ns(6) + " \r\n\t", 201, ""},
		{"too large", "/v1/attachments", big, 413, strconv.Itoa(hooks.MaxAttachmentSize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, e := td.call("POST", tc.path, tc.body, nil)
			msg := e.Error + " " + strings.Join(e.Details, "; ")
			if code != tc.code || !strings.Contains(msg, tc.has) {
				t.Fatalf("case %d: status %d %q, want %d saying %q", i, code, msg, tc.code, tc.has)
			}
		})
	}
	var nss []api.Namespace
	td.call("GET", "/v1/namespaces", nil, &nss)
	if len(nss) != 1 || nss[0].Name != "b6" {
		t.Fatalf("namespaces %+v, want only b6", nss)
	}
}

// slowClient is one hostile or idle control client.
type slowClient struct {
	c    net.Conn
	kind string
}

// dialSlow opens a connection of kind: "silent" sends nothing, "header"
// half a request head, "body" a head and part of its body, "idle" one
// whole request and then nothing (a keep-alive).
func dialSlow(t *testing.T, sock, kind string) slowClient {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("dial %s client: %v", kind, err)
	}
	t.Cleanup(func() { c.Close() })
	switch kind {
	case "header":
		io.WriteString(c, "POST /v1/namespaces HTTP/1.1\r\nHost: nsproxy\r\n")
	case "body":
		io.WriteString(c, "POST /v1/namespaces HTTP/1.1\r\nHost: nsproxy\r\nContent-Length: 100\r\n\r\n{\"name\":")
	case "idle":
		io.WriteString(c, "GET /v1/healthz HTTP/1.1\r\nHost: nsproxy\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("idle client's request: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return slowClient{c: c, kind: kind}
}

// closedWithin reports which clients the daemon closes (EOF or reset)
// within d; a "body" client may first get a 400 answer.
func closedWithin(clients []slowClient, d time.Duration) map[string]int {
	var mu sync.Mutex
	closed := map[string]int{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for _, sc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc.c.SetReadDeadline(deadline)
			_, err := io.Copy(io.Discard, sc.c)
			var ne net.Error
			if err == nil || !(errors.As(err, &ne) && ne.Timeout()) {
				mu.Lock()
				closed[sc.kind]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return closed
}

// TestControlBoundsConnections: 1,000 slow or idle clients do not lock out
// the CLI: at the bound, the oldest connections without a request being
// answered are closed, and the CLI's request is answered at once.
func TestControlBoundsConnections(t *testing.T) {
	td := startTestDaemon(t, "", "")
	kinds := []string{"silent", "header", "body", "idle"}
	var clients []slowClient
	for i := 0; i < 1000; i++ {
		clients = append(clients, dialSlow(t, td.socket, kinds[i%len(kinds)]))
	}
	cli := api.NewClient(td.socket, api.WithTimeout(5*time.Second))
	start := time.Now()
	for i := 0; i < 5; i++ {
		if _, err := cli.Namespaces(context.Background()); err != nil {
			t.Fatalf("CLI request %d with 1,000 slow clients: %v", i, err)
		}
	}
	t.Logf("5 CLI requests with 1,000 slow clients connected: %v", time.Since(start))
	// Well before the read timeouts (10 s): only eviction closes them.
	closed := closedWithin(clients, time.Second)
	total := 0
	for _, n := range closed {
		total += n
	}
	t.Logf("closed to make room: %v (total %d)", closed, total)
	if open := len(clients) - total; open > DefaultControlMaxConns {
		t.Fatalf("%d slow clients still connected, want at most %d", open, DefaultControlMaxConns)
	}
	if !strings.Contains(td.log.String(), "control socket full") {
		t.Fatalf("no warning about the full control socket:\n%s", td.log)
	}
}

// TestControlTimeouts: a slow request head, a slow body and an idle
// keep-alive are closed after the read and idle timeouts.
func TestControlTimeouts(t *testing.T) {
	td := startTestDaemon(t, "", "")
	sock := filepath.Join(t.TempDir(), "ctl2.sock")
	ln, err := ListenControl(ControlOptions{Socket: sock, Group: -1,
		ReadTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { td.d.ServeControl(ctx, ln, -1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	var clients []slowClient
	for _, k := range []string{"silent", "header", "body", "idle"} {
		clients = append(clients, dialSlow(t, sock, k))
	}
	// Generous for a loaded machine; without timeouts they stay forever.
	closed := closedWithin(clients, 5*time.Second)
	for _, k := range []string{"silent", "header", "body", "idle"} {
		if closed[k] != 1 {
			t.Errorf("%s client not closed within 5 s of a 300 ms timeout", k)
		}
	}
}
