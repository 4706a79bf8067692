package proxy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// Review of operator-facing behaviour (rev-ops): each test below fails on
// baca3f3.

// TestReviewOpsServerUpWhileUnusable: nsproxy_server_up, `get servers` UP
// and `nsproxy stats` "(N up)" all read ServerStats.Up. A server that
// cannot take a single connection reports Up=true: an unchecked server
// whose namespace is missing (never created, or deleted: the README says
// "its servers leave rotation") and a disabled server. An SRE who alerts on
// sum(nsproxy_server_up) == 0, or reads "9 (6 up)", is told the backend
// has capacity it has not; the check-enabled server in the same missing
// namespace reports 0, so the two are inconsistent.
func TestReviewOpsServerUpWhileUnusable(t *testing.T) {
	missing := pidName("ro", "miss") // registered by name, never created
	testns.Delete(missing)
	v := newEnv(t, missing)
	dis := srv("disabled", "127.0.0.1:1", "")
	dis.Disabled = true
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{
		srv("nsmissing", "127.0.0.1:1", missing), dis}})); err != nil {
		t.Fatal(err)
	}
	// The engine agrees neither can be picked: a client gets no_server.
	eventually(t, "a no_server line", func() error {
		c, err := v.dial("", bind.Addr.String())
		if err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			c.Read(make([]byte, 1))
			c.Close()
		}
		if !strings.Contains(v.log.String(), "termination=no_server") {
			return fmt.Errorf("no no_server line yet")
		}
		return nil
	})
	for _, b := range v.e.Snapshot().Backends {
		for _, s := range b.Servers {
			if s.Up {
				t.Errorf("server %s/%s (namespace %q) reports Up=true (nsproxy_server_up 1) although it can take no connection",
					b.Name, s.Name, s.Namespace)
			}
		}
	}
}

// TestReviewOpsConnectFailedLogNamesNoServer: when every attempt of a
// connection fails, its one log line (the only line at the default log
// level: "connect failed" per attempt is Debug) has server="" and
// server_netns="", and err is the last attempt's error alone. On a
// container host many servers share an address (10.88.0.5:80 in each
// container's namespace); the operator cannot tell which server or which
// namespace refused, nor that two other servers were tried and failed too.
func TestReviewOpsConnectFailedLogNamesNoServer(t *testing.T) {
	b := testns.Add(t, pidName("ro", "cf"))
	v := newEnv(t, b)
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	// Nothing listens on 127.0.0.1:1 inside b: connection refused.
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s1", "127.0.0.1:1", b)}})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a connect_failed line", func() error {
		c, err := v.dial("", bind.Addr.String())
		if err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			c.Read(make([]byte, 1))
			c.Close()
		}
		if !strings.Contains(v.log.String(), "termination=connect_failed") {
			return fmt.Errorf("no connect_failed line yet")
		}
		return nil
	})
	var line string
	for _, l := range strings.Split(v.log.String(), "\n") {
		if strings.Contains(l, "msg=connection") && strings.Contains(l, "termination=connect_failed") {
			line = l
			break
		}
	}
	if !strings.Contains(line, "server=s1") || !strings.Contains(line, "server_netns="+b) {
		t.Fatalf("the connection's log line does not say which server (s1) in which namespace (%s) refused:\n%s", b, line)
	}
}

// TestReviewOpsCheckRemovedFromDownServer: a server edited in place keeps
// its health verdict (backend.update: "a DOWN server stays down"), but the
// verdict only ever changes in a health checker. Remove `check` from a
// server the checks had marked down (the usual fix when the check itself is
// wrong, say a firewalled check port) and reload: the server keeps Up=false,
// no checker runs to raise it again, and it is out of rotation for good
// (nsproxy_server_up 0, nsproxy_server_checked 0; clients get no_server)
// although nothing checks it and it answers. Only deleting it and adding it
// back again, or a restart, brings it back.
func TestReviewOpsCheckRemovedFromDownServer(t *testing.T) {
	v := newEnv(t)
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens yet
	checked := srv("s1", srvAddr, "")
	checked.Check = true
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{checked}})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "s1 marked down by its checks", func() error {
		if v.e.Snapshot().Backends[0].Servers[0].Up {
			return fmt.Errorf("still up")
		}
		return nil
	})
	// The operator drops the check (reload), and the server answers.
	unchecked := srv("s1", srvAddr, "")
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{unchecked}})); err != nil {
		t.Fatal(err)
	}
	v.serve("", srvAddr, "s1")
	deadline := time.Now().Add(3 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		if _, lastErr = v.ask("", bind.Addr.String()); lastErr == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s := v.e.Snapshot().Backends[0].Servers[0]
	t.Fatalf("3s after its check was removed, the answering server s1 is still out of rotation: Up=%v Checked=%v, client: %v",
		s.Up, s.Checked, lastErr)
}
