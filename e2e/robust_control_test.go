//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// controlHTTP is a plain HTTP client of a daemon's control socket.
func controlHTTP(socket string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
}

// TestRobustControlRefusesNonNetNamespace: `ns add --path` of a mount or
// UTS namespace file is refused with 400 saying what it is and what to
// pass; nothing is saved and the daemon does not log about it afterwards.
func TestRobustControlRefusesNonNetNamespace(t *testing.T) {
	nsproxyBin(t)
	d := emptyDaemon(t)
	mnt := fmt.Sprintf("/proc/%d/ns/mnt", os.Getpid())
	out, err := d.cli("ns", "add", "not-net", "--path", mnt)
	if err == nil || !strings.Contains(out, "is a mnt namespace") || !strings.Contains(out, "/proc/PID/ns/net") {
		t.Fatalf("ns add --path %s: %v\n%s", mnt, err, out)
	}
	body := fmt.Sprintf(`{"name":"not-net","path":"/proc/%d/ns/uts"}`, os.Getpid())
	resp, err := controlHTTP(d.socket).Post("http://nsproxy/v1/namespaces", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "is a uts namespace") {
		t.Fatalf("POST a uts namespace: %d %s, want 400", resp.StatusCode, b)
	}
	if out, err := d.cli("get", "namespaces", "-o", "json"); err != nil || strings.Contains(out, "not-net") {
		t.Fatalf("get namespaces after the refusals: %v\n%s", err, out)
	}
	time.Sleep(1500 * time.Millisecond) // more than one registry resync
	if strings.Contains(d.logs(), "cannot be opened") {
		t.Fatalf("the refused namespace is still being opened:\n%s", d.logs())
	}
}

// fdCount is the number of open fds of process pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestRobustControlSlowClients: 1,000 clients that connect and then send
// nothing, half a request head, part of a body, or idle after a request,
// do not lock out the CLI, and the daemon holds a bounded number of them.
func TestRobustControlSlowClients(t *testing.T) {
	nsproxyBin(t)
	d := emptyDaemon(t)
	pid := d.cmd.Process.Pid
	before := fdCount(t, pid)
	kinds := []string{
		"",
		"POST /v1/namespaces HTTP/1.1\r\nHost: nsproxy\r\n",
		"POST /v1/namespaces HTTP/1.1\r\nHost: nsproxy\r\nContent-Length: 100\r\n\r\n{\"name\":",
		"GET /v1/healthz HTTP/1.1\r\nHost: nsproxy\r\n\r\n", // then idle
	}
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < 1000; i++ {
		c, err := net.Dial("unix", d.socket)
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		conns = append(conns, c)
		io.WriteString(c, kinds[i%len(kinds)])
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		out, err := d.cli("get", "namespaces")
		if err != nil {
			t.Fatalf("CLI with 1,000 slow clients: %v\n%s", err, out)
		}
		t.Logf("nsproxy get namespaces with 1,000 slow clients: %v", time.Since(start))
	}
	during := fdCount(t, pid)
	t.Logf("daemon fds: %d before, %d with 1,000 slow clients", before, during)
	if during > before+150 {
		t.Fatalf("daemon holds %d fds with 1,000 slow clients (%d before): connections are not bounded", during, before)
	}
	d.waitLog("control socket full")
}

// TestRobustCNIHugeAttachment: the real nsproxy-cni, given a 2 MiB
// attachment (a huge nsproxy.io/ annotation), fails ADD with CNI error 7
// naming the limit, writes no record and registers nothing; the same ADD
// with a small annotation succeeds.
func TestRobustCNIHugeAttachment(t *testing.T) {
	bin := nsproxyBin(t)
	plugin := filepath.Join(filepath.Dir(bin), "nsproxy-cni")
	if _, err := os.Stat(plugin); err != nil {
		t.Skipf("%s missing: run make build", plugin)
	}
	d := emptyDaemon(t)
	ns := newNS(t, "H")
	records := filepath.Join(t.TempDir(), "attachments")
	add := func(pad int) (stdout, stderr string, err error) {
		conf := map[string]any{
			"cniVersion": "1.1.0", "name": "nspe-huge", "type": "nsproxy-cni",
			"socket": d.socket, "attachmentDir": records,
			"runtimeConfig": map[string]any{
				"io.kubernetes.cri.pod-annotations": map[string]string{"nsproxy.io/pad": strings.Repeat("x", pad)}},
			"prevResult": map[string]any{
				"cniVersion": "1.1.0",
				"interfaces": []any{map[string]any{"name": "eth0", "sandbox": "/var/run/netns/" + ns}},
				"ips":        []any{map[string]any{"address": "10.233.250.2/24", "interface": 0}},
			},
		}
		b, _ := json.Marshal(conf)
		cmd := exec.Command(plugin)
		cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=nspe-huge-" + ns, "CNI_NETNS=/var/run/netns/" + ns,
			"CNI_IFNAME=eth0", "CNI_PATH=" + filepath.Dir(plugin)}
		cmd.Stdin = bytes.NewReader(b)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	stdout, stderr, err := add(2 << 20)
	if err == nil {
		t.Fatalf("ADD of a 2 MiB attachment succeeded:\n%s\n%s", stdout, stderr)
	}
	var cniErr struct {
		Code    int    `json:"code"`
		Msg     string `json:"msg"`
		Details string `json:"details"`
	}
	if jerr := json.Unmarshal([]byte(stdout), &cniErr); jerr != nil {
		t.Fatalf("ADD printed no CNI error: %v\n%s\n%s", jerr, stdout, stderr)
	}
	if cniErr.Code != 7 || !strings.Contains(cniErr.Msg, "too large") || !strings.Contains(cniErr.Details, "1048576") {
		t.Fatalf("CNI error %+v, want code 7 saying too large and the limit", cniErr)
	}
	if ents, _ := os.ReadDir(records); len(ents) != 0 {
		t.Fatalf("a refused ADD left records: %v", ents)
	}
	if out, err := d.cli("get", "attachments", "-o", "json"); err != nil || strings.Contains(out, "nspe-huge") {
		t.Fatalf("the daemon has the refused attachment: %v\n%s", err, out)
	}

	// The same ADD with a small annotation works: the harness is sound.
	if stdout, stderr, err := add(100); err != nil {
		t.Fatalf("small ADD: %v\n%s\n%s", err, stdout, stderr)
	}
	if ents, _ := os.ReadDir(records); len(ents) != 1 {
		t.Fatalf("small ADD: records %v, want one", ents)
	}
	out, err := d.cli("get", "attachments", "-o", "json")
	if err != nil || !strings.Contains(out, "nspe-huge-"+ns) {
		t.Fatalf("small ADD not registered: %v\n%s", err, out)
	}
}
