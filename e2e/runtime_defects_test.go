//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// familyDaemon runs the daemon with one frontend per bind line, each
// listening inside namespace L and forwarding to a tagged server in S.
func familyDaemon(t *testing.T, binds ...string) string {
	t.Helper()
	nsproxyBin(t)
	l, s := newNS(t, "famL"), newNS(t, "famS")
	serveTag(t, s, "127.0.0.1:80", "server")
	dir := netnsDir(t, map[string]string{"lns": l, "sns": s})
	cfg := "namespace_list\n\tnamespace lns\n\tnamespace sns\nbackend app\n\tserver s 127.0.0.1:80 namespace sns\n"
	for i, b := range binds {
		cfg += fmt.Sprintf("frontend f%d\n\tbind %s namespace lns\n\tdefault_backend app\n", i, b)
	}
	d := startDaemon(t, nil, "-f", writeFile(t, t.TempDir(), "fam.cfg", cfg), "--netns-dir", dir)
	eventually(t, "every bind listening", func() error {
		out, err := d.cli("get", "frontends", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if n := strings.Count(out, `"listening": true`); n != len(binds) {
			return fmt.Errorf("%d of %d listening: %s", n, len(binds), out)
		}
		return nil
	})
	return l
}

// answersIn reports whether addr answers with the server's tag inside ns.
func answersIn(t *testing.T, ns, addr string) bool {
	c, err := dialIn(t, ns, addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, 7)
	_, err = io.ReadFull(c, b)
	return err == nil && string(b) == "server\n"
}

// TestBindFamilyOnly: as in HAProxy, bind 0.0.0.0:P listens on IPv4 only
// ([::1] does not answer), bind [::]:P v6only on IPv6 only, and bind [::]:P
// without keywords follows net.ipv6.bindv6only (0: both families).
func TestBindFamilyOnly(t *testing.T) {
	l := familyDaemon(t, "0.0.0.0:19520", "[::]:19521 v6only", "[::]:19523")
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:19520", true}, {"[::1]:19520", false},
		{"[::1]:19521", true}, {"127.0.0.1:19521", false},
		// :: without keywords follows net.ipv6.bindv6only (0 here), as HAProxy.
		{"[::1]:19523", true}, {"127.0.0.1:19523", true},
	} {
		if got := answersIn(t, l, tt.addr); got != tt.want {
			t.Errorf("%s answers: %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestBindV4V6: bind [::]:P v4v6 answers on both families, and GET shows
// the keyword.
func TestBindV4V6(t *testing.T) {
	l := familyDaemon(t, "[::]:19522 v4v6")
	for _, addr := range []string{"127.0.0.1:19522", "[::1]:19522"} {
		if !answersIn(t, l, addr) {
			t.Errorf("%s does not answer", addr)
		}
	}
}

// TestCNIHostPortHeldByAnotherProgram: a program already listens on the
// host port a container publishes. ADD still succeeds (a failed ADD leaks
// the other plugins' state), the attachment reports the conflict, CHECK
// fails, and when the program exits nsproxy does NOT take its port.
func TestCNIHostPortHeldByAnotherProgram(t *testing.T) {
	nsproxyBin(t)
	const port = 19530
	holder, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		t.Fatalf("the other program's port: %v", err)
	}
	defer holder.Close()
	d := emptyDaemon(t)
	n := newCNINet(t, d.socket)
	ns := newNS(t, "held")
	ip := n.add(ns, port)
	serveTag(t, ns, ip+":80", "in-container")

	type attachment struct {
		Exposed  []string `json:"exposed"`
		Problems []string `json:"problems"`
	}
	out, err := d.cli("get", "attachments", "-o", "json")
	var list []attachment
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 {
		t.Fatalf("get attachments: %v\n%s", err, out)
	}
	if len(list[0].Exposed) != 0 || !strings.Contains(strings.Join(list[0].Problems, ";"), "in use by another program") {
		t.Errorf("attachment exposed %v, problems %q: want the conflict reported and nothing exposed", list[0].Exposed, list[0].Problems)
	}
	caps := fmt.Sprintf(`{"portMappings":[{"hostPort":%d,"containerPort":80,"protocol":"tcp"}]}`, port)
	if out, errOut, err := n.run("check", ns, caps); err == nil || !strings.Contains(out+errOut, "in use by another program") {
		t.Errorf("cnitool check: err %v, want a failure naming the conflict\n%s%s", err, out, errOut)
	}

	holder.Close()              // the other program exits
	time.Sleep(3 * time.Second) // longer than the old retry's longest backoff (2 s)
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)} {
		if err := refused(addr); err != nil {
			t.Errorf("after the holder exited: %v (nsproxy took the port over)", err)
		}
	}
	out, _ = d.cli("get", "frontends", "-o", "wide")
	if !strings.Contains(out, "0/1") {
		t.Errorf("get frontends: want the exposure not listening\n%s", out)
	}
	if out, errOut, err := n.run("check", ns, caps); err == nil || !strings.Contains(out+errOut, "in use by another program") {
		t.Errorf("cnitool check after the holder exited: err %v, want the conflict\n%s%s", err, out, errOut)
	}
	// A repeated ADD of nsproxy-cni alone (an update, as a runtime's
	// re-ADD) still reports the conflict and takes nothing.
	prev := fmt.Sprintf(`{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/%s"}],`+
		`"ips":[{"address":"%s/24","interface":0}]}`, ns, ip)
	var prevResult map[string]any
	json.Unmarshal([]byte(prev), &prevResult)
	out, err = n.invokeIn("ADD", ns, map[string]any{"prevResult": prevResult,
		"runtimeConfig": map[string]any{"portMappings": []any{map[string]any{"hostPort": port, "containerPort": 80, "protocol": "tcp"}}}})
	if err != nil {
		t.Fatalf("second ADD: %v\n%s", err, out)
	}
	out, _ = d.cli("get", "attachments", "-o", "json")
	if !strings.Contains(out, "in use by another program") {
		t.Errorf("attachment after a second ADD does not report the conflict:\n%s", out)
	}
	if err := refused(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Errorf("after a second ADD: %v", err)
	}
}

// invokeIn runs nsproxy-cni itself for ns's container, as a runtime would
// (cnitool cannot repeat an ADD: the bridge plugin refuses a second one).
func (n *cniNet) invokeIn(verb, ns string, extra map[string]any) (string, error) {
	cfg := map[string]any{"cniVersion": "1.1.0", "name": n.name}
	for k, v := range n.pluginCfg {
		cfg[k] = v
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(n.plugin)
	cmd.Env = []string{"CNI_COMMAND=" + verb, "CNI_PATH=" + n.cniPath, "CNI_CONTAINERID=" + containerID(ns),
		"CNI_NETNS=/var/run/netns/" + ns, "CNI_IFNAME=eth0"}
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCNIHostPortFamilies: a mapping without hostIP is published on both
// families (as podman -p), one with hostIP 0.0.0.0 on IPv4 only.
func TestCNIHostPortFamilies(t *testing.T) {
	nsproxyBin(t)
	d := emptyDaemon(t)
	n := newCNINet(t, d.socket)
	ns := newNS(t, "fam")
	t.Cleanup(func() { n.run("del", ns, "") })
	caps := `{"portMappings":[{"hostPort":19532,"containerPort":80,"protocol":"tcp"},` +
		`{"hostPort":19533,"containerPort":80,"protocol":"tcp","hostIP":"0.0.0.0"}]}`
	out, errOut, err := n.run("add", ns, caps)
	if err != nil {
		t.Fatalf("cnitool add: %v\n%s%s", err, out, errOut)
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) == 0 {
		t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	ip, _, _ := strings.Cut(res.IPs[0].Address, "/")
	serveTag(t, ns, ip+":80", "in-container")
	expectTag(t, "", "127.0.0.1:19532", "in-container")
	expectTag(t, "", "[::1]:19532", "in-container")
	expectTag(t, "", "127.0.0.1:19533", "in-container")
	if err := refused("[::1]:19533"); err != nil {
		t.Errorf("hostIP 0.0.0.0: %v", err)
	}
	out, _ = d.cli("get", "frontends")
	if !strings.Contains(out, "[::]:19532/v4v6") || !strings.Contains(out, "0.0.0.0:19533") {
		t.Errorf("get frontends does not show the families:\n%s", out)
	}
}
